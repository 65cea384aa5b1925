/**
 * The Google Cloud Storage adapter: `gs://bucket/object` and
 * `https://storage.googleapis.com/bucket/object`, over `@google-cloud/storage` (JSON API).
 *
 * Users who hold HMAC keys rather than a service account use the `s3://` adapter instead, with
 * endpoint `https://storage.googleapis.com` (GCS's S3-compatible XML API): see `S3Storage`.
 *
 * @module
 */
import type { Bucket, StorageOptions } from "@google-cloud/storage";
import { EventEmitter } from "node:events";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type {
  Storage,
  StorageEntry,
  StorageStat,
  StorageWriteOptions,
  StorageWriteResult,
} from "../storage.ts";
import { StorageError, StoragePermissionError } from "../storage_error.ts";
import {
  childUrl,
  decodeSegments,
  directoryPrefix,
  type ObjectLocation,
  writeLocation,
} from "../_cloud_url.ts";
import { toStorageError } from "../_cloud_error.ts";
import {
  byteCounter,
  fromBase64,
  mapStreamErrors,
  verifyDigest,
  verifyMd5,
} from "../_stream_checks.ts";
import { rangedRead, readExactly } from "../_ranged_read.ts";
import { DEFAULT_RANGED_READ_THRESHOLD, partPlan } from "../_transfer_plan.ts";
import {
  onEachChunk,
  StallError,
  stallTimeoutMsFromEnv,
  StallWatchdog,
  touchEach,
  withStallDeadline,
  withStallTimeout,
} from "../_stall_timeout.ts";

/** Options of {@linkcode GcsStorage}. */
export interface GcsStorageOptions {
  /**
   * JSON API endpoint, e.g. an emulator's `http://127.0.0.1:4443`. A custom endpoint is used
   * without authentication (as emulators expect).
   * @default Google's
   */
  apiEndpoint?: string;
  /** Service-account key file. @default Application Default Credentials */
  keyFilename?: string;
  /** Project id (only needed by a few calls). @default detected */
  projectId?: string;
  /** Attempts per request (the SDK retries 408, 429, 5xx and network errors). @default {6} */
  maxAttempts?: number;
  /** Upper bound of one retry delay, at least 1000 (the SDK waits at least 1 s). @default {10000} */
  maxRetryDelayMs?: number;
  /**
   * Objects larger than this are read by parallel ranged requests instead of one stream;
   * `Infinity` turns ranged reads off.
   * @default {67108864}
   */
  rangedReadThreshold?: number;
  /** Bytes per range of a parallel download. @default {8388608} */
  rangeSize?: number;
  /**
   * Ranges downloaded at once.
   * @default as many as fit, with the one being drained, in 32 MiB (3 for 8 MiB ranges), at most 4
   */
  concurrency?: number;
  /**
   * Longest time a transfer may move no byte before it fails with `stalled: no data for N s`.
   * The SDK's own `timeout` is no help here: under Deno its JSON requests go through
   * node-fetch 3, which ignores it, and its uploads have none. So downloads are watched by
   * their reader's waits, range reads and uploads by a watchdog restarted by every chunk
   * received or taken for sending, and metadata and listing calls (which take no signal) are
   * bounded as a whole, the SDK's retries included.
   * @default {`PLANETARY_STORAGE_STALL_SECONDS` × 1000, else 60000}
   */
  stallTimeoutMs?: number;
}

const MIB = 1024 * 1024;

interface GcsMetadata {
  size: number;
  md5: Uint8Array | undefined;
  /** CRC32C in base64: the only digest of a composite object, which has no MD5. */
  crc32c: string | undefined;
  generation: string | undefined;
}

/**
 * Storage over Google Cloud Storage. Uploads stream through a resumable upload validated by
 * CRC32C/MD5; downloads stream (validated by the SDK), large objects by parallel ranged reads
 * pinned to the object's generation and checked against its MD5. Retries (429, 5xx, network)
 * are the SDK's, enabled for every call including uploads.
 *
 * @example Usage
 * ```ts ignore
 * import { GcsStorage } from "./gcs_storage.ts";
 * const gcs = new GcsStorage({ apiEndpoint: "http://127.0.0.1:4443" });
 * const stream = await gcs.read("gs://bucket/reads.fastq");
 * ```
 */
export class GcsStorage implements Storage {
  /** `["gs"]` (https URLs on `storage.googleapis.com` are routed here by `storageForUrl`). */
  readonly schemes: readonly string[] = ["gs"];
  #options: GcsStorageOptions;
  #client: Promise<import("@google-cloud/storage").Storage> | undefined;
  #stallTimeoutMs: number;

  /**
   * Creates the adapter; the SDK is loaded at first use.
   *
   * @param options Endpoint, credentials and tuning.
   * @throws {RangeError} When `PLANETARY_STORAGE_STALL_SECONDS` is set to no positive number.
   */
  constructor(options: GcsStorageOptions = {}) {
    this.#options = options;
    this.#stallTimeoutMs = options.stallTimeoutMs ?? stallTimeoutMsFromEnv();
  }

  /** Bounds a call that takes no signal (metadata, listing) by the stall timeout. */
  #answered<T>(call: Promise<T>, url: string, operation: string): Promise<T> {
    return withStallDeadline(call, {
      timeoutMs: this.#stallTimeoutMs,
      url,
      operation: `GCS ${operation}`,
    });
  }

  #sdk(): Promise<import("@google-cloud/storage").Storage> {
    this.#client ??= (async () => {
      const sdk = await import("@google-cloud/storage");
      // The SDK attaches more than Node's default 10 listeners to one stream per download,
      // which only prints a MaxListenersExceededWarning; raise the process-wide default.
      EventEmitter.defaultMaxListeners = Math.max(EventEmitter.defaultMaxListeners, 64);
      const o = this.#options;
      const config: StorageOptions = {
        retryOptions: {
          autoRetry: true,
          maxRetries: (o.maxAttempts ?? 6) - 1,
          retryDelayMultiplier: 2,
          maxRetryDelay: Math.max(1, (o.maxRetryDelayMs ?? 10_000) / 1000),
          totalTimeout: 600,
          idempotencyStrategy: sdk.IdempotencyStrategy.RetryAlways,
        },
        ...(o.apiEndpoint === undefined ? {} : { apiEndpoint: o.apiEndpoint }),
        ...(o.keyFilename === undefined ? {} : { keyFilename: o.keyFilename }),
        ...(o.projectId === undefined ? {} : { projectId: o.projectId }),
      };
      return new sdk.Storage(config);
    })();
    return this.#client;
  }

  #parse(url: string): ObjectLocation {
    const match = /^gs:\/\/([^/?#]+)(\/[^?#]*)?/i.exec(url) ??
      /^https:\/\/storage\.googleapis\.com\/([^/?#]+)(\/[^?#]*)?/i.exec(url);
    if (match === null) {
      throw new StorageError("not a GCS URL (expected gs://bucket/object)", {
        code: "INVALID_URL",
        url,
      });
    }
    const key = decodeSegments((match[2] ?? "/").slice(1), url).join("/");
    return { bucket: match[1] ?? "", key };
  }

  async #bucket(name: string): Promise<Bucket> {
    return (await this.#sdk()).bucket(name);
  }

  #fail(error: unknown, url: string, operation: string): StorageError {
    // Application-default credentials found nothing: say where they are looked for.
    const message = (error as { message?: unknown } | null)?.message;
    const text = typeof message === "string" ? message : "";
    // google-auth-library looks for the metadata server only after reading the network
    // interfaces, which a process without --allow-sys=networkInterfaces may not.
    const unprobed = /networkInterfaces/.test(text) &&
      (error as { name?: unknown } | null)?.name === "NotCapable";
    if (unprobed || /Could not load the default credentials/i.test(text)) {
      return new StoragePermissionError(
        `GCS ${operation}: no Google Cloud credentials found (set GOOGLE_APPLICATION_CREDENTIALS ` +
          "to a key file, run `gcloud auth application-default login`, or run where the " +
          "metadata server is available" +
          (unprobed ? "; the metadata server was not looked for: no --allow-sys" : "") + ")",
        url,
      );
    }
    return toStorageError(error, { url, operation: `GCS ${operation}` });
  }

  async #metadata(url: string, loc: ObjectLocation): Promise<GcsMetadata | undefined> {
    const file = (await this.#bucket(loc.bucket)).file(loc.key);
    try {
      const [meta] = await this.#answered(file.getMetadata(), url, "objects.get");
      return {
        size: Number(meta.size ?? 0),
        md5: typeof meta.md5Hash === "string" ? fromBase64(meta.md5Hash) : undefined,
        crc32c: typeof meta.crc32c === "string" ? meta.crc32c : undefined,
        generation: meta.generation === undefined ? undefined : String(meta.generation),
      };
    } catch (error) {
      if (error instanceof StallError) throw error;
      const failure = this.#fail(error, url, "objects.get");
      if (failure.code === "NOT_FOUND") return undefined;
      throw failure;
    }
  }

  /**
   * Describes an object, or a prefix holding objects.
   *
   * @param url A GCS URL.
   * @returns `file` with its size, `directory` when objects exist under `object/`, or
   *   `undefined`.
   * @throws {StorageError} On refused credentials or a service failure.
   */
  async stat(url: string): Promise<StorageStat | undefined> {
    const loc = this.#parse(url);
    if (loc.key !== "" && !loc.key.endsWith("/")) {
      const meta = await this.#metadata(url, loc);
      if (meta !== undefined) return { type: "file", size: meta.size };
    }
    const bucket = await this.#bucket(loc.bucket);
    try {
      const [files] = await this.#answered(
        bucket.getFiles({ prefix: directoryPrefix(loc.key), maxResults: 1, autoPaginate: false }),
        url,
        "objects.list",
      );
      return files.length > 0 ? { type: "directory", size: 0 } : undefined;
    } catch (error) {
      throw this.#fail(error, url, "objects.list");
    }
  }

  /**
   * Streams an object. Small objects are validated by the SDK (CRC32C/MD5); large ones are
   * read by parallel ranges of the same generation and checked against the stored MD5.
   *
   * @param url A GCS URL.
   * @returns The object's bytes.
   * @throws {StorageNotFoundError} When the object does not exist.
   * @throws {StorageError} On refused credentials or a service failure.
   */
  async read(url: string): Promise<ReadableStream<Uint8Array>> {
    const loc = this.#parse(url);
    if (loc.key === "") throw new StorageError("no object name", { code: "INVALID_URL", url });
    const meta = await this.#metadata(url, loc);
    if (meta === undefined) {
      throw toStorageError({ code: 404, message: "" }, { url, operation: "GCS read" });
    }
    const bucket = await this.#bucket(loc.bucket);
    const {
      rangedReadThreshold = DEFAULT_RANGED_READ_THRESHOLD,
      rangeSize = 8 * MIB,
      concurrency,
    } = this.#options;
    if (meta.size === 0) return new ReadableStream({ start: (c) => c.close() });
    if (meta.size <= rangedReadThreshold) {
      const file = bucket.file(loc.key);
      const node = file.createReadStream({ validation: true });
      const web = Readable.toWeb(node) as unknown as ReadableStream<Uint8Array>;
      // The request starts at the first read, so the reader's waits cover its answer too.
      return withStallTimeout(
        mapStreamErrors(web, (error) => this.#fail(error, url, "objects.get")),
        {
          timeoutMs: this.#stallTimeoutMs,
          url,
          operation: "GCS objects.get",
          onStall: () => void node.destroy(),
        },
      );
    }
    const file = bucket.file(
      loc.key,
      meta.generation === undefined ? {} : { generation: Number(meta.generation) },
    );
    const plan = partPlan(meta.size, {
      partSize: rangeSize,
      maxParts: Infinity,
      ...(concurrency === undefined ? {} : { concurrency }),
    });
    const body = rangedRead({
      size: meta.size,
      rangeSize: plan.partSize,
      concurrency: plan.concurrency,
      fetchRange: async (offset, into, signal) => {
        // Each range is checked as a whole below (MD5 of the object), not by the SDK.
        const node = file.createReadStream({
          start: offset,
          end: offset + into.byteLength - 1,
          validation: false,
        });
        const abort = (): void => void node.destroy(new Error("aborted"));
        signal.addEventListener("abort", abort, { once: true });
        const watchdog = new StallWatchdog({ timeoutMs: this.#stallTimeoutMs, onStall: abort });
        try {
          return await readExactly(touchEach(node, watchdog.touch), into);
        } catch (error) {
          if (watchdog.stalled) {
            throw new StallError({
              timeoutMs: this.#stallTimeoutMs,
              url,
              operation: "GCS objects.get (range)",
            });
          }
          throw this.#fail(error, url, "objects.get (range)");
        } finally {
          watchdog.stop();
          signal.removeEventListener("abort", abort);
          node.destroy();
        }
      },
    });
    if (meta.md5 !== undefined) return body.pipeThrough(verifyMd5(meta.md5, url));
    if (meta.crc32c === undefined) return body;
    const { CRC32C } = await import("@google-cloud/storage");
    return body.pipeThrough(verifyDigest(new CRC32C(), meta.crc32c, "CRC32C", url));
  }

  /**
   * Uploads a stream with a resumable upload (bounded memory, validated by the SDK against
   * the service's CRC32C/MD5).
   *
   * @param url A GCS URL.
   * @param stream The bytes.
   * @param options `size` is enforced.
   * @returns The number of bytes written.
   * @throws {StorageError} On refused credentials, a service failure, a size mismatch or a
   *   checksum mismatch.
   */
  async write(
    url: string,
    stream: ReadableStream<Uint8Array>,
    options: StorageWriteOptions = {},
  ): Promise<StorageWriteResult> {
    const loc = await writeLocation(url, stream, (u) => this.#parse(u), (l) => l.key, "an object");
    const file = (await this.#bucket(loc.bucket)).file(loc.key);
    const counter = byteCounter(url, options.size);
    // The SDK streams one request whose body it takes from ours as the socket drains: every
    // chunk it takes restarts the watchdog, which covers the session's creation and the final
    // answer too. On a stall the pipeline is torn down (the SDK's retries with it).
    const upload = file.createWriteStream({ resumable: true, validation: "md5" });
    const watchdog = new StallWatchdog({
      timeoutMs: this.#stallTimeoutMs,
      onStall: () => void upload.destroy(new Error("stalled")),
    });
    const body = onEachChunk(stream.pipeThrough(counter.stream), watchdog.touch);
    try {
      await pipeline(Readable.fromWeb(body as Parameters<typeof Readable.fromWeb>[0]), upload);
    } catch (error) {
      await body.cancel().catch(() => {});
      if (watchdog.stalled) {
        throw new StallError({ timeoutMs: this.#stallTimeoutMs, url, operation: "GCS upload" });
      }
      throw this.#fail(error, url, "upload");
    } finally {
      watchdog.stop();
    }
    return { size: counter.bytes() };
  }

  /**
   * Lists every object under `url` taken as a directory (`object/`).
   *
   * @param url A GCS URL of a bucket or prefix.
   * @returns The objects with their paths relative to the prefix.
   * @throws {StorageError} On refused credentials or a service failure.
   */
  async *list(url: string): AsyncIterable<StorageEntry> {
    const loc = this.#parse(url);
    const prefix = directoryPrefix(loc.key);
    const bucket = await this.#bucket(loc.bucket);
    let pageToken: string | undefined;
    do {
      let files;
      let next;
      try {
        [files, next] = await this.#answered(
          bucket.getFiles({
            prefix,
            maxResults: 1000,
            autoPaginate: false,
            ...(pageToken === undefined ? {} : { pageToken }),
          }),
          url,
          "objects.list",
        );
      } catch (error) {
        throw this.#fail(error, url, "objects.list");
      }
      for (const file of files) {
        const relativePath = file.name.slice(prefix.length);
        if (relativePath === "" || relativePath.endsWith("/")) continue;
        yield {
          url: childUrl(url, relativePath),
          relativePath,
          size: Number(file.metadata.size ?? 0),
        };
      }
      pageToken = (next as { pageToken?: string } | null | undefined)?.pageToken;
    } while (pageToken !== undefined);
  }
}
