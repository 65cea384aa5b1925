/**
 * Configuration of the HTTP API: service-info fields, limits, CORS, logging and authentication,
 * with their defaults.
 *
 * @module
 */

/** Service-info fields an operator sets (the rest is fixed by the TES specification). */
export interface ServiceInfoConfig {
  /** Reverse-domain id of this service. @default "io.planetary.tes" */
  id?: string;
  /** Human-readable name. @default "Planetary" */
  name?: string;
  /** Description for people. */
  description?: string;
  /** Who runs this service. @default {name: "Planetary", url: "https://github.com/planetary"} */
  organization?: { name: string; url: string };
  /** Contact URL (`mailto:` or https). */
  contactUrl?: string;
  /** Documentation URL. */
  documentationUrl?: string;
  /** Deployment environment (prod, test, …). */
  environment?: string;
  /** When the service was created (RFC 3339). */
  createdAt?: string;
  /** When the service was last updated (RFC 3339). */
  updatedAt?: string;
  /** Version of the service. @default the version in deno.json */
  version?: string;
  /** Storage locations the service can read and write (`s3://bucket`, `file:///data`). @default [] */
  storage?: string[];
}

/** Everything the API can be configured with; every field has a default. */
export interface ApiConfig {
  /** Service-info fields. @default {} */
  serviceInfo?: ServiceInfoConfig;
  /**
   * `tesResources.backend_parameters` keys the backends support (case-insensitive). Listed in
   * service-info; unknown keys are dropped, or refused with `backend_parameters_strict`.
   * @default []
   */
  supportedBackendParameters?: readonly string[];
  /** Largest accepted request body in bytes; larger ones get a 413. @default 16 MiB */
  maxBodyBytes?: number;
  /** Largest inline input `content` in bytes (passed to validation). @default validation's own */
  maxContentBytes?: number;
  /** URL schemes accepted for inputs and outputs (passed to validation). @default validation's own */
  allowedUrlSchemes?: readonly string[];
  /**
   * Origins allowed by CORS. `["*"]` allows every origin without credentials; an explicit
   * list answers with the matching origin. An empty list turns CORS off.
   * @default ["*"]
   */
  corsOrigins?: readonly string[];
  /** Write one JSON line per request to the logger (off for benchmarks). @default true */
  logRequests?: boolean;
  /**
   * Bearer tokens and the user each one authenticates. When set (and not empty), every TES
   * route answers 401 without a valid `Authorization: Bearer <token>`, and each user sees only
   * the tasks they created. Health checks and service-info stay public. The services can read
   * them from a file instead (`PLANETARY_AUTH_TOKENS_FILE`, see `auth_tokens_file.ts`), so that
   * tokens come from a Kubernetes Secret rather than a config file.
   * @default undefined (no authentication)
   */
  authTokens?: Readonly<Record<string, string>>;
}

/** An {@linkcode ApiConfig} with every default filled in. */
export interface ResolvedApiConfig {
  /** Service-info fields. */
  serviceInfo: ServiceInfoConfig;
  /** Supported backend parameter keys. */
  supportedBackendParameters: readonly string[];
  /** Largest accepted request body in bytes. */
  maxBodyBytes: number;
  /** Largest inline input `content` in bytes, when set. */
  maxContentBytes: number | undefined;
  /** Accepted URL schemes, when set. */
  allowedUrlSchemes: readonly string[] | undefined;
  /** Origins allowed by CORS. */
  corsOrigins: readonly string[];
  /** Whether requests are logged. */
  logRequests: boolean;
  /** Token → user, or undefined without authentication. */
  authTokens: ReadonlyMap<string, string> | undefined;
}

/** Default largest request body: 16 MiB. */
export const DEFAULT_MAX_BODY_BYTES: number = 16 * 1024 * 1024;

/**
 * Fills in the defaults of an API configuration and checks its numbers.
 *
 * @param config The configuration as given.
 * @returns The configuration with every default filled in.
 * @throws {RangeError} When `maxBodyBytes` is not a positive integer.
 * @example
 * ```ts
 * import { resolveApiConfig } from "./config.ts";
 * resolveApiConfig({}).maxBodyBytes; // 16777216
 * ```
 */
export function resolveApiConfig(config: ApiConfig = {}): ResolvedApiConfig {
  const maxBodyBytes = config.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) {
    throw new RangeError(`maxBodyBytes: must be a positive integer, got ${maxBodyBytes}`);
  }
  const tokens = Object.entries(config.authTokens ?? {});
  return {
    serviceInfo: { ...config.serviceInfo },
    supportedBackendParameters: [...(config.supportedBackendParameters ?? [])],
    maxBodyBytes,
    maxContentBytes: config.maxContentBytes,
    allowedUrlSchemes: config.allowedUrlSchemes,
    corsOrigins: [...(config.corsOrigins ?? ["*"])],
    logRequests: config.logRequests ?? true,
    authTokens: tokens.length > 0 ? new Map(tokens) : undefined,
  };
}
