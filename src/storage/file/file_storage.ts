/**
 * The `file://` storage adapter: files on a local (or mounted) filesystem, confined to an
 * allow-list of directories.
 *
 * @module
 */
import { joinUrl, type Storage, type StorageEntry, type StorageStat } from "../storage.ts";
import type { StorageWriteOptions, StorageWriteResult } from "../storage.ts";
import { StorageError, StorageNotFoundError, StoragePermissionError } from "../storage_error.ts";
import { redactText } from "../redact_url.ts";

/** Options of {@linkcode FileStorage}. */
export interface FileStorageOptions {
  /**
   * Absolute directories the adapter may read and write, each including everything below it.
   * Symlinks in these paths are resolved once, at first use. Empty: every `file://` URL is
   * refused.
   * @default {[]}
   */
  allowList?: readonly string[];
  /**
   * Folder under which `file://` paths are found: `file:///a/b` is read at `<root>/a/b`. A
   * backend that shares host folders with a container at another path (the local backend
   * mounts them under `/planetary/host`) sets it; the allow-list is in URL paths.
   * @default "" (URL paths are real paths)
   */
  root?: string;
}

/**
 * Storage over `file://` URLs. Every URL is checked against the allow-list after resolving
 * symlinks (`realpath`), so neither `..` segments nor a symlink pointing outside an allowed
 * directory can escape it. Writes go to a temporary file beside the target, then are renamed.
 *
 * The check and the open are two steps: a process that can replace a directory with a symlink
 * between them can still race it. The adapter is meant for trusted mounts, not for a
 * filesystem an attacker writes concurrently.
 *
 * @example Usage
 * ```ts ignore
 * import { FileStorage } from "./file_storage.ts";
 * const storage = new FileStorage({ allowList: ["/data"] });
 * const stat = await storage.stat("file:///data/input.txt");
 * ```
 */
export class FileStorage implements Storage {
  /** `["file"]`. */
  readonly schemes: readonly string[] = ["file"];
  #allowList: readonly string[];
  #root: string;
  #realAllowList: Promise<string[]> | undefined;

  /**
   * Creates the adapter.
   *
   * @param options The allow-list.
   * @throws {TypeError} When an allow-list entry is not an absolute path.
   */
  constructor(options: FileStorageOptions = {}) {
    const { allowList = [], root = "" } = options;
    if (root !== "" && !root.startsWith("/")) {
      throw new TypeError(`file storage root must be an absolute path: "${root}"`);
    }
    this.#root = root.replace(/\/+$/, "");
    for (const dir of allowList) {
      if (!dir.startsWith("/")) {
        throw new TypeError(`file allow-list entry must be an absolute path: "${dir}"`);
      }
    }
    this.#allowList = allowList;
  }

  /**
   * Describes the file or directory at a `file://` URL.
   *
   * @param url A `file://` URL inside the allow-list.
   * @returns Its size and type, or `undefined` when it does not exist.
   * @throws {StoragePermissionError} When the URL resolves outside the allow-list.
   */
  async stat(url: string): Promise<StorageStat | undefined> {
    const path = await this.#checkedPath(url);
    try {
      const info = await Deno.stat(path);
      return info.isDirectory ? { size: 0, type: "directory" } : { size: info.size, type: "file" };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw mapError(error, url);
    }
  }

  /**
   * Opens a file for streaming reads.
   *
   * @param url A `file://` URL of a regular file inside the allow-list.
   * @returns A stream of the file's bytes.
   * @throws {StorageNotFoundError} When the file does not exist.
   * @throws {StoragePermissionError} When the URL resolves outside the allow-list.
   */
  async read(url: string): Promise<ReadableStream<Uint8Array>> {
    const path = await this.#checkedPath(url, { mustExist: true });
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      throw mapError(error, url);
    }
    try {
      const info = await file.stat();
      if (!info.isFile) {
        throw new StorageError("not a regular file", { code: "IO_ERROR", url });
      }
    } catch (error) {
      file.close();
      throw mapError(error, url);
    }
    return file.readable;
  }

  /**
   * Writes a file from a stream: parent directories are created, bytes go to a temporary file
   * in the target's directory, which is renamed over the target once complete.
   *
   * @param url A `file://` URL inside the allow-list.
   * @param stream The bytes to write.
   * @param options `size`: when set, a stream of another length fails the write.
   * @returns How many bytes were written.
   * @throws {StoragePermissionError} When the URL resolves outside the allow-list.
   * @throws {StorageError} On an I/O failure or a size mismatch (the target is left as it was).
   */
  async write(
    url: string,
    stream: ReadableStream<Uint8Array>,
    options: StorageWriteOptions = {},
  ): Promise<StorageWriteResult> {
    const path = await this.#checkedPath(url, {});
    const slash = path.lastIndexOf("/");
    const dir = path.slice(0, slash) || "/";
    const base = path.slice(slash + 1);
    if (base === "") {
      await stream.cancel().catch(() => {});
      throw new StorageError("cannot write a file at a directory URL", {
        code: "INVALID_URL",
        url,
      });
    }
    const temp = `${dir}/.${base}.${crypto.randomUUID()}.tmp`;
    let size = 0;
    try {
      await Deno.mkdir(dir, { recursive: true });
      // Re-check after creating parents: a created directory cannot be a symlink, but an
      // existing one could have been replaced meanwhile.
      await this.#checkedPath(url, {});
      const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
      const counter = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          size += chunk.byteLength;
          controller.enqueue(chunk);
        },
      });
      await stream.pipeThrough(counter).pipeTo(file.writable);
      if (options.size !== undefined && options.size !== size) {
        throw new StorageError(
          `size mismatch: expected ${options.size} bytes, got ${size}`,
          { code: "IO_ERROR", url },
        );
      }
      await Deno.rename(temp, path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      await stream.cancel().catch(() => {});
      throw mapError(error, url);
    }
    return { size };
  }

  /**
   * Lists every regular file under a directory, recursively. Symlinks are followed only when
   * their target stays inside the allow-list; a symlink pointing outside fails the listing.
   *
   * @param url A `file://` URL of a directory inside the allow-list.
   * @returns The files under it.
   * @throws {StorageNotFoundError} When the directory does not exist.
   * @throws {StoragePermissionError} When the URL or a symlink resolves outside the allow-list.
   */
  async *list(url: string): AsyncIterable<StorageEntry> {
    const root = await this.#checkedPath(url, { mustExist: true });
    const rootInfo = await Deno.stat(root).catch((error) => {
      throw mapError(error, url);
    });
    if (!rootInfo.isDirectory) {
      throw new StorageError("not a directory", { code: "IO_ERROR", url });
    }
    const allow = await this.#realAllow();
    const visited = new Set<string>([root]);
    const pending: { dir: string; rel: string }[] = [{ dir: root, rel: "" }];
    while (pending.length > 0) {
      const { dir, rel } = pending.pop()!;
      const names: Deno.DirEntry[] = [];
      try {
        for await (const entry of Deno.readDir(dir)) names.push(entry);
      } catch (error) {
        throw mapError(error, joinUrl(url, rel));
      }
      names.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
      for (const entry of names) {
        const childRel = rel === "" ? entry.name : `${rel}/${entry.name}`;
        let childPath = `${dir}/${entry.name}`;
        const childUrl = joinUrl(url, childRel);
        if (entry.isSymlink) {
          const real = await Deno.realPath(childPath).catch(() => undefined);
          if (real === undefined) continue; // dangling symlink: nothing to copy
          if (!isInsideAny(real, allow)) {
            throw new StoragePermissionError("symlink leads outside the allow-list", childUrl);
          }
          childPath = real;
        }
        const info = await Deno.stat(childPath).catch((error) => {
          throw mapError(error, childUrl);
        });
        if (info.isDirectory) {
          if (visited.has(childPath)) continue; // symlink loop
          visited.add(childPath);
          pending.push({ dir: childPath, rel: childRel });
        } else if (info.isFile) {
          yield { url: childUrl, relativePath: childRel, size: info.size };
        }
      }
    }
  }

  async #realAllow(): Promise<string[]> {
    this.#realAllowList ??= Promise.all(
      this.#allowList.map((dir) => resolveReal(this.#root + dir)),
    );
    return await this.#realAllowList;
  }

  /** Resolves a URL to a real path inside the allow-list, or throws. */
  async #checkedPath(url: string, { mustExist = false } = {}): Promise<string> {
    const path = this.#root + filePathFromUrl(url);
    let real: string;
    try {
      real = await resolveReal(path);
    } catch (error) {
      throw mapError(error, url);
    }
    if (!isInsideAny(real, await this.#realAllow())) {
      throw new StoragePermissionError("outside the file allow-list", url);
    }
    if (mustExist) {
      try {
        await Deno.stat(real);
      } catch (error) {
        throw mapError(error, url);
      }
    }
    return real;
  }
}

/**
 * Converts a `file://` URL to an absolute path, refusing `.`/`..` segments (also
 * percent-encoded) rather than normalising them away.
 */
function filePathFromUrl(url: string): string {
  const match = /^file:\/\/([^/?#]*)(\/[^?#]*)?/i.exec(url);
  if (match === null || (match[1] !== "" && match[1]?.toLowerCase() !== "localhost")) {
    throw new StorageError("not a local file URL (expected file:///absolute/path)", {
      code: "INVALID_URL",
      url,
    });
  }
  const rawPath = match[2] ?? "/";
  let segments: string[];
  try {
    segments = rawPath.split("/").map((segment) => decodeURIComponent(segment));
  } catch (error) {
    throw new StorageError("malformed percent-encoding", {
      code: "INVALID_URL",
      url,
      cause: error,
    });
  }
  for (const segment of segments) {
    if (segment === "." || segment === "..") {
      throw new StoragePermissionError("'.' and '..' path segments are refused", url);
    }
    if (segment.includes("/") || segment.includes("\0")) {
      throw new StoragePermissionError("encoded '/' or NUL in a path segment", url);
    }
  }
  const path = segments.join("/").replace(/\/+/g, "/");
  return path.length > 1 ? path.replace(/\/$/, "") : path;
}

/**
 * The real path of `path`: `realpath` of its deepest existing ancestor, followed by the
 * segments that do not exist yet.
 */
async function resolveReal(path: string): Promise<string> {
  const missing: string[] = [];
  let current = path;
  while (true) {
    try {
      const real = await Deno.realPath(current);
      return [real === "/" ? "" : real, ...missing].join("/") || "/";
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || current === "/") throw error;
      const slash = current.lastIndexOf("/");
      missing.unshift(current.slice(slash + 1));
      current = current.slice(0, slash) || "/";
    }
  }
}

function isInsideAny(path: string, roots: readonly string[]): boolean {
  return roots.some((root) => root === "/" || path === root || path.startsWith(`${root}/`));
}

function mapError(error: unknown, url?: string): StorageError {
  if (error instanceof StorageError) return error;
  if (url !== undefined && error instanceof Deno.errors.NotFound) {
    return new StorageNotFoundError(url, error);
  }
  if (url !== undefined && error instanceof Deno.errors.PermissionDenied) {
    return new StoragePermissionError("filesystem permission", url, error);
  }
  const detail = error instanceof Error ? redactText(error.message) : String(error);
  return new StorageError(`file I/O failed (${detail})`, {
    code: "IO_ERROR",
    ...(url === undefined ? {} : { url }),
    cause: error,
  });
}
