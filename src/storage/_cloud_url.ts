/**
 * Parsing of cloud object URLs (`s3://bucket/key`, `gs://bucket/object`,
 * `az://account/container/blob`) into their decoded parts.
 *
 * @module
 */
import { StorageError } from "./storage_error.ts";

/** A bucket (or container) and an object key, both percent-decoded. */
export interface ObjectLocation {
  /** Bucket or container name. */
  bucket: string;
  /** Object key without a leading `/`; `""` for the bucket's root. */
  key: string;
}

/**
 * Decodes a `/`-separated, percent-encoded URL path into its segments.
 *
 * @param path The raw path (no query or fragment).
 * @param url The whole URL, for the error message.
 * @returns The decoded segments.
 * @throws {StorageError} With code `INVALID_URL` on malformed percent-encoding.
 */
export function decodeSegments(path: string, url: string): string[] {
  try {
    return path.split("/").map((segment) => decodeURIComponent(segment));
  } catch (cause) {
    throw new StorageError("malformed percent-encoding", { code: "INVALID_URL", url, cause });
  }
}

/**
 * Splits `scheme://bucket/key` into its bucket and key (decoded). Query and fragment are
 * ignored.
 *
 * @param url The URL.
 * @param scheme The expected scheme, lower case without `:`.
 * @returns The bucket and key.
 * @throws {StorageError} With code `INVALID_URL` when the URL is not `scheme://bucket/...`.
 */
export function parseBucketUrl(url: string, scheme: string): ObjectLocation {
  const match = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]+)(\/[^?#]*)?/i.exec(url);
  if (match === null || match[1]?.toLowerCase() !== scheme) {
    throw new StorageError(`not a ${scheme}:// URL (expected ${scheme}://bucket/key)`, {
      code: "INVALID_URL",
      url,
    });
  }
  const bucket = match[2] ?? "";
  const key = decodeSegments((match[3] ?? "/").slice(1), url).join("/");
  return { bucket, key };
}

/**
 * Key prefix that lists everything "inside" `key` taken as a directory: `""` for the
 * bucket's root, otherwise the key with exactly one trailing `/`.
 *
 * @param key An object key.
 * @returns The listing prefix.
 */
export function directoryPrefix(key: string): string {
  const trimmed = key.replace(/\/+$/, "");
  return trimmed === "" ? "" : `${trimmed}/`;
}

/**
 * The URL of an object found by listing under `baseUrl`: `baseUrl` joined with the part of
 * the key after the prefix, each segment percent-encoded.
 *
 * @param baseUrl The listed directory URL.
 * @param relativePath The key relative to the listing prefix.
 * @returns The object's URL.
 */
export function childUrl(baseUrl: string, relativePath: string): string {
  const clean = baseUrl.replace(/[?#].*$/s, "").replace(/\/+$/, "");
  return `${clean}/${relativePath.split("/").map(encodeURIComponent).join("/")}`;
}

/**
 * Resolves where a write goes, refusing a directory URL (empty key or trailing `/`). On any
 * refusal the incoming stream is canceled, so its producer is not left hanging.
 *
 * @param url The target URL.
 * @param stream The bytes that would be written.
 * @param parse Parses the URL into a location.
 * @param keyOf The object key (blob name) of a location.
 * @param noun What an object is called in this store, for the message ("an object", "a blob").
 * @returns The location.
 * @throws {StorageError} With code `INVALID_URL` for a directory URL, or whatever `parse` throws.
 */
export async function writeLocation<T>(
  url: string,
  stream: ReadableStream<Uint8Array>,
  parse: (url: string) => T,
  keyOf: (location: T) => string,
  noun: string,
): Promise<T> {
  try {
    const location = parse(url);
    const key = keyOf(location);
    if (key === "" || key.endsWith("/")) {
      throw new StorageError(`cannot write ${noun} at a directory URL`, {
        code: "INVALID_URL",
        url,
      });
    }
    return location;
  } catch (error) {
    await stream.cancel().catch(() => {});
    throw error;
  }
}
