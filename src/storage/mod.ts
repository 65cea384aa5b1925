/**
 * Storage adapters behind one interface, chosen by URL: `file://` (confined to an
 * allow-list), `http(s)://` (download only), and the cloud adapters `s3://` (S3Storage),
 * `az://` (AzureBlobStorage) and `gs://` (GcsStorage), which plug in through
 * {@linkcode StorageConfig.adapters} — {@linkcode cloudStorageFromEnv} builds them from the
 * providers' standard environment variables.
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
export * from "./s3/s3_storage.ts";
export * from "./azure/azure_blob_storage.ts";
export * from "./gcs/gcs_storage.ts";
export * from "./cloud_storage_from_env.ts";
