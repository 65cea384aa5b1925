/**
 * Configuration of the HTTP API: service-info fields, limits, CORS, the `Host` check, logging
 * and authentication, with their defaults.
 *
 * The defaults are safe for a server on a workstation: CORS is off (a web page cannot read
 * answers), every POST must declare a JSON body (so a page cannot send one without a
 * preflight), and a body must arrive within {@linkcode DEFAULT_BODY_TIMEOUT_MS}. The `Host`
 * check against DNS rebinding is off in the library (an embedding application knows its own
 * names); `planetary serve` turns it on when it listens on loopback.
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
  /**
   * Most tasks in one `POST /tasks:batch` (the body must also fit `maxBodyBytes`).
   * @default 1000
   */
  maxBatchTasks?: number;
  /** URL schemes accepted for inputs and outputs (passed to validation). @default validation's own */
  allowedUrlSchemes?: readonly string[];
  /**
   * Host folders that `file://` inputs and outputs may use (passed to validation, which refuses
   * other `file://` URLs with a 400).
   * @default undefined (validation's own rule)
   */
  fileAllowList?: readonly string[];
  /**
   * Origins allowed by CORS. `["*"]` allows every origin without credentials; an explicit
   * list answers with the matching origin. An empty list turns CORS off, so that no web page
   * can read the API's answers.
   * @default []
   */
  corsOrigins?: readonly string[];
  /**
   * Host names (without port) a request's `Host` header may carry, against DNS rebinding: a web
   * page on `evil.example` whose name is made to resolve to 127.0.0.1 reaches the server with
   * `Host: evil.example` and is refused with a 403. Loopback names and addresses (`localhost`,
   * `*.localhost`, `127.0.0.0/8`, `::1`) are always allowed; `["*"]` allows any host. The health
   * routes (`/healthz`, `/readyz`) are never checked: Kubernetes probes send the pod IP as
   * `Host`, and they reveal nothing.
   * @default undefined (no check)
   */
  allowedHosts?: readonly string[];
  /**
   * How long a request body may take to arrive completely, in milliseconds; a slower one is
   * answered with a 408 (so a client that stalls mid-body cannot hold a request open).
   * @default 30000
   */
  bodyTimeoutMs?: number;
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
  /** Most tasks in one batch create. */
  maxBatchTasks: number;
  /** Accepted URL schemes, when set. */
  allowedUrlSchemes: readonly string[] | undefined;
  /** Host folders `file://` URLs may use, when set. */
  fileAllowList: readonly string[] | undefined;
  /** Origins allowed by CORS; empty when CORS is off. */
  corsOrigins: readonly string[];
  /** Allowed `Host` names besides loopback (lower case, no port), or undefined for no check. */
  allowedHosts: readonly string[] | undefined;
  /** How long a request body may take to arrive, in milliseconds. */
  bodyTimeoutMs: number;
  /** Whether requests are logged. */
  logRequests: boolean;
  /** Token → user, or undefined without authentication. */
  authTokens: ReadonlyMap<string, string> | undefined;
}

/** Default largest request body: 16 MiB. */
export const DEFAULT_MAX_BODY_BYTES: number = 16 * 1024 * 1024;

/** Default largest batch create: 1000 tasks. */
export const DEFAULT_MAX_BATCH_TASKS: number = 1000;

/** Default time a request body may take to arrive: 30 s. */
export const DEFAULT_BODY_TIMEOUT_MS: number = 30_000;

/**
 * Fills in the defaults of an API configuration and checks its numbers.
 *
 * @param config The configuration as given.
 * @returns The configuration with every default filled in.
 * @throws {RangeError} When `maxBodyBytes`, `maxBatchTasks` or `bodyTimeoutMs` is not a positive integer, or an
 * `allowedHosts` entry is empty.
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
  const bodyTimeoutMs = config.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
  if (!Number.isSafeInteger(bodyTimeoutMs) || bodyTimeoutMs <= 0) {
    throw new RangeError(`bodyTimeoutMs: must be a positive integer, got ${bodyTimeoutMs}`);
  }
  const maxBatchTasks = config.maxBatchTasks ?? DEFAULT_MAX_BATCH_TASKS;
  if (!Number.isSafeInteger(maxBatchTasks) || maxBatchTasks <= 0) {
    throw new RangeError(`maxBatchTasks: must be a positive integer, got ${maxBatchTasks}`);
  }
  const allowedHosts = config.allowedHosts?.map((host) => {
    const name = host === "*" ? "*" : hostName(host);
    if (name === "") {
      throw new RangeError(
        `allowedHosts: "${host}" names no host; give a name such as tes.example`,
      );
    }
    return name;
  });
  const tokens = Object.entries(config.authTokens ?? {});
  return {
    serviceInfo: { ...config.serviceInfo },
    supportedBackendParameters: [...(config.supportedBackendParameters ?? [])],
    maxBodyBytes,
    maxContentBytes: config.maxContentBytes,
    maxBatchTasks,
    allowedUrlSchemes: config.allowedUrlSchemes,
    fileAllowList: config.fileAllowList === undefined ? undefined : [...config.fileAllowList],
    corsOrigins: [...(config.corsOrigins ?? [])],
    allowedHosts,
    bodyTimeoutMs,
    logRequests: config.logRequests ?? true,
    authTokens: tokens.length > 0 ? new Map(tokens) : undefined,
  };
}

/**
 * The host name of a `Host` header value (or of an `allowedHosts` entry): lower case, without
 * the port, without the brackets of an IPv6 literal and without a trailing dot.
 *
 * @param host The header value, for example `Example.org:8000` or `[::1]:8000`.
 * @returns The name, for example `example.org` or `::1`; `""` when there is none.
 * @example
 * ```ts
 * import { hostName } from "./config.ts";
 * hostName("[::1]:8000"); // "::1"
 * hostName("Tes.Example:443"); // "tes.example"
 * ```
 */
export function hostName(host: string): string {
  let name = host.trim().toLowerCase();
  if (name.startsWith("[")) {
    const end = name.indexOf("]");
    name = end < 0 ? name.slice(1) : name.slice(1, end);
  } else if (name.indexOf(":") === name.lastIndexOf(":")) {
    // One colon at most: `name:port`. More than one is a bare IPv6 address, kept whole.
    name = name.split(":", 1)[0]!;
  }
  return name.endsWith(".") ? name.slice(0, -1) : name;
}

/**
 * Tells whether a host name (from {@linkcode hostName}) is a loopback name or address:
 * `localhost`, a `*.localhost` name, an IPv4 address in `127.0.0.0/8`, or `::1`.
 *
 * @param name The host name, lower case, without port or brackets.
 * @returns Whether only this machine can be meant.
 * @example
 * ```ts
 * import { isLoopbackHost } from "./config.ts";
 * isLoopbackHost("127.1.2.3"); // true
 * isLoopbackHost("evil.example"); // false
 * ```
 */
export function isLoopbackHost(name: string): boolean {
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  if (name === "::1" || /^(0{1,4}:){7}0{0,3}1$/.test(name)) return true;
  const ipv4 = name.startsWith("::ffff:") ? name.slice(7) : name;
  const octets = ipv4.split(".");
  return octets.length === 4 && octets[0] === "127" &&
    octets.every((octet) => /^(0|[1-9][0-9]{0,2})$/.test(octet) && Number(octet) <= 255);
}
