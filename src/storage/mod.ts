/**
 * Storage adapters behind one interface, chosen by URL: `file://` (confined to an
 * allow-list) and `http(s)://` (download only). Cloud adapters plug in through
 * {@linkcode StorageConfig.adapters}.
 *
 * @example Usage
 * ```ts ignore
 * import { storageForUrl } from "./mod.ts";
 * const url = "https://example.org/reads.fastq";
 * const body = await storageForUrl(url, {}).read(url);
 * ```
 *
 * @module
 */
export * from "./storage.ts";
export * from "./storage_error.ts";
export * from "./redact_url.ts";
export * from "./storage_for_url.ts";
export * from "./file/file_storage.ts";
export * from "./http/http_storage.ts";
