/**
 * The Azure Blob storage adapter: `az://account/container/blob` and
 * `https://ACCOUNT.blob.core.windows.net/container/blob`, over `@azure/storage-blob`.
 *
 * @module
 */
import type {
  BlobServiceClient,
  ContainerClient,
  StoragePipelineOptions,
} from "@azure/storage-blob";
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import type {
  Storage,
  StorageEntry,
  StorageStat,
  StorageWriteOptions,
  StorageWriteResult,
} from "../storage.ts";
import { StorageError, StoragePermissionError } from "../storage_error.ts";
import { childUrl, decodeSegments, directoryPrefix, writeLocation } from "../_cloud_url.ts";
import { toStorageError } from "../_cloud_error.ts";
import { byteCounter, mapStreamErrors, md5Tap, verifyMd5 } from "../_stream_checks.ts";
import { rangedRead, readExactly } from "../_ranged_read.ts";
import { chunkedUpload } from "../_chunked_upload.ts";
import { DEFAULT_RANGED_READ_THRESHOLD, type PartPlan, partPlan } from "../_transfer_plan.ts";
import { withRetry } from "../_retry.ts";
import {
  StallError,
  stallTimeoutMsFromEnv,
  StallWatchdog,
  touchEach,
  withStallTimeout,
} from "../_stall_timeout.ts";
import { guardOsRelease } from "../_os_release_guard.ts";

/** Retry policy of {@linkcode AzureBlobStorage} (the SDK's own does not retry HTTP 429). */
export interface AzureRetryOptions {
  /** Attempts in total. @default {6} */
  maxAttempts?: number;
  /** Delay before the first retry, doubled each time (with jitter). @default {200} */
  initialDelayMs?: number;
  /** Upper bound of one delay. @default {10000} */
  maxDelayMs?: number;
}

/** Options of {@linkcode AzureBlobStorage}; give one way to authenticate, or none (public). */
export interface AzureBlobStorageOptions {
  /**
   * A connection string (`DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…;BlobEndpoint=…`),
   * as used by Azurite; its account is the only one reachable.
   */
  connectionString?: string;
  /** Storage account for `accountKey` / `sasToken`. */
  account?: string;
  /** Shared key of `account`. */
  accountKey?: string;
  /** SAS token (with or without the leading `?`) of `account`. */
  sasToken?: string;
  /** Blob service endpoint suffix. @default {"blob.core.windows.net"} */
  endpointSuffix?: string;
  /**
   * Bytes per staged block (and per downloaded range); grown to whole MiB when a blob would
   * need more than Azure's 50,000 blocks.
   * @default {8388608}
   */
  blockSize?: number;
  /**
   * Blocks uploaded (and ranges downloaded) at once.
   * @default as many as fit, with the one being filled, in 32 MiB (3 for 8 MiB blocks), at most 4
   */
  concurrency?: number;
  /**
   * Blobs larger than this are read by parallel ranged requests instead of one stream;
   * `Infinity` turns ranged reads off.
   * @default {67108864}
   */
  rangedReadThreshold?: number;
  /** Retries of each request (HTTP 408, 429, 5xx, network). @default {{}} */
  retry?: AzureRetryOptions;
  /**
   * Longest time a request may move no byte before it fails with `stalled: no data for N s`.
   * The SDK has no inactivity timeout (`tryTimeoutInMs` bounds a whole try, body included, so
   * it would cut a big blob that is still moving), so each request carries an abort signal of
   * our own watchdog, restarted by every chunk sent or received. A request that stalls before
   * its answer is retried within `retry.maxAttempts`; a stalled body fails the read.
   * @default {`PLANETARY_STORAGE_STALL_SECONDS` × 1000, else 60000}
   */
  stallTimeoutMs?: number;
}

interface BlobLocation {
  account: string;
  container: string;
  blob: string;
  /** SAS carried by an `https://` URL itself. */
  sas: string | undefined;
}

const MIB = 1024 * 1024;
/** Azure's limit of committed blocks per blob. */
const MAX_BLOCKS = 50_000;
/** Bytes per chunk of an upload body handed to the SDK: each one taken restarts the watchdog. */
const SEND_SLICE = 64 * 1024;

/** What a request is given to be watched: an abort signal and a way to report bytes moving. */
interface Watch {
  /** Aborted when the request stalls (or the caller gives up). */
  signal: AbortSignal;
  /** Reports activity (a chunk sent or received). */
  touch: () => void;
}

/**
 * A request body for the SDK that hands `bytes` over in 64 KiB slices, touching the watchdog as
 * each is taken: how far an upload got, seen from the socket's side. A function, so that each
 * attempt gets a fresh stream.
 */
function slicedBody(bytes: Uint8Array, touch: () => void): () => Readable {
  return () => {
    let offset = 0;
    return new Readable({
      highWaterMark: SEND_SLICE,
      read(): void {
        if (offset >= bytes.byteLength) {
          this.push(null);
          return;
        }
        const end = Math.min(offset + SEND_SLICE, bytes.byteLength);
        touch();
        this.push(Buffer.from(bytes.buffer, bytes.byteOffset + offset, end - offset));
        offset = end;
      },
    });
  };
}

/**
 * Storage over Azure Blob. Small blobs are uploaded by one Put Blob; larger ones stage blocks in
 * parallel (each with its MD5, checked by the service) and commit them with the whole blob's
 * MD5. Downloads stream, blobs above 64 MiB by parallel ranged reads, and are checked against
 * the stored `Content-MD5`. Either way at most 32 MiB of blocks or ranges are buffered. Throttling (429) and 5xx are
 * retried with backoff per request. Errors never quote keys or SAS tokens.
 *
 * @example Usage
 * ```ts ignore
 * import { AzureBlobStorage } from "./azure_blob_storage.ts";
 * const az = new AzureBlobStorage({ connectionString: Deno.env.get("AZURE_STORAGE_CONNECTION_STRING")! });
 * await az.read("az://devstoreaccount1/data/reads.fastq");
 * ```
 */
export class AzureBlobStorage implements Storage {
  /** `["az"]` (https URLs on `*.blob.core.windows.net` are routed here by `storageForUrl`). */
  readonly schemes: readonly string[] = ["az"];
  #options: AzureBlobStorageOptions;
  #secrets: string[];
  #clients = new Map<string, Promise<BlobServiceClient>>();
  #connectionAccount: string | undefined;
  #stallTimeoutMs: number;

  /**
   * Creates the adapter; the SDK is loaded at first use.
   *
   * @param options Credentials and tuning.
   * @throws {RangeError} When `PLANETARY_STORAGE_STALL_SECONDS` is set to no positive number.
   */
  constructor(options: AzureBlobStorageOptions = {}) {
    this.#options = options;
    this.#stallTimeoutMs = options.stallTimeoutMs ?? stallTimeoutMsFromEnv();
    const cs = options.connectionString;
    this.#connectionAccount = cs === undefined ? undefined : /AccountName=([^;]+)/i.exec(cs)?.[1];
    const csSecrets = cs === undefined
      ? []
      : [...cs.matchAll(/(?:AccountKey|SharedAccessSignature)=([^;]+)/gi)].map((m) => m[1] ?? "");
    this.#secrets = [
      options.accountKey,
      options.sasToken?.replace(/^\?/, ""),
      ...csSecrets,
    ].filter((s): s is string => typeof s === "string" && s !== "");
  }

  #fail(error: unknown, url: string, operation: string): StorageError {
    return toStorageError(error, { url, operation: `Azure ${operation}`, secrets: this.#secrets });
  }

  /** Block (or range) size and parallelism for a blob of `size` bytes. */
  #plan(size: number | undefined, maxParts: number): PartPlan {
    const { blockSize = 8 * MIB, concurrency } = this.#options;
    return partPlan(size, {
      partSize: blockSize,
      maxParts,
      ...(concurrency === undefined ? {} : { concurrency }),
    });
  }

  #parse(url: string): BlobLocation {
    const az = /^az:\/\/([^/?#]+)\/([^/?#]+)(\/[^?#]*)?/i.exec(url);
    const suffix = (this.#options.endpointSuffix ?? "blob.core.windows.net").replace(/\./g, "\\.");
    const https = new RegExp(
      `^https://([a-z0-9]+)\\.${suffix}/([^/?#]+)(/[^?#]*)?(?:\\?([^#]*))?`,
      "i",
    ).exec(url);
    const match = az ?? https;
    if (match === null) {
      throw new StorageError(
        "not an Azure Blob URL (expected az://account/container/blob)",
        { code: "INVALID_URL", url },
      );
    }
    const blob = decodeSegments((match[3] ?? "/").slice(1), url).join("/");
    const sas = https?.[4] ? https[4] : undefined;
    return { account: match[1] ?? "", container: match[2] ?? "", blob, sas };
  }

  async #service(url: string, loc: BlobLocation): Promise<BlobServiceClient> {
    const key = `${loc.account}?${loc.sas ?? ""}`;
    let client = this.#clients.get(key);
    if (client === undefined) {
      client = this.#createService(url, loc);
      client.catch(() => this.#clients.delete(key));
      this.#clients.set(key, client);
    }
    return await client;
  }

  async #createService(url: string, loc: BlobLocation): Promise<BlobServiceClient> {
    guardOsRelease();
    const sdk = await import("@azure/storage-blob");
    const o = this.#options;
    // Retries are ours (withRetry): the SDK's policy does not retry 429.
    const pipeline: StoragePipelineOptions = { retryOptions: { maxTries: 1 } };
    const endpoint = `https://${loc.account}.${o.endpointSuffix ?? "blob.core.windows.net"}`;
    if (loc.sas !== undefined) {
      return new sdk.BlobServiceClient(`${endpoint}?${loc.sas}`, undefined, pipeline);
    }
    if (o.connectionString !== undefined && loc.account === this.#connectionAccount) {
      try {
        return sdk.BlobServiceClient.fromConnectionString(o.connectionString, pipeline);
      } catch (error) {
        throw this.#fail(error, url, "connection string");
      }
    }
    if (o.account === loc.account && o.accountKey !== undefined) {
      const credential = new sdk.StorageSharedKeyCredential(o.account, o.accountKey);
      return new sdk.BlobServiceClient(endpoint, credential, pipeline);
    }
    if (o.account === loc.account && o.sasToken !== undefined) {
      const sas = o.sasToken.replace(/^\?/, "");
      return new sdk.BlobServiceClient(`${endpoint}?${sas}`, undefined, pipeline);
    }
    if (this.#connectionAccount !== undefined || o.account !== undefined) {
      throw new StoragePermissionError(
        `no credentials configured for storage account "${loc.account}"`,
        url,
      );
    }
    return new sdk.BlobServiceClient(endpoint, undefined, pipeline); // anonymous (public)
  }

  async #container(url: string, loc: BlobLocation): Promise<ContainerClient> {
    return (await this.#service(url, loc)).getContainerClient(loc.container);
  }

  /**
   * Runs one request with retries; each attempt is watched by its own {@linkcode StallWatchdog}
   * (ended when the attempt settles), whose signal and touch `fn` hands to the SDK. A stalled
   * attempt counts as a network failure (retried); when attempts run out the error is a
   * {@linkcode StallError} saying how many stalled.
   */
  async #retry<T>(
    fn: (watch: Watch) => Promise<T>,
    url: string,
    operation: string,
    outer?: AbortSignal,
  ): Promise<T> {
    let attempts = 0;
    try {
      return await withRetry(async () => {
        attempts++;
        const watchdog = new StallWatchdog({ timeoutMs: this.#stallTimeoutMs });
        const signal = outer === undefined
          ? watchdog.signal
          : AbortSignal.any([watchdog.signal, outer]);
        try {
          return await fn({ signal, touch: watchdog.touch });
        } catch (error) {
          // Not the SDK's AbortError: a stall is worth another attempt, like a lost connection.
          if (watchdog.stalled) throw new StallError({ timeoutMs: this.#stallTimeoutMs });
          throw error;
        } finally {
          watchdog.stop();
        }
      }, this.#options.retry);
    } catch (error) {
      if (error instanceof StallError) {
        throw new StallError({
          timeoutMs: this.#stallTimeoutMs,
          url,
          operation: `Azure ${operation}`,
          attempts,
        });
      }
      throw this.#fail(error, url, operation);
    }
  }

  async #properties(
    url: string,
    loc: BlobLocation,
  ): Promise<{ size: number; md5: Uint8Array | undefined; etag: string } | undefined> {
    const blob = (await this.#container(url, loc)).getBlobClient(loc.blob);
    try {
      const props = await this.#retry(
        ({ signal }) => blob.getProperties({ abortSignal: signal }),
        url,
        "GetBlobProperties",
      );
      return {
        size: props.contentLength ?? 0,
        md5: props.contentMD5 === undefined ? undefined : new Uint8Array(props.contentMD5),
        etag: props.etag ?? "",
      };
    } catch (error) {
      if (error instanceof StorageError && error.code === "NOT_FOUND") return undefined;
      throw error;
    }
  }

  /**
   * Describes a blob, or a prefix holding blobs.
   *
   * @param url An Azure Blob URL.
   * @returns `file` with its size, `directory` when blobs exist under `blob/`, or `undefined`.
   * @throws {StorageError} On refused credentials or a service failure.
   */
  async stat(url: string): Promise<StorageStat | undefined> {
    const loc = this.#parse(url);
    if (loc.blob !== "" && !loc.blob.endsWith("/")) {
      const props = await this.#properties(url, loc);
      if (props !== undefined) return { type: "file", size: props.size };
    }
    const container = await this.#container(url, loc);
    const page = await this.#retry(
      async ({ signal }) =>
        (await container.listBlobsFlat({ prefix: directoryPrefix(loc.blob), abortSignal: signal })
          .byPage({ maxPageSize: 1 }).next()).value,
      url,
      "ListBlobs",
    );
    return (page?.segment.blobItems.length ?? 0) > 0 ? { type: "directory", size: 0 } : undefined;
  }

  /**
   * Streams a blob; ones above `rangedReadThreshold` by parallel ranged reads pinned to the
   * blob's ETag (8 MiB ranges, 3 in flight). The stream errors at its end when the bytes do not
   * match the stored `Content-MD5`.
   *
   * @param url An Azure Blob URL.
   * @returns The blob's bytes.
   * @throws {StorageNotFoundError} When the blob does not exist.
   * @throws {StorageError} On refused credentials or a service failure.
   */
  async read(url: string): Promise<ReadableStream<Uint8Array>> {
    const loc = this.#parse(url);
    if (loc.blob === "") throw new StorageError("no blob name", { code: "INVALID_URL", url });
    const props = await this.#properties(url, loc);
    if (props === undefined) {
      throw toStorageError({ statusCode: 404, message: "" }, { url, operation: "Azure read" });
    }
    const blob = (await this.#container(url, loc)).getBlobClient(loc.blob);
    const conditions = props.etag ? { conditions: { ifMatch: props.etag } } : {};
    const { rangedReadThreshold = DEFAULT_RANGED_READ_THRESHOLD } = this.#options;
    let body: ReadableStream<Uint8Array>;
    if (props.size > 0 && props.size > rangedReadThreshold) {
      const plan = this.#plan(props.size, Infinity);
      body = rangedRead({
        size: props.size,
        rangeSize: plan.partSize,
        concurrency: plan.concurrency,
        fetchRange: (offset, into, abortSignal) =>
          // One watched attempt covers the request and the range's body, copied into `into`
          // chunk by chunk (downloadToBuffer would report progress only per 4 MiB block).
          this.#retry(
            async ({ signal, touch }) => {
              const range = await blob.download(offset, into.byteLength, {
                abortSignal: signal,
                maxRetryRequests: 0,
                ...conditions,
              });
              const node = range.readableStreamBody;
              if (node === undefined) throw new StorageError("empty response body", { url });
              return await readExactly(touchEach(node as Readable, touch), into);
            },
            url,
            "GetBlob (range)",
            abortSignal,
          ),
      });
    } else if (props.size === 0) {
      body = new ReadableStream({ start: (c) => c.close() });
    } else {
      // The answer is watched per attempt; the body by its reader's waits (a slow consumer
      // never trips it), whose stall aborts the request and its socket.
      const bodyAbort = new AbortController();
      const response = await this.#retry(
        ({ signal }) =>
          blob.download(0, undefined, {
            ...conditions,
            abortSignal: AbortSignal.any([signal, bodyAbort.signal]),
          }),
        url,
        "GetBlob",
      );
      const node = response.readableStreamBody;
      if (node === undefined) throw new StorageError("empty response body", { url });
      body = withStallTimeout(
        mapStreamErrors(
          Readable.toWeb(node as Readable) as unknown as ReadableStream<Uint8Array>,
          (error) => this.#fail(error, url, "GetBlob (body)"),
        ),
        {
          timeoutMs: this.#stallTimeoutMs,
          url,
          operation: "Azure GetBlob (body)",
          onStall: () => bodyAbort.abort(),
        },
      );
    }
    return props.md5 === undefined ? body : body.pipeThrough(verifyMd5(props.md5, url));
  }

  /**
   * Uploads a stream as a block blob. A blob that fits in one block is sent by one Put Blob
   * once the stream has ended; a larger one is staged in blocks (sized from `size` so that at
   * most 32 MiB of blocks are buffered, and at most 50,000 blocks are needed), each with its
   * MD5, then committed. Either way the service checks the MD5 of what it received and stores
   * the blob's MD5 (`Content-MD5`, checked again by {@linkcode AzureBlobStorage.read}). Nothing
   * is visible until the Put Blob or the commit.
   *
   * @param url An Azure Blob URL.
   * @param stream The bytes.
   * @param options `size` chooses the block size and is enforced.
   * @returns The number of bytes written.
   * @throws {StorageError} On refused credentials, a service failure or a size mismatch.
   */
  async write(
    url: string,
    stream: ReadableStream<Uint8Array>,
    options: StorageWriteOptions = {},
  ): Promise<StorageWriteResult> {
    const loc = await writeLocation(url, stream, (u) => this.#parse(u), (l) => l.blob, "a blob");
    const blob = (await this.#container(url, loc)).getBlockBlobClient(loc.blob);
    const counter = byteCounter(url, options.size);
    const md5 = md5Tap();
    const plan = this.#plan(options.size, MAX_BLOCKS);
    const nonce = crypto.randomUUID().slice(0, 8);
    const ids: string[] = [];
    let committed = false;
    try {
      await chunkedUpload(stream.pipeThrough(counter.stream).pipeThrough(md5.stream), {
        ...plan,
        ...(options.size === undefined ? {} : { size: options.size }),
        uploadPart: async (index, bytes, last) => {
          const partMd5 = new Uint8Array(createHash("md5").update(bytes).digest());
          if (index === 0 && last) {
            // The whole blob in one request (the stream has ended: its size was checked).
            await this.#retry(
              ({ signal, touch }) =>
                blob.upload(slicedBody(bytes, touch), bytes.byteLength, {
                  abortSignal: signal,
                  transactionalContentMD5: partMd5,
                  blobHTTPHeaders: { blobContentMD5: partMd5 },
                }),
              url,
              "PutBlob",
            );
            committed = true;
            return;
          }
          if (bytes.byteLength === 0) return;
          const id = btoa(`${nonce}-${String(index).padStart(8, "0")}`);
          ids[index] = id;
          await this.#retry(
            ({ signal, touch }) =>
              blob.stageBlock(id, slicedBody(bytes, touch), bytes.byteLength, {
                abortSignal: signal,
                transactionalContentMD5: partMd5,
              }),
            url,
            "PutBlock",
          );
        },
      });
      if (!committed) {
        const blobContentMD5 = md5.digest();
        await this.#retry(
          ({ signal }) =>
            blob.commitBlockList(ids.filter((id) => id !== undefined), {
              abortSignal: signal,
              blobHTTPHeaders: { blobContentMD5 },
            }),
          url,
          "PutBlockList",
        );
      }
    } catch (error) {
      throw this.#fail(error, url, "upload");
    }
    return { size: counter.bytes() };
  }

  /**
   * Lists every blob under `url` taken as a directory (`blob/`).
   *
   * @param url An Azure Blob URL of a container or prefix.
   * @returns The blobs with their paths relative to the prefix.
   * @throws {StorageError} On refused credentials or a service failure.
   */
  async *list(url: string): AsyncIterable<StorageEntry> {
    const loc = this.#parse(url);
    const prefix = directoryPrefix(loc.blob);
    const container = await this.#container(url, loc);
    let token: string | undefined;
    do {
      const page = await this.#retry(
        async ({ signal }) =>
          (await container.listBlobsFlat({ prefix, abortSignal: signal }).byPage({
            maxPageSize: 5000,
            ...(token === undefined ? {} : { continuationToken: token }),
          }).next()).value,
        url,
        "ListBlobs",
      );
      for (const item of page?.segment.blobItems ?? []) {
        const relativePath = item.name.slice(prefix.length);
        if (relativePath === "" || relativePath.endsWith("/")) continue;
        // A SAS carried by the listed URL is needed to read each blob too.
        const sas = loc.sas === undefined ? "" : `?${loc.sas}`;
        yield {
          url: childUrl(url, relativePath) + sas,
          relativePath,
          size: item.properties.contentLength ?? 0,
        };
      }
      token = page?.continuationToken || undefined;
    } while (token !== undefined);
  }
}
