/**
 * Which cloud stores are configured, read from the standard environment variables of each
 * provider (the way Kubernetes Secrets reach the transporter through `envFrom`).
 *
 * | store | turned on by | settings |
 * |---|---|---|
 * | S3 (`s3://`) | always, unless `PLANETARY_S3=false`; credentials from the SDK's default chain (`AWS_*` variables, `~/.aws` profile files, web identity, container or instance metadata) unless given | `AWS_REGION`, `PLANETARY_S3_ENDPOINT`, `PLANETARY_S3_FORCE_PATH_STYLE` (default `true` with an endpoint), `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` |
 * | Azure (`az://`, `https://*.blob.core.windows.net`) | `AZURE_STORAGE_CONNECTION_STRING`, or `AZURE_STORAGE_ACCOUNT` with `AZURE_STORAGE_KEY` or `AZURE_STORAGE_SAS_TOKEN` | — |
 * | GCS (`gs://`) | always, unless `PLANETARY_GCS=false`; credentials from application-default credentials (`GOOGLE_APPLICATION_CREDENTIALS`, `gcloud auth application-default login`, the metadata server) | `GOOGLE_CLOUD_PROJECT`, `PLANETARY_GCS_ENDPOINT` |
 * | GCS as `https://storage.googleapis.com/…` | `PLANETARY_GCS_ENDPOINT`, `GOOGLE_APPLICATION_CREDENTIALS`, or `PLANETARY_GCS=true` (otherwise those URLs stay plain, anonymous https: public objects) | — |
 *
 * `PLANETARY_STORAGE_RANGED_READ_MIB` (all three): objects above this many MiB are downloaded by
 * parallel ranged requests (8 MiB ranges, 3 at once); `off` downloads every object as one
 * stream. Default 64.
 *
 * `PLANETARY_STORAGE_STALL_SECONDS` (all three, and `http(s)://`): a transfer that moves no byte
 * for this many seconds fails with `stalled: no data for N s`; read by each adapter's
 * constructor (`stallTimeoutMs`). Default 60.
 *
 * GCS with HMAC keys: use `s3://bucket/key` URLs with `PLANETARY_S3_ENDPOINT=https://storage.googleapis.com`,
 * `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` = the HMAC key (checksums then default to
 * `WHEN_REQUIRED`, which GCS's XML API needs).
 *
 * @module
 */
import type { Storage } from "./storage.ts";
import { S3Storage, type S3StorageOptions } from "./s3/s3_storage.ts";
import { AzureBlobStorage, type AzureBlobStorageOptions } from "./azure/azure_blob_storage.ts";
import { GcsStorage, type GcsStorageOptions } from "./gcs/gcs_storage.ts";
import { parseRangedReadMib } from "./_transfer_plan.ts";

/** What {@linkcode cloudStorageFromEnv} found. */
export interface CloudStorageSetup {
  /** Adapters for `StorageConfig.adapters`, keyed by scheme and by https origin. */
  adapters: Record<string, Storage>;
  /** URL schemes of the configured stores (`s3`, `az`, `gs`), in that order. */
  schemes: string[];
  /** URL prefixes to show in service-info (`s3://`, `az://`, `https://*.blob.core.windows.net/`…). */
  prefixes: string[];
}

function truthy(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes|on)$/i.test(value.trim());
}

function falsy(value: string | undefined): boolean {
  return value !== undefined && /^(0|false|no|off)$/i.test(value.trim());
}

/**
 * Builds the cloud adapters that the environment configures. S3 and GCS are always on (with
 * the SDKs' own default credential chains, the way `aws` and `gsutil` behave for a user with
 * `~/.aws` or application-default credentials) unless `PLANETARY_S3=false` /
 * `PLANETARY_GCS=false`; Azure needs an account.
 *
 * @param env Reads a variable. @default Deno.env.get
 * @returns Adapters, schemes and service-info prefixes.
 *
 * @example Usage
 * ```ts
 * import { cloudStorageFromEnv } from "./cloud_storage_from_env.ts";
 * const env: Record<string, string> = { PLANETARY_GCS: "false" };
 * cloudStorageFromEnv((name) => env[name]).schemes; // ["s3"]
 * ```
 */
export function cloudStorageFromEnv(
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): CloudStorageSetup {
  const get = (name: string): string | undefined => {
    const value = env(name);
    return value === undefined || value === "" ? undefined : value;
  };
  const setup: CloudStorageSetup = { adapters: {}, schemes: [], prefixes: [] };
  const threshold = parseRangedReadMib(get("PLANETARY_STORAGE_RANGED_READ_MIB"));
  const ranged = threshold === undefined ? {} : { rangedReadThreshold: threshold };

  const s3Endpoint = get("PLANETARY_S3_ENDPOINT");
  if (!falsy(get("PLANETARY_S3"))) {
    const pathStyle = get("PLANETARY_S3_FORCE_PATH_STYLE");
    const options: S3StorageOptions = {
      ...ranged,
      ...(s3Endpoint === undefined ? {} : { endpoint: s3Endpoint }),
      forcePathStyle: pathStyle === undefined ? s3Endpoint !== undefined : truthy(pathStyle),
    };
    const accessKeyId = get("AWS_ACCESS_KEY_ID");
    const secretAccessKey = get("AWS_SECRET_ACCESS_KEY");
    if (accessKeyId !== undefined && secretAccessKey !== undefined) {
      const sessionToken = get("AWS_SESSION_TOKEN");
      options.credentials = {
        accessKeyId,
        secretAccessKey,
        ...(sessionToken === undefined ? {} : { sessionToken }),
      };
    }
    const region = get("AWS_REGION") ?? get("AWS_DEFAULT_REGION");
    if (region !== undefined) options.region = region;
    setup.adapters.s3 = new S3Storage(options);
    setup.schemes.push("s3");
    setup.prefixes.push("s3://");
  }

  const connectionString = get("AZURE_STORAGE_CONNECTION_STRING");
  const account = get("AZURE_STORAGE_ACCOUNT");
  const key = get("AZURE_STORAGE_KEY");
  const sas = get("AZURE_STORAGE_SAS_TOKEN");
  if (connectionString !== undefined || (account !== undefined && (key ?? sas) !== undefined)) {
    const options: AzureBlobStorageOptions = connectionString !== undefined
      ? { connectionString, ...ranged }
      : {
        account: account!,
        ...(key === undefined ? { sasToken: sas! } : { accountKey: key }),
        ...ranged,
      };
    const azure = new AzureBlobStorage(options);
    setup.adapters.az = azure;
    setup.adapters["https://*.blob.core.windows.net"] = azure;
    setup.schemes.push("az");
    setup.prefixes.push("az://", "https://*.blob.core.windows.net/");
  }

  const gcsEndpoint = get("PLANETARY_GCS_ENDPOINT");
  const keyFile = get("GOOGLE_APPLICATION_CREDENTIALS");
  const gcsSwitch = get("PLANETARY_GCS");
  if (!falsy(gcsSwitch)) {
    const options: GcsStorageOptions = {
      ...ranged,
      ...(gcsEndpoint === undefined ? {} : { apiEndpoint: gcsEndpoint }),
      ...(keyFile === undefined ? {} : { keyFilename: keyFile }),
    };
    const project = get("GOOGLE_CLOUD_PROJECT");
    if (project !== undefined) options.projectId = project;
    const gcs = new GcsStorage(options);
    setup.adapters.gs = gcs;
    setup.schemes.push("gs");
    setup.prefixes.push("gs://");
    // Public objects are often given as https URLs: they stay anonymous https unless GCS is
    // configured on purpose.
    if (gcsEndpoint !== undefined || keyFile !== undefined || truthy(gcsSwitch)) {
      setup.adapters["https://storage.googleapis.com"] = gcs;
      setup.prefixes.push("https://storage.googleapis.com/");
    }
  }
  return setup;
}

/**
 * The environment variables that configure cloud storage: exact names, and prefixes written
 * with a final `*` (every variable that starts with the text before it). Everything
 * {@linkcode cloudStorageFromEnv} reads matches an entry, and so does what the provider SDKs
 * read by themselves (`AWS_ROLE_ARN`, `AWS_CONFIG_FILE`…). `planetary serve` hands exactly
 * these variables to the transporter containers, and to nothing else.
 *
 * @example Usage
 * ```ts
 * import { CLOUD_STORAGE_ENV } from "./cloud_storage_from_env.ts";
 * CLOUD_STORAGE_ENV.includes("AWS_*"); // true
 * ```
 */
export const CLOUD_STORAGE_ENV: readonly string[] = Object.freeze([
  "AWS_*",
  "AZURE_STORAGE_*",
  "GOOGLE_APPLICATION_CREDENTIALS",
  "GOOGLE_CLOUD_PROJECT",
  // Where google-auth-library looks for the metadata server (and whether it looks at all).
  "GCE_METADATA_HOST",
  "GCE_METADATA_IP",
  "METADATA_SERVER_DETECTION",
  "PLANETARY_S3*",
  "PLANETARY_GCS*",
  "PLANETARY_STORAGE_*",
]);
