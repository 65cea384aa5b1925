/**
 * The storage configuration of the transporter, from its environment.
 *
 * @module
 */
import { cloudStorageFromEnv, type StorageConfig } from "../src/storage/mod.ts";

/**
 * Reads the transporter's storage configuration from the environment:
 * `PLANETARY_FILE_ALLOW_LIST` is a `:`-separated list of absolute directories `file://` URLs
 * may touch (unset: none); `PLANETARY_FILE_ROOT` is the folder under which those paths are found
 * (the local backend shares host folders under `/planetary/host`; unset: real paths). Cloud
 * stores (`s3://`, `az://`, `gs://`) are configured by their providers' variables, see
 * `cloudStorageFromEnv()`.
 *
 * @returns The configuration for `storageForUrl()`.
 */
export function storageConfigFromEnv(): StorageConfig {
  const allow = (Deno.env.get("PLANETARY_FILE_ALLOW_LIST") ?? "").split(":").filter((p) =>
    p !== ""
  );
  const root = Deno.env.get("PLANETARY_FILE_ROOT") ?? "";
  const { adapters } = cloudStorageFromEnv();
  return { fileAllowList: allow, ...(root ? { fileRoot: root } : {}), adapters };
}
