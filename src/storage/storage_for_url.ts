/**
 * Chooses the storage adapter for a URL by its scheme.
 *
 * @module
 */
import { FileStorage } from "./file/file_storage.ts";
import { HttpStorage, type HttpStorageOptions } from "./http/http_storage.ts";
import type { Storage } from "./storage.ts";
import { StorageError } from "./storage_error.ts";

/** Configuration of {@linkcode storageForUrl}. */
export interface StorageConfig {
  /**
   * Absolute directories `file://` URLs may touch; empty refuses every `file://` URL.
   * @default {[]}
   */
  fileAllowList?: readonly string[];
  /** Folder under which `file://` paths are found (see `FileStorageOptions.root`). @default "" */
  fileRoot?: string;
  /** Retry policy and headers of the `http(s)://` adapter. @default {{}} */
  http?: HttpStorageOptions;
  /**
   * Extra or replacement adapters by scheme (lower case, without `:`), consulted first. This
   * is how cloud adapters (`s3`, `gs`, `az`) plug in. A key may also be an `https://` origin,
   * optionally with a `*.` wildcard host (`https://storage.googleapis.com`,
   * `https://*.blob.core.windows.net`): it takes URLs on that host that carry no query string
   * (a presigned URL, which does, stays with the plain `https` adapter).
   * @default {{}}
   */
  adapters?: Readonly<Record<string, Storage>>;
}

/**
 * Returns the URL scheme, lower case without `:`.
 *
 * @param url Any URL.
 * @returns The scheme, or `undefined` when the string has none.
 */
export function urlScheme(url: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
}

/**
 * Picks the adapter for a URL by its scheme.
 *
 * @param url The URL to read or write.
 * @param config Allow-list, HTTP options and extra adapters.
 * @returns The adapter that handles `url`.
 * @throws {StorageError} With code `UNSUPPORTED_SCHEME` naming the scheme when no adapter
 *   handles it.
 *
 * @example Usage
 * ```ts
 * import { storageForUrl } from "./storage_for_url.ts";
 * const storage = storageForUrl("https://example.org/x", {});
 * storage.schemes; // ["http", "https"]
 * ```
 */
export function storageForUrl(url: string, config: StorageConfig = {}): Storage {
  const { fileAllowList = [], fileRoot = "", http = {}, adapters = {} } = config;
  const scheme = urlScheme(url);
  const byHost = hostAdapter(url, adapters);
  if (byHost !== undefined) return byHost;
  if (scheme !== undefined && Object.hasOwn(adapters, scheme)) {
    const adapter = adapters[scheme];
    if (adapter !== undefined) return adapter;
  }
  switch (scheme) {
    case "file":
      return new FileStorage({ allowList: fileAllowList, root: fileRoot });
    case "http":
    case "https":
      return new HttpStorage(http);
    default:
      throw new StorageError(
        scheme === undefined
          ? "URL has no scheme (expected e.g. https://, s3://, file://)"
          : `no storage adapter for URL scheme "${scheme}:"`,
        { code: "UNSUPPORTED_SCHEME", url },
      );
  }
}

/** The adapter registered for the URL's `https://` origin (see `StorageConfig.adapters`). */
function hostAdapter(
  url: string,
  adapters: Readonly<Record<string, Storage>>,
): Storage | undefined {
  const match = /^(https?):\/\/([^/?#@]+)(?:\/[^?#]*)?(\?)?/i.exec(url);
  if (match === null || match[3] !== undefined) return undefined;
  const origin = `${match[1]!.toLowerCase()}://${match[2]!.toLowerCase()}`;
  for (const [key, adapter] of Object.entries(adapters)) {
    if (!key.includes("://")) continue;
    const pattern = key.toLowerCase().replace(/\/+$/, "");
    const wildcard = /^(https?:\/\/)\*\.(.+)$/.exec(pattern);
    if (
      pattern === origin ||
      (wildcard !== null && origin.startsWith(wildcard[1]!) && origin.endsWith(`.${wildcard[2]}`))
    ) {
      return adapter;
    }
  }
  return undefined;
}
