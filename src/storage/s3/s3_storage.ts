/**
 * The `s3://bucket/key` storage adapter, over `@aws-sdk/client-s3`. Works with AWS and
 * S3-compatible stores (MinIO, moto, and Google Cloud Storage's XML API with HMAC keys: endpoint
 * `https://storage.googleapis.com`).
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
import { StorageError, StoragePermissionError } from "../storage_error.ts";
import { childUrl, directoryPrefix, parseBucketUrl, writeLocation } from "../_cloud_url.ts";
import { toStorageError } from "../_cloud_error.ts";
import { StallError, stallTimeoutMsFromEnv } from "../_stall_timeout.ts";
import { createHash } from "node:crypto";
import {
  byteCounter,
  crc32Base64,
  crc32Of,
  crc32Tap,
  fromHex,
  mapStreamErrors,
  verifyCrc32,
  verifyMd5,
} from "../_stream_checks.ts";
import { chunkedUpload } from "../_chunked_upload.ts";
import { rangedRead, readExactly } from "../_ranged_read.ts";
import { DEFAULT_RANGED_READ_THRESHOLD, type PartPlan, partPlan } from "../_transfer_plan.ts";

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
  /**
   * Parts uploaded (and ranges downloaded) at once.
   * @default as many as fit, with the one being filled, in 32 MiB (3 for 8 MiB parts), at most 4
   */
  queueSize?: number;
  /**
   * Objects larger than this are read by parallel ranged requests instead of one stream;
   * `Infinity` turns ranged reads off.
   * @default {67108864}
   */
  rangedReadThreshold?: number;
  /** Bytes per range of a parallel download. @default {8388608} */
  rangeSize?: number;
  /**
   * Longest time a request may move no byte (connecting, waiting for an answer, sending or
   * receiving a body) before it fails with `stalled: no data for N s`: the socket inactivity
   * timeout of the SDK's HTTP handler (`socketTimeout`, and `connectionTimeout`). A stalled
   * request is retried by the SDK within `maxAttempts`; a stalled body fails the read. (The
   * handler arms a timeout of 6 s or more only 3 s into a request, so the first stall of a
   * request is seen up to 3 s late.)
   * @default {`PLANETARY_STORAGE_STALL_SECONDS` × 1000, else 60000}
   */
  stallTimeoutMs?: number;
}

/** What `HeadObject` says about an object. */
interface S3Head {
  size: number;
  etag: string;
  /** The whole object's CRC32 (base64), when the store keeps a full-object one. */
  crc32?: string;
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
  // unknown size: 16 MiB parts, up to ~156 GiB
  return partPlan(size, { partSize: MIN_PART, maxParts: MAX_PARTS }).partSize;
}

/**
 * Storage over `s3://bucket/key` URLs. Uploads are one `PutObject` up to the part size and a
 * parallel multipart upload above it (aborted on failure); downloads stream, objects above
 * 64 MiB by parallel ranged `GetObject`s pinned to the object's ETag. At most 32 MiB of parts
 * or ranges are buffered per transfer.
 * Every upload request carries its body's MD5 and CRC32, multipart uploads end with a
 * full-object CRC32; downloads are checked against the single-part MD5 (ETag) or the full-object
 * CRC32. Errors never quote credentials.
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
  #checksums: "WHEN_SUPPORTED" | "WHEN_REQUIRED";
  #stallTimeoutMs: number;

  /**
   * Creates the adapter; the SDK is loaded at first use.
   *
   * @param options Region, endpoint, credentials and tuning.
   * @throws {RangeError} When `PLANETARY_STORAGE_STALL_SECONDS` is set to no positive number.
   */
  constructor(options: S3StorageOptions = {}) {
    this.#options = options;
    this.#stallTimeoutMs = options.stallTimeoutMs ?? stallTimeoutMsFromEnv();
    const googleXml = options.endpoint !== undefined &&
      /storage\.googleapis\.com/i.test(options.endpoint);
    this.#checksums = options.checksums ?? (googleXml ? "WHEN_REQUIRED" : "WHEN_SUPPORTED");
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
      const checksums = this.#checksums;
      const stall = this.#stallTimeoutMs;
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
        // Stall timeouts: socketTimeout is the socket's inactivity timeout (any byte read or
        // written restarts it, so a slow transfer that keeps moving is never cut, and it stays
        // armed while a body streams). requestTimeout is NOT one: it bounds a request's whole
        // time to its answer headers, upload body included, so it stays off.
        requestHandler: { socketTimeout: stall, connectionTimeout: stall },
      });
    })();
    return this.#client;
  }

  #fail(error: unknown, url: string, operation: string): StorageError {
    // The HTTP handler's socketTimeout/connectionTimeout ran out: say it is a stall, with the
    // timeout and how many attempts the SDK made.
    const e = error as { name?: unknown; message?: unknown; $metadata?: { attempts?: unknown } };
    const text = typeof e?.message === "string" ? e.message : "";
    if (e?.name === "TimeoutError" && /of inactivity|establish a connection/.test(text)) {
      const attempts = e.$metadata?.attempts;
      return new StallError({
        timeoutMs: this.#stallTimeoutMs,
        url,
        operation: `S3 ${operation}`,
        attempts: typeof attempts === "number" ? attempts : undefined,
        kind: /establish a connection/.test(text) ? "connection" : "data",
      });
    }
    // The default chain found nothing: say where it looked, so a person knows what to set.
    if ((error as { name?: unknown } | null)?.name === "CredentialsProviderError") {
      return new StoragePermissionError(
        `S3 ${operation}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ` +
          "AWS_PROFILE, or run where instance metadata is available)",
        url,
      );
    }
    return toStorageError(error, { url, operation: `S3 ${operation}`, secrets: this.#secrets });
  }

  /** Part (or range) size and parallelism for an object of `size` bytes. */
  #plan(size: number | undefined, partSize: number, maxParts: number): PartPlan {
    const { queueSize } = this.#options;
    return partPlan(size, {
      partSize,
      maxParts,
      ...(queueSize === undefined ? {} : { concurrency: queueSize }),
    });
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

  async #head(url: string, bucket: string, key: string): Promise<S3Head | undefined> {
    const client = await this.#sdk();
    const { HeadObjectCommand } = await import("@aws-sdk/client-s3");
    try {
      const head = await client.send(
        new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }),
      );
      const crc32 = head.ChecksumType === "FULL_OBJECT" ? head.ChecksumCRC32 : undefined;
      return {
        size: head.ContentLength ?? 0,
        etag: head.ETag ?? "",
        ...(crc32 === undefined ? {} : { crc32 }),
      };
    } catch (error) {
      const failure = this.#fail(error, url, "HeadObject");
      if (failure.code === "NOT_FOUND") return undefined;
      throw failure;
    }
  }

  /**
   * Streams an object. Objects above `rangedReadThreshold` are fetched by parallel ranged
   * requests pinned to the object's ETag. At the end of the stream the bytes are checked against
   * the object's MD5 (the ETag of a single-part object) and its full-object CRC32 when the store
   * keeps one (what {@linkcode S3Storage.write} asks for); a mismatch errors the stream.
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
    const { rangedReadThreshold = DEFAULT_RANGED_READ_THRESHOLD, rangeSize = 8 * MIB } =
      this.#options;
    let body: ReadableStream<Uint8Array>;
    if (head.size > 0 && head.size > rangedReadThreshold) {
      const plan = this.#plan(head.size, rangeSize, Infinity);
      body = rangedRead({
        size: head.size,
        rangeSize: plan.partSize,
        concurrency: plan.concurrency,
        fetchRange: async (offset, into, signal) => {
          try {
            const part = await client.send(
              new GetObjectCommand({
                Bucket: bucket,
                Key: key,
                Range: `bytes=${offset}-${offset + into.byteLength - 1}`,
                ...(head.etag ? { IfMatch: head.etag } : {}),
              }),
              { abortSignal: signal },
            );
            return await readExactly(part.Body as AsyncIterable<Uint8Array>, into);
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
    if (expectedMd5 !== undefined) body = body.pipeThrough(verifyMd5(expectedMd5, url));
    if (head.crc32 !== undefined) body = body.pipeThrough(verifyCrc32(head.crc32, url));
    return body;
  }

  /**
   * Uploads a stream: one `PutObject` once the stream has ended when it fits in a part,
   * otherwise a multipart upload with parts sized from `size` (at most 32 MiB of parts buffered,
   * at most 10,000 parts), aborted on failure so that no partial object appears. Every request
   * carries its body's `Content-MD5` and CRC32, which the store checks; a multipart upload asks
   * for a full-object CRC32 (`ChecksumType: FULL_OBJECT`) and hands over the CRC32 of the whole
   * stream at completion, which is compared with the one the store reports. With
   * `checksums: "WHEN_REQUIRED"` (stores that refuse `x-amz-checksum-*`) only `Content-MD5` is
   * sent.
   *
   * @param url `s3://bucket/key`.
   * @param stream The bytes.
   * @param options `size` picks the part size and is enforced.
   * @returns The number of bytes written.
   * @throws {StorageError} On refused credentials, a service failure, a size mismatch or a
   *   checksum the store does not confirm.
   */
  async write(
    url: string,
    stream: ReadableStream<Uint8Array>,
    options: StorageWriteOptions = {},
  ): Promise<StorageWriteResult> {
    const { bucket: Bucket, key: Key } = await writeLocation(
      url,
      stream,
      (u) => parseBucketUrl(u, "s3"),
      (l) => l.key,
      "an object",
    );
    const client = await this.#sdk();
    const sdk = await import("@aws-sdk/client-s3");
    // Stores that refuse x-amz-checksum-* (WHEN_REQUIRED) get Content-MD5 only.
    const crc = this.#checksums === "WHEN_SUPPORTED";
    const counter = byteCounter(url, options.size);
    const whole = crc32Tap();
    const plan = this.#plan(options.size, MIN_PART, MAX_PARTS);
    let upload: Promise<string> | undefined;
    const parts: { PartNumber: number; ETag: string; ChecksumCRC32?: string }[] = [];
    try {
      await chunkedUpload(stream.pipeThrough(counter.stream).pipeThrough(whole.stream), {
        ...plan,
        ...(options.size === undefined ? {} : { size: options.size }),
        uploadPart: async (index, bytes, last) => {
          const checks = {
            ContentMD5: createHash("md5").update(bytes).digest("base64"),
            ...(crc ? { ChecksumCRC32: crc32Of(bytes) } : {}),
          };
          if (index === 0 && last) {
            // The whole object in one request (the stream has ended: its size was checked).
            await client.send(
              new sdk.PutObjectCommand({
                Bucket,
                Key,
                Body: bytes,
                ContentLength: bytes.byteLength,
                ...checks,
              }),
            );
            return;
          }
          upload ??= client.send(
            new sdk.CreateMultipartUploadCommand({
              Bucket,
              Key,
              ...(crc ? { ChecksumAlgorithm: "CRC32", ChecksumType: "FULL_OBJECT" } : {}),
            }),
          ).then((created) => {
            if (!created.UploadId) throw new Error("CreateMultipartUpload returned no UploadId");
            return created.UploadId;
          });
          const UploadId = await upload;
          const part = await client.send(
            new sdk.UploadPartCommand({
              Bucket,
              Key,
              UploadId,
              PartNumber: index + 1,
              Body: bytes,
              ContentLength: bytes.byteLength,
              ...checks,
            }),
          );
          if (!part.ETag) throw new Error(`UploadPart ${index + 1} returned no ETag`);
          parts[index] = {
            PartNumber: index + 1,
            ETag: part.ETag,
            ...(part.ChecksumCRC32 ? { ChecksumCRC32: part.ChecksumCRC32 } : {}),
          };
        },
      });
      if (upload !== undefined) {
        const UploadId = await upload;
        const sent = crc32Base64(whole.value());
        const done = await client.send(
          new sdk.CompleteMultipartUploadCommand({
            Bucket,
            Key,
            UploadId,
            MultipartUpload: { Parts: parts },
            ...(crc
              ? { ChecksumType: "FULL_OBJECT", ChecksumCRC32: sent, MpuObjectSize: counter.bytes() }
              : {}),
          }),
        );
        if (crc) await this.#confirmCrc32(url, Bucket, Key, done.ChecksumCRC32, sent);
      }
    } catch (error) {
      if (upload !== undefined) {
        const UploadId = await upload.catch(() => undefined);
        if (UploadId !== undefined) {
          await client.send(new sdk.AbortMultipartUploadCommand({ Bucket, Key, UploadId }))
            .catch(() => {});
        }
      }
      throw this.#fail(error, url, "upload");
    }
    return { size: counter.bytes() };
  }

  /**
   * Compares the store's full-object CRC32 of a completed multipart upload with the CRC32 of
   * what was sent: from the completion answer, else from `HeadObject` (stores that do not check
   * the CRC32 handed over at completion, such as moto, still report the one they computed).
   * A store that keeps none is taken at its word (each part's MD5 and CRC32 were checked).
   */
  async #confirmCrc32(
    url: string,
    bucket: string,
    key: string,
    reported: string | undefined,
    sent: string,
  ): Promise<void> {
    const stored = reported ?? (await this.#head(url, bucket, key))?.crc32;
    if (stored !== undefined && stored !== sent) {
      throw new StorageError(
        `integrity check failed: the store's CRC32 ${stored} of the object is not the CRC32 ${sent} of what was sent`,
        { code: "IO_ERROR", url },
      );
    }
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
