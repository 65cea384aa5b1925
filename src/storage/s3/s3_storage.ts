/**
 * The `s3://bucket/key` storage adapter, over `@aws-sdk/client-s3` (and `@aws-sdk/lib-storage`
 * for multipart uploads). Works with AWS and S3-compatible stores (MinIO, moto, and Google
 * Cloud Storage's XML API with HMAC keys: endpoint `https://storage.googleapis.com`).
 *
 * @module
 */
import type { S3Client } from "@aws-sdk/client-s3";
import type {
  Storage,
  StorageEntry,
  StorageStat,
  StorageWriteOptions,
  StorageWriteResult,
} from "../storage.ts";
import { StorageError } from "../storage_error.ts";
import { childUrl, directoryPrefix, parseBucketUrl, writeLocation } from "../_cloud_url.ts";
import { toStorageError } from "../_cloud_error.ts";
import {
  byteCounter,
  fromHex,
  mapStreamErrors,
  md5Tap,
  toHex,
  verifyMd5,
} from "../_stream_checks.ts";
import { rangedRead } from "../_ranged_read.ts";

/** Static credentials; omit them to use the SDK's default chain (env, profile, IMDS, IRSA). */
export interface S3Credentials {
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key. */
  secretAccessKey: string;
  /** Session token of temporary credentials. */
  sessionToken?: string;
}

/** Options of {@linkcode S3Storage}. */
export interface S3StorageOptions {
  /** Region. @default {Deno.env AWS_REGION, else "us-east-1"} */
  region?: string;
  /** Endpoint of an S3-compatible service (`http://127.0.0.1:9000`). @default AWS */
  endpoint?: string;
  /** Address buckets as `endpoint/bucket` instead of `bucket.endpoint`. @default {false} */
  forcePathStyle?: boolean;
  /** Static credentials. @default the SDK's default credential chain */
  credentials?: S3Credentials;
  /** Attempts per request (the SDK retries throttling, 5xx and network errors). @default {6} */
  maxAttempts?: number;
  /**
   * Whether the SDK adds CRC checksums to uploads (`WHEN_SUPPORTED`) or only where the API
   * requires them (`WHEN_REQUIRED`, needed by stores that reject `x-amz-checksum-*`, such as
   * Google Cloud Storage's XML API).
   * @default {"WHEN_SUPPORTED", or "WHEN_REQUIRED" when the endpoint is storage.googleapis.com}
   */
  checksums?: "WHEN_SUPPORTED" | "WHEN_REQUIRED";
  /** Parts uploaded (and ranges downloaded) at once; 2 keeps the transporter under 200 MiB. @default {2} */
  queueSize?: number;
  /**
   * Objects larger than this are read by `concurrency` parallel ranged requests instead of one
   * stream. Off by default: against every emulator measured here one stream was faster (moto's
   * ranged GET even costs O(object size) per request); turn it on (e.g. 64 MiB) where the
   * store serves parallel ranges faster, as the big clouds do.
   * @default {Infinity}
   */
  rangedReadThreshold?: number;
  /** Bytes per range of a parallel download. @default {8388608} */
  rangeSize?: number;
}

const MIB = 1024 * 1024;
const MIN_PART = 8 * MIB;
const MAX_PARTS = 10_000;

/**
 * The multipart part size for an upload of `size` bytes: 8 MiB, or larger when needed to
 * stay within S3's 10,000 parts (rounded up to a MiB).
 *
 * @param size The upload's size, if known.
 * @returns The part size in bytes.
 *
 * @example Usage
 * ```ts
 * import { s3PartSize } from "./s3_storage.ts";
 * s3PartSize(1024 ** 3); // 8388608
 * ```
 */
export function s3PartSize(size: number | undefined): number {
  if (size === undefined) return 16 * MIB; // unknown size: up to ~156 GiB
  const needed = Math.ceil(size / MAX_PARTS / MIB) * MIB;
  return Math.max(MIN_PART, needed);
}

/**
 * Storage over `s3://bucket/key` URLs. Uploads stream through `lib-storage`'s `Upload`
 * (one `PutObject` below the part size, parallel multipart above it, aborted on failure);
 * downloads stream, large objects by parallel ranged `GetObject`s pinned to the object's ETag.
 * Single-part objects are checked against their ETag (MD5) on the way up and down; multipart
 * parts carry SDK CRC checksums. Errors never quote credentials.
 *
 * @example Usage
 * ```ts ignore
 * import { S3Storage } from "./s3_storage.ts";
 * const s3 = new S3Storage({ endpoint: "http://127.0.0.1:5000", forcePathStyle: true });
 * const stream = await s3.read("s3://bucket/reads.fastq");
 * ```
 */
export class S3Storage implements Storage {
  /** `["s3"]`. */
  readonly schemes: readonly string[] = ["s3"];
  #options: S3StorageOptions;
  #client: Promise<S3Client> | undefined;
  #secrets: string[];

  /**
   * Creates the adapter; the SDK is loaded at first use.
   *
   * @param options Region, endpoint, credentials and tuning.
   */
  constructor(options: S3StorageOptions = {}) {
    this.#options = options;
    this.#secrets = [
      options.credentials?.secretAccessKey,
      options.credentials?.sessionToken,
      Deno.env.get("AWS_SECRET_ACCESS_KEY"),
      Deno.env.get("AWS_SESSION_TOKEN"),
    ].filter((s): s is string => typeof s === "string" && s !== "");
  }

  #sdk(): Promise<S3Client> {
    this.#client ??= (async () => {
      const { S3Client } = await import("@aws-sdk/client-s3");
      const o = this.#options;
      const googleXml = o.endpoint !== undefined && /storage\.googleapis\.com/i.test(o.endpoint);
      const checksums = o.checksums ?? (googleXml ? "WHEN_REQUIRED" : "WHEN_SUPPORTED");
      return new S3Client({
        region: o.region ?? Deno.env.get("AWS_REGION") ?? Deno.env.get("AWS_DEFAULT_REGION") ??
          "us-east-1",
        ...(o.endpoint === undefined ? {} : { endpoint: o.endpoint }),
        forcePathStyle: o.forcePathStyle ?? false,
        ...(o.credentials === undefined ? {} : { credentials: o.credentials }),
        maxAttempts: o.maxAttempts ?? 6,
        retryMode: "standard",
        requestChecksumCalculation: checksums,
        responseChecksumValidation: checksums,
        // The SDK's default user agent reads os.release(), which needs --allow-sys; the
        // transporter runs without it.
        defaultUserAgentProvider: () => Promise.resolve([["planetary-storage"]]),
      });
    })();
    return this.#client;
  }

  #fail(error: unknown, url: string, operation: string): StorageError {
    return toStorageError(error, { url, operation: `S3 ${operation}`, secrets: this.#secrets });
  }

  /**
   * Describes an object, or a prefix holding objects.
   *
   * @param url `s3://bucket/key`.
   * @returns `file` with its size, `directory` when objects exist under `key/`, or `undefined`.
   * @throws {StorageError} On refused credentials or a service failure.
   */
  async stat(url: string): Promise<StorageStat | undefined> {
    const { bucket, key } = parseBucketUrl(url, "s3");
    if (key !== "" && !key.endsWith("/")) {
      const head = await this.#head(url, bucket, key);
      if (head !== undefined) return { type: "file", size: head.size };
    }
    const client = await this.#sdk();
    const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
    try {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: directoryPrefix(key), MaxKeys: 1 }),
      );
      return (page.KeyCount ?? 0) > 0 ? { type: "directory", size: 0 } : undefined;
    } catch (error) {
      throw this.#fail(error, url, "ListObjectsV2");
    }
  }

  async #head(
    url: string,
    bucket: string,
    key: string,
  ): Promise<{ size: number; etag: string } | undefined> {
    const client = await this.#sdk();
    const { HeadObjectCommand } = await import("@aws-sdk/client-s3");
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { size: head.ContentLength ?? 0, etag: head.ETag ?? "" };
    } catch (error) {
      const failure = this.#fail(error, url, "HeadObject");
      if (failure.code === "NOT_FOUND") return undefined;
      throw failure;
    }
  }

  /**
   * Streams an object. Objects above `rangedReadThreshold` are fetched by parallel ranged
   * requests; a single-part object's MD5 is checked against its ETag at the end of the stream.
   *
   * @param url `s3://bucket/key`.
   * @returns The object's bytes.
   * @throws {StorageNotFoundError} When the object does not exist.
   * @throws {StorageError} On refused credentials or a service failure.
   */
  async read(url: string): Promise<ReadableStream<Uint8Array>> {
    const { bucket, key } = parseBucketUrl(url, "s3");
    if (key === "") throw new StorageError("no object key", { code: "INVALID_URL", url });
    const head = await this.#head(url, bucket, key);
    if (head === undefined) {
      throw toStorageError({ $metadata: { httpStatusCode: 404 }, message: "" }, {
        url,
        operation: "S3 HeadObject",
      });
    }
    const client = await this.#sdk();
    const { GetObjectCommand } = await import("@aws-sdk/client-s3");
    const plainMd5 = /^"?([0-9a-f]{32})"?$/i.exec(head.etag)?.[1];
    const expectedMd5 = plainMd5 === undefined ? undefined : fromHex(plainMd5);
    const { rangedReadThreshold = Infinity, rangeSize = 8 * MIB, queueSize = 2 } = this.#options;
    let body: ReadableStream<Uint8Array>;
    if (head.size > rangedReadThreshold) {
      body = rangedRead({
        size: head.size,
        rangeSize,
        concurrency: queueSize,
        fetchRange: async (offset, count, signal) => {
          try {
            const part = await client.send(
              new GetObjectCommand({
                Bucket: bucket,
                Key: key,
                Range: `bytes=${offset}-${offset + count - 1}`,
                ...(head.etag ? { IfMatch: head.etag } : {}),
              }),
              { abortSignal: signal },
            );
            return await part.Body!.transformToByteArray();
          } catch (error) {
            throw this.#fail(error, url, "GetObject (range)");
          }
        },
      });
    } else {
      try {
        const object = await client.send(
          new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }),
        );
        body = mapStreamErrors(
          object.Body!.transformToWebStream() as ReadableStream<Uint8Array>,
          (error) => this.#fail(error, url, "GetObject (body)"),
        );
      } catch (error) {
        throw this.#fail(error, url, "GetObject");
      }
    }
    return expectedMd5 === undefined ? body : body.pipeThrough(verifyMd5(expectedMd5, url));
  }

  /**
   * Uploads a stream: one `PutObject` when it fits in a part, otherwise a multipart upload with
   * `queueSize` parts in flight (aborted on failure, so no partial object appears).
   *
   * @param url `s3://bucket/key`.
   * @param stream The bytes.
   * @param options `size` picks the part size and is enforced.
   * @returns The number of bytes written.
   * @throws {StorageError} On refused credentials, a service failure, a size mismatch or an
   *   ETag that is not the MD5 of what was sent.
   */
  async write(
    url: string,
    stream: ReadableStream<Uint8Array>,
    options: StorageWriteOptions = {},
  ): Promise<StorageWriteResult> {
    const location = await writeLocation(
      url,
      stream,
      (u) => parseBucketUrl(u, "s3"),
      (l) => l.key,
      "an object",
    );
    const client = await this.#sdk();
    const { Upload } = await import("@aws-sdk/lib-storage");
    const counter = byteCounter(url, options.size);
    const md5 = md5Tap();
    const partSize = s3PartSize(options.size);
    const body = stream.pipeThrough(counter.stream).pipeThrough(md5.stream);
    let etag: string | undefined;
    try {
      const upload = new Upload({
        client,
        params: { Bucket: location.bucket, Key: location.key, Body: body },
        partSize,
        queueSize: this.#options.queueSize ?? 2,
        leavePartsOnError: false,
      });
      const result = await upload.done();
      etag = result.ETag;
    } catch (error) {
      await body.cancel().catch(() => {});
      throw this.#fail(error, url, "upload");
    }
    const size = counter.bytes();
    if (size <= partSize && etag !== undefined && /^"?[0-9a-f]{32}"?$/i.test(etag)) {
      const sent = toHex(md5.digest());
      if (etag.replaceAll('"', "").toLowerCase() !== sent) {
        throw new StorageError(
          `integrity check failed: the store's ETag ${etag} is not the MD5 ${sent} of what was sent`,
          { code: "IO_ERROR", url },
        );
      }
    }
    return { size };
  }

  /**
   * Lists every object under `url` taken as a directory (`key/`), skipping `…/` folder
   * markers.
   *
   * @param url `s3://bucket/prefix`.
   * @returns The objects with their paths relative to the prefix.
   * @throws {StorageError} On refused credentials or a service failure.
   */
  async *list(url: string): AsyncIterable<StorageEntry> {
    const { bucket, key } = parseBucketUrl(url, "s3");
    const prefix = directoryPrefix(key);
    const client = await this.#sdk();
    const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
    let token: string | undefined;
    do {
      let page;
      try {
        page = await client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
      } catch (error) {
        throw this.#fail(error, url, "ListObjectsV2");
      }
      for (const object of page.Contents ?? []) {
        const objectKey = object.Key ?? "";
        const relativePath = objectKey.slice(prefix.length);
        if (relativePath === "" || relativePath.endsWith("/")) continue;
        yield { url: childUrl(url, relativePath), relativePath, size: object.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }
}
