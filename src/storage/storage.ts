/**
 * The storage contract: one interface that every adapter (`file://`, `http(s)://`, and the
 * cloud adapters `s3://`, `gs://`, `az://`) implements, chosen by URL scheme with
 * `storageForUrl()`.
 *
 * Rules every adapter follows:
 * - Streaming only: `read` returns a stream and `write` consumes one; no adapter holds a
 *   whole object in memory.
 * - A "directory" URL is a prefix: `list("s3://b/dir")` yields every object under `dir/`,
 *   each with its path relative to the prefix (`a/b.txt`, `/`-separated, never `..`).
 * - URL paths are percent-encoded (see {@linkcode joinUrl}); adapters decode them to get the
 *   file path or object key.
 * - Errors are {@linkcode StorageError}s (`StorageNotFoundError`, `StoragePermissionError`, …)
 *   whose messages name the URL without credentials, query string or fragment.
 *
 * @module
 */

/** What {@linkcode Storage.stat} reports about a URL. */
export interface StorageStat {
  /** Size in bytes (0 for a directory, and when the remote side does not say). */
  size: number;
  /** Whether the URL names one object/file or a directory (a prefix holding objects). */
  type: "file" | "directory";
}

/** One file found by {@linkcode Storage.list}. */
export interface StorageEntry {
  /** Full URL of the file, readable with {@linkcode Storage.read}. */
  url: string;
  /** Path relative to the listed URL, `/`-separated, without `.` or `..` segments. */
  relativePath: string;
  /** Size in bytes. */
  size: number;
}

/** Options of {@linkcode Storage.write}. */
export interface StorageWriteOptions {
  /**
   * Number of bytes the stream will yield, when known. Adapters may use it to choose an upload
   * strategy (single request vs. multipart) and MUST fail when the stream yields a different
   * number of bytes.
   */
  size?: number;
}

/** What {@linkcode Storage.write} reports. */
export interface StorageWriteResult {
  /** Number of bytes written. */
  size: number;
}

/**
 * A place files are read from and written to, addressed by URL.
 *
 * @example Usage
 * ```ts ignore
 * import { storageForUrl } from "./storage_for_url.ts";
 * const storage = storageForUrl("file:///data/in.txt", { fileAllowList: ["/data"] });
 * const stream = await storage.read("file:///data/in.txt");
 * ```
 */
export interface Storage {
  /** URL schemes this adapter handles, lower case without `:` (e.g. `["http", "https"]`). */
  readonly schemes: readonly string[];

  /**
   * Describes what a URL names.
   *
   * @param url The URL.
   * @returns Its size and type, or `undefined` when nothing exists there.
   * @throws {StorageError} On refused access or an I/O failure.
   */
  stat(url: string): Promise<StorageStat | undefined>;

  /**
   * Opens a file for reading.
   *
   * @param url The file's URL.
   * @returns A stream of its bytes; the caller must consume or cancel it.
   * @throws {StorageNotFoundError} When the file does not exist.
   * @throws {StorageError} On refused access or an I/O failure.
   */
  read(url: string): Promise<ReadableStream<Uint8Array>>;

  /**
   * Writes a file from a stream, replacing any file at that URL. A reader never sees a
   * partially written file where the backend allows it (temp file + rename, multipart commit).
   *
   * @param url The destination URL.
   * @param stream The bytes to write; it is consumed entirely (or cancelled on failure).
   * @param options Size hint.
   * @returns How many bytes were written.
   * @throws {StorageError} With code `UNSUPPORTED` when the adapter is read-only.
   */
  write(
    url: string,
    stream: ReadableStream<Uint8Array>,
    options?: StorageWriteOptions,
  ): Promise<StorageWriteResult>;

  /**
   * Lists every file under a directory URL (recursively), in no particular order.
   *
   * @param url The directory (prefix) URL; a trailing `/` is optional.
   * @returns The files under it.
   * @throws {StorageError} With code `UNSUPPORTED` when the adapter cannot list.
   */
  list(url: string): AsyncIterable<StorageEntry>;
}

/**
 * Joins a directory URL and a `/`-separated relative path, with exactly one `/` between them.
 * Each segment of `relativePath` is percent-encoded as a URL path segment.
 *
 * @param base A directory URL, with or without a trailing `/`.
 * @param relativePath A relative path such as `a/b c.txt`.
 * @returns The joined URL, e.g. `s3://bucket/dir/a/b%20c.txt`.
 *
 * @example Usage
 * ```ts
 * import { joinUrl } from "./storage.ts";
 * joinUrl("s3://bucket/out/", "x/y.txt"); // "s3://bucket/out/x/y.txt"
 * ```
 */
export function joinUrl(base: string, relativePath: string): string {
  const encoded = relativePath.split("/").filter((s) => s !== "").map(encodeURIComponent)
    .join("/");
  return `${base.replace(/\/+$/, "")}/${encoded}`;
}
