/**
 * Pure helpers for host paths carried in TES `url` fields: turning a bare absolute path
 * (`/data/my file.txt`, as Cromwell and the specification's own example send) into the
 * `file://` URL the file storage adapter reads back to exactly the same path, reading a
 * `file://` URL back into a normalized path, and checking a path against allowed folders.
 *
 * The encoding is the one `src/storage/file/file_storage.ts` decodes: the URL path is split on
 * `/` and each segment is percent-decoded, so each segment is encoded with
 * `encodeURIComponent` (space, `%`, `#`, `?` and non-ASCII all survive the round trip).
 *
 * @module
 */

/** The outcome of {@linkcode filePathFromUrl} and {@linkcode fileUrlFromPath}. */
export type FileUrlResult =
  | { ok: true; /** The normalized absolute path, or the URL. */ value: string }
  | { ok: false; /** Why the path or URL was refused, for a person. */ message: string };

const FILE_URL = /^file:\/\/([^/?#]*)(\/[^?#]*)?([?#].*)?$/is;

/**
 * Normalizes an absolute POSIX path: empty and `.` segments are dropped; `..` segments and
 * relative paths are refused rather than resolved.
 *
 * @param path The path.
 * @returns The normalized path (`/` for the root, no trailing slash), or why it was refused.
 * @example
 * ```ts
 * import { normalizeAbsolutePath } from "./file_url.ts";
 * normalizeAbsolutePath("/data//x/./y/"); // { ok: true, value: "/data/x/y" }
 * normalizeAbsolutePath("/data/../etc"); // { ok: false, message: 'must not contain ".." segments' }
 * ```
 */
export function normalizeAbsolutePath(path: string): FileUrlResult {
  if (!path.startsWith("/")) return { ok: false, message: "must be an absolute path" };
  const kept: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") return { ok: false, message: 'must not contain ".." segments' };
    kept.push(segment);
  }
  return { ok: true, value: `/${kept.join("/")}` };
}

/**
 * Converts a bare absolute host path into a `file://` URL that the file storage adapter reads
 * back to the same path. Empty and `.` segments are dropped; a trailing slash is kept.
 *
 * @param path An absolute path such as `/data/run 1/#a?.txt`.
 * @returns `{ ok: true, value: "file:///data/run%201/%23a%3F.txt" }`, or why the path was refused
 *   (relative, or holding `..` segments).
 * @example
 * ```ts
 * import { fileUrlFromPath } from "./file_url.ts";
 * fileUrlFromPath("/data/my file.txt"); // { ok: true, value: "file:///data/my%20file.txt" }
 * ```
 */
export function fileUrlFromPath(path: string): FileUrlResult {
  const normalized = normalizeAbsolutePath(path);
  if (!normalized.ok) return normalized;
  const encoded = normalized.value.split("/").map(encodeURIComponent).join("/");
  const trailing = path.endsWith("/") && normalized.value !== "/" ? "/" : "";
  return { ok: true, value: `file://${encoded}${trailing}` };
}

/**
 * Reads the host path of a `file://` URL the way the file storage adapter does, refusing
 * what it would refuse: a host other than empty or `localhost`, a query or fragment (the
 * adapter would silently cut them off), malformed percent-encoding, an encoded `/` or NUL in
 * a segment, and `.` or `..` segments (encoded or not).
 *
 * @param url A URL starting with `file:` (case-insensitive).
 * @returns The decoded, normalized path (no `//`, no trailing slash), or why it was refused.
 * @example
 * ```ts
 * import { filePathFromUrl } from "./file_url.ts";
 * filePathFromUrl("file:///data/my%20file.txt"); // { ok: true, value: "/data/my file.txt" }
 * filePathFromUrl("file://server/share").ok; // false
 * ```
 */
export function filePathFromUrl(url: string): FileUrlResult {
  const match = FILE_URL.exec(url);
  if (match === null) {
    return { ok: false, message: "must be a file URL of an absolute path (file:///path)" };
  }
  const host = match[1] ?? "";
  if (host !== "" && host.toLowerCase() !== "localhost") {
    return {
      ok: false,
      message:
        `file URL host "${host}" is not this machine (use file:///path or file://localhost/path)`,
    };
  }
  if (match[3] !== undefined) {
    return {
      ok: false,
      message: 'file URL must not hold a query or fragment (encode "?" as %3F and "#" as %23)',
    };
  }
  const segments: string[] = [];
  for (const raw of (match[2] ?? "/").split("/")) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return { ok: false, message: "file URL has malformed percent-encoding" };
    }
    if (segment === "." || segment === "..") {
      return { ok: false, message: 'file URL must not contain "." or ".." segments' };
    }
    if (segment.includes("/") || segment.includes("\0")) {
      return { ok: false, message: 'file URL must not encode "/" or NUL in a path segment' };
    }
    if (segment !== "") segments.push(segment);
  }
  return { ok: true, value: `/${segments.join("/")}` };
}

/**
 * Whether a normalized absolute path is one of the folders or below one, on folder
 * boundaries: `/tmp` holds `/tmp` and `/tmp/x`, not `/tmpx`; `/` holds everything. Folders
 * are normalized first; a relative folder or one with `..` segments holds nothing.
 *
 * @param path A normalized absolute path (from {@linkcode normalizeAbsolutePath} or
 *   {@linkcode filePathFromUrl}).
 * @param folders Absolute host folders.
 * @returns `true` when `path` is inside one of them.
 * @example
 * ```ts
 * import { isInsideFolders } from "./file_url.ts";
 * isInsideFolders("/tmp/x", ["/tmp/"]); // true
 * isInsideFolders("/tmpx", ["/tmp"]); // false
 * ```
 */
export function isInsideFolders(path: string, folders: readonly string[]): boolean {
  return folders.some((folder) => {
    const normalized = normalizeAbsolutePath(folder);
    if (!normalized.ok) return false;
    const root = normalized.value;
    return root === "/" || path === root || path.startsWith(`${root}/`);
  });
}
