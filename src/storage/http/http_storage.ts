/**
 * The `http://` / `https://` storage adapter: downloads only, streamed, with retries.
 *
 * @module
 */
import type {
  Storage,
  StorageEntry,
  StorageStat,
  StorageWriteOptions,
  StorageWriteResult,
} from "../storage.ts";
import { StorageError, StorageNotFoundError, StoragePermissionError } from "../storage_error.ts";
import { redactText } from "../redact_url.ts";
import { stallMessage, stallTimeoutMsFromEnv, withStallTimeout } from "../_stall_timeout.ts";

/** Options of {@linkcode HttpStorage}. */
export interface HttpStorageOptions {
  /** How many times a request is tried in total before giving up. @default {5} */
  maxAttempts?: number;
  /** Delay before the first retry, doubled after each attempt. @default {500} */
  initialDelayMs?: number;
  /** Upper bound of the exponential backoff delay. @default {30000} */
  maxDelayMs?: number;
  /** Upper bound of a server's `Retry-After` that is honoured. @default {120000} */
  maxRetryAfterMs?: number;
  /**
   * Randomise each backoff delay between half and all of its value, so that many clients do
   * not retry in lockstep. Never applied to a `Retry-After` delay.
   * @default {true}
   */
  jitter?: boolean;
  /** Extra request headers (e.g. `User-Agent`). @default {{}} */
  headers?: Record<string, string>;
  /**
   * How to wait between attempts; tests inject one to observe delays without waiting.
   * @default {(ms) => new Promise((resolve) => setTimeout(resolve, ms))}
   */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Longest wait for the response headers or for the next chunk of a body, in milliseconds:
   * a request that receives nothing for that long fails with `stalled: no data for N s` (no
   * headers yet: retried like a network error; mid-body: the read fails).
   * @default {`PLANETARY_STORAGE_STALL_SECONDS` × 1000, else 60000}
   */
  stallTimeoutMs?: number;
}

/**
 * Storage over `http://` and `https://` URLs, read-only. Requests that fail with a network
 * error, HTTP 408, 429 or 5xx are retried with capped exponential backoff, honouring
 * `Retry-After`. A retry happens only before the body starts streaming: a connection lost in
 * the middle of a body fails the read.
 *
 * @example Usage
 * ```ts ignore
 * import { HttpStorage } from "./http_storage.ts";
 * const storage = new HttpStorage({ maxAttempts: 3 });
 * const body = await storage.read("https://example.org/data.txt");
 * ```
 */
export class HttpStorage implements Storage {
  /** `["http", "https"]`. */
  readonly schemes: readonly string[] = ["http", "https"];
  #maxAttempts: number;
  #initialDelayMs: number;
  #maxDelayMs: number;
  #maxRetryAfterMs: number;
  #jitter: boolean;
  #headers: Record<string, string>;
  #sleep: (ms: number) => Promise<void>;
  #stallTimeoutMs: number;

  /**
   * Creates the adapter.
   *
   * @param options Retry policy, stall timeout and headers.
   * @throws {RangeError} When `PLANETARY_STORAGE_STALL_SECONDS` is set to no positive number.
   */
  constructor(options: HttpStorageOptions = {}) {
    const {
      maxAttempts = 5,
      initialDelayMs = 500,
      maxDelayMs = 30_000,
      maxRetryAfterMs = 120_000,
      jitter = true,
      headers = {},
      sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
      stallTimeoutMs = stallTimeoutMsFromEnv(),
    } = options;
    this.#maxAttempts = Math.max(1, maxAttempts);
    this.#initialDelayMs = initialDelayMs;
    this.#maxDelayMs = maxDelayMs;
    this.#maxRetryAfterMs = maxRetryAfterMs;
    this.#jitter = jitter;
    this.#headers = headers;
    this.#sleep = sleep;
    this.#stallTimeoutMs = stallTimeoutMs;
  }

  /**
   * Describes a URL with a `HEAD` request (falling back to `GET` when `HEAD` is refused).
   *
   * @param url An `http(s)://` URL.
   * @returns `{ type: "file", size }` (size from `Content-Length`, 0 when absent), or
   *   `undefined` on HTTP 404/410.
   * @throws {StoragePermissionError} On HTTP 401/403.
   * @throws {StorageError} On other failures after retries.
   */
  async stat(url: string): Promise<StorageStat | undefined> {
    let { response } = await this.#fetch("HEAD", url, { allowMissing: true });
    if (response.status === 405 || response.status === 501) {
      ({ response } = await this.#fetch("GET", url, { allowMissing: true }));
    }
    await response.body?.cancel().catch(() => {});
    if (response.status === 404 || response.status === 410) return undefined;
    const length = Number(response.headers.get("content-length") ?? "0");
    return { type: "file", size: Number.isFinite(length) ? length : 0 };
  }

  /**
   * Downloads a URL as a stream.
   *
   * @param url An `http(s)://` URL.
   * @returns The response body.
   * @throws {StorageNotFoundError} On HTTP 404/410.
   * @throws {StoragePermissionError} On HTTP 401/403.
   * @throws {StorageError} On other failures after retries; reading the stream fails with
   *   `stalled: no data for N s` when the server sends nothing for `stallTimeoutMs`.
   */
  async read(url: string): Promise<ReadableStream<Uint8Array>> {
    const { response, abort } = await this.#fetch("GET", url, { allowMissing: false });
    if (!response.body) return new ReadableStream({ start: (c) => c.close() });
    return withStallTimeout(response.body, {
      timeoutMs: this.#stallTimeoutMs,
      url,
      onStall: abort,
    });
  }

  /**
   * Always fails: HTTP(S) is a download-only source.
   *
   * @param url The destination URL.
   * @param stream Cancelled.
   * @param _options Ignored.
   * @returns Never.
   * @throws {StorageError} With code `UNSUPPORTED`.
   */
  async write(
    url: string,
    stream: ReadableStream<Uint8Array>,
    _options?: StorageWriteOptions,
  ): Promise<StorageWriteResult> {
    await stream.cancel().catch(() => {});
    throw new StorageError("upload over http(s) is not supported", { code: "UNSUPPORTED", url });
  }

  /**
   * Always fails: HTTP has no directory listing, so a DIRECTORY input cannot come from an
   * `http(s)://` URL.
   *
   * @param url The directory URL.
   * @returns Never yields.
   * @throws {StorageError} With code `UNSUPPORTED`.
   */
  list(url: string): AsyncIterable<StorageEntry> {
    return {
      [Symbol.asyncIterator](): AsyncIterator<StorageEntry> {
        return {
          next(): Promise<IteratorResult<StorageEntry>> {
            return Promise.reject(
              new StorageError(
                "listing a directory over http(s) is not supported (use a FILE input per file)",
                { code: "UNSUPPORTED", url },
              ),
            );
          },
        };
      },
    };
  }

  async #fetch(
    method: "GET" | "HEAD",
    url: string,
    { allowMissing }: { allowMissing: boolean },
  ): Promise<{ response: Response; abort: () => void }> {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
    if (scheme !== "http" && scheme !== "https") {
      throw new StorageError("not an http(s) URL", { code: "INVALID_URL", url });
    }
    let lastFailure = "";
    let lastCause: unknown;
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      let retryAfterMs: number | undefined;
      const request = new AbortController();
      const abort = (): void => request.abort();
      let stalled = false;
      const timer = setTimeout(() => {
        stalled = true;
        abort();
      }, this.#stallTimeoutMs);
      try {
        const response = await fetch(url, {
          method,
          headers: this.#headers,
          redirect: "follow",
          signal: request.signal,
        }).finally(() => clearTimeout(timer));
        if (response.ok) return { response, abort };
        const status = response.status;
        if (status === 404 || status === 410) {
          if (allowMissing) return { response, abort };
          await response.body?.cancel().catch(() => {});
          throw new StorageNotFoundError(url);
        }
        if (allowMissing && (status === 405 || status === 501) && method === "HEAD") {
          return { response, abort };
        }
        await response.body?.cancel().catch(() => {});
        if (status === 401 || status === 403) {
          throw new StoragePermissionError(`HTTP ${status}`, url);
        }
        if (!isRetryable(status)) {
          throw new StorageError(`${method} failed with HTTP ${status}`, {
            code: "IO_ERROR",
            url,
          });
        }
        lastFailure = `HTTP ${status}`;
        lastCause = undefined;
        retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
      } catch (error) {
        if (error instanceof StorageError) throw error;
        lastFailure = stalled
          ? stallMessage(this.#stallTimeoutMs).replace("no data", "no response")
          : error instanceof Error
          ? redactText(error.message)
          : String(error);
        lastCause = error;
      }
      if (attempt < this.#maxAttempts) await this.#sleep(this.#delay(attempt, retryAfterMs));
    }
    throw new StorageError(
      `${method} failed after ${this.#maxAttempts} attempts (last: ${lastFailure})`,
      { code: "IO_ERROR", url, cause: lastCause },
    );
  }

  #delay(attempt: number, retryAfterMs: number | undefined): number {
    if (retryAfterMs !== undefined) return Math.min(retryAfterMs, this.#maxRetryAfterMs);
    const capped = Math.min(this.#maxDelayMs, this.#initialDelayMs * 2 ** (attempt - 1));
    return this.#jitter ? Math.round(capped / 2 + Math.random() * capped / 2) : capped;
  }
}

function isRetryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Parses a `Retry-After` header: delta-seconds or an HTTP date.
 *
 * @param value The header value.
 * @param now The current time in ms (for HTTP dates).
 * @returns Milliseconds to wait, or `undefined` when absent or malformed.
 */
export function parseRetryAfter(
  value: string | null,
  now: number = Date.now(),
): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
