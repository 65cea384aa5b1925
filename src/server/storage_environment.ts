/**
 * The cloud storage settings of `planetary serve`'s own environment, handed to the transporter
 * containers (and only to them) as an in-memory Secret of the local backend.
 *
 * @module
 */
import { CLOUD_STORAGE_ENV } from "../storage/cloud_storage_from_env.ts";

/**
 * Name of the local backend's Secret that holds {@linkcode storageEnvironment}; the pod builder
 * names it in the transporter containers' `envFrom`.
 */
export const STORAGE_SECRET_NAME = "planetary-storage";

/** Variables under a storage prefix that configure the server itself, not the transporter. */
const SERVER_ONLY: ReadonlySet<string> = new Set(["PLANETARY_STORAGE_SCHEMES"]);

/**
 * Whether an environment variable configures cloud storage (matches an entry of
 * `CLOUD_STORAGE_ENV`: an exact name, or a prefix written with a final `*`).
 *
 * @param name A variable name.
 * @returns True for `AWS_SECRET_ACCESS_KEY`, `PLANETARY_S3_ENDPOINT`…; false for `PATH`.
 * @example
 * ```ts
 * import { isStorageVariable } from "./storage_environment.ts";
 * isStorageVariable("AZURE_STORAGE_CONNECTION_STRING"); // true
 * isStorageVariable("HOME"); // false
 * isStorageVariable("PLANETARY_STORAGE_SCHEMES"); // false (the server's own setting)
 * ```
 */
export function isStorageVariable(name: string): boolean {
  if (SERVER_ONLY.has(name)) return false;
  return CLOUD_STORAGE_ENV.some((entry) =>
    entry.endsWith("*") ? name.startsWith(entry.slice(0, -1)) : name === entry
  );
}

/**
 * The cloud storage variables of an environment (empty values left out).
 *
 * @param env The environment, e.g. `Deno.env.toObject()`.
 * @returns The variables that {@linkcode isStorageVariable} accepts, with their values.
 * @example
 * ```ts
 * import { storageEnvironment } from "./storage_environment.ts";
 * storageEnvironment({ PATH: "/bin", AWS_REGION: "eu-west-1", AWS_PROFILE: "" });
 * // { AWS_REGION: "eu-west-1" }
 * ```
 */
export function storageEnvironment(
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const found: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && value !== "" && isStorageVariable(name)) found[name] = value;
  }
  return found;
}
