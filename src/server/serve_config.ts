/**
 * How `planetary serve` is configured: command-line flags, then environment variables, then a
 * JSON config file, then defaults (the first that sets a value wins).
 *
 * @module
 */
import { z } from "zod";
import type { ApiConfig } from "../api/config.ts";
import type { ServeOptions } from "./start_server.ts";
import { cloudStorageFromEnv } from "../storage/cloud_storage_from_env.ts";
import { isStorageVariable, storageEnvironment } from "./storage_environment.ts";

/** Raised when a flag, environment variable or config file holds a bad value. */
export class ServeConfigError extends Error {
  /** Stable error code. */
  readonly code = "SERVE_CONFIG";
  /**
   * Builds the error.
   *
   * @param message What is wrong, naming the flag, variable or field.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ServeConfigError";
  }
}

/** The values given as flags (strings as typed, undefined when absent). */
export interface ServeFlags {
  /** `--host`. */
  host?: string | undefined;
  /** `--port`. */
  port?: string | undefined;
  /** `--data-dir`. */
  dataDir?: string | undefined;
  /** `--database-url`. */
  databaseUrl?: string | undefined;
  /** `--log-requests` (`true` or `false`). */
  logRequests?: string | undefined;
  /** `--config`: path of a JSON config file. */
  config?: string | undefined;
  /** `--backend`: `local` (run tasks on this machine) or `none` (API only). */
  backend?: string | undefined;
  /** `--work-dir`: folder of the local backend's pods. */
  workDir?: string | undefined;
  /** `--max-tasks`: tasks run at once. */
  maxTasks?: string | undefined;
  /** `--file-allow`: folders `file://` URLs may use (repeatable). */
  fileAllow?: string[] | undefined;
  /** `--storage-schemes`: comma list of the URL schemes inputs and outputs may use. */
  storageSchemes?: string | undefined;
  /** `--cors-origin`: origins allowed by CORS (repeatable). */
  corsOrigin?: string[] | undefined;
  /** `--allow-host`: host names the `Host` header may carry besides loopback (repeatable). */
  allowHost?: string[] | undefined;
  /** `--shared-dir`: folders tasks see at the same path as this machine (repeatable). */
  sharedDir?: string[] | undefined;
  /** `--runtime`: `auto`, `host`, `docker` or `podman`. */
  runtime?: string | undefined;
  /** `--task-user`: `UID:GID` that executors of the host runtime run as. */
  taskUser?: string | undefined;
  /** `--max-run-seconds`: longest a task's pod may run. */
  maxRunSeconds?: string | undefined;
  /** `--max-running-per-owner`: most live tasks of one task owner (`0`: no limit). */
  maxRunningPerOwner?: string | undefined;
}

/** The URL schemes `--storage-schemes` may name. */
export const STORAGE_SCHEMES: readonly string[] = Object.freeze([
  "file",
  "http",
  "https",
  "s3",
  "gs",
  "az",
]);

const stringMap = z.record(z.string(), z.string());

/** Schema of the JSON config file of `planetary serve`. */
const ServeConfigFileSchema = z.strictObject({
  host: z.string().min(1).optional(),
  port: z.number().int().min(0).max(65535).optional(),
  dataDir: z.string().min(1).optional(),
  databaseUrl: z.string().min(1).optional(),
  execution: z.union([
    z.literal(false),
    z.strictObject({
      workDir: z.string().min(1).optional(),
      maxConcurrentTasks: z.number().int().positive().optional(),
      fileAllowList: z.array(z.string().startsWith("/")).optional(),
      sharedDirs: z.array(z.string().startsWith("/")).optional(),
      runtime: z.enum(["auto", "host", "docker", "podman"]).optional(),
      taskUser: z.strictObject({ uid: z.number().int().min(0), gid: z.number().int().min(0) })
        .optional(),
      maxRunSeconds: z.number().int().positive().optional(),
      maxRunningPerOwner: z.number().int().min(0).optional(),
      leaseMs: z.number().int().positive().optional(),
      pollIntervalMs: z.number().int().positive().optional(),
    }),
  ]).optional(),
  api: z.strictObject({
    serviceInfo: z.strictObject({
      id: z.string().optional(),
      name: z.string().optional(),
      description: z.string().optional(),
      organization: z.strictObject({ name: z.string(), url: z.string() }).optional(),
      contactUrl: z.string().optional(),
      documentationUrl: z.string().optional(),
      environment: z.string().optional(),
      createdAt: z.string().optional(),
      updatedAt: z.string().optional(),
      version: z.string().optional(),
      storage: z.array(z.string()).optional(),
    }).optional(),
    supportedBackendParameters: z.array(z.string()).optional(),
    maxBodyBytes: z.number().int().positive().optional(),
    maxBatchTasks: z.number().int().positive().optional(),
    maxContentBytes: z.number().int().positive().optional(),
    allowedUrlSchemes: z.array(z.string()).optional(),
    fileAllowList: z.array(z.string().startsWith("/")).optional(),
    corsOrigins: z.array(z.string()).optional(),
    allowedHosts: z.array(z.string()).optional(),
    bodyTimeoutMs: z.number().int().positive().optional(),
    logRequests: z.boolean().optional(),
    authTokens: stringMap.optional(),
  }).optional(),
});

/**
 * Parses the content of a config file.
 *
 * @param text The file's text (JSON).
 * @param source Where it came from, for messages.
 * @returns The options it sets.
 * @throws {ServeConfigError} For invalid JSON or an unknown or mistyped field.
 * @example
 * ```ts
 * import { parseServeConfig } from "./serve_config.ts";
 * parseServeConfig('{"port": 9000, "api": {"logRequests": false}}', "inline").port; // 9000
 * ```
 */
export function parseServeConfig(text: string, source: string): ServeOptions {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ServeConfigError(`${source}: not valid JSON`, { cause });
  }
  const parsed = ServeConfigFileSchema.safeParse(json);
  if (!parsed.success) {
    const detail = parsed.error.issues
      .map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`)
      .join("; ");
    throw new ServeConfigError(`${source}: ${detail}`);
  }
  return dropUndefined(parsed.data) as ServeOptions;
}

/**
 * An environment: its variables (e.g. `Deno.env.toObject()`), or a function that reads one
 * (which cannot be listed: then only the cloud storage variables that `cloudStorageFromEnv`
 * asks for reach the transporter).
 */
export type ServeEnvironment =
  | Readonly<Record<string, string | undefined>>
  | ((name: string) => string | undefined);

/**
 * Combines flags, environment (`PLANETARY_HOST`, `PLANETARY_PORT`, `PLANETARY_DATA_DIR`,
 * `DATABASE_URL`, `PLANETARY_STORAGE_SCHEMES`, `PLANETARY_CORS_ORIGINS`,
 * `PLANETARY_ALLOWED_HOSTS`, `PLANETARY_SHARED_DIRS`, `PLANETARY_MAX_RUNNING_PER_OWNER`…) and
 * the config file named by `--config` into the options of
 * {@linkcode startServer}. The environment's cloud storage variables (see `CLOUD_STORAGE_ENV`)
 * configure which URL schemes the API accepts and become `execution.storageEnv`: the
 * transporter's settings and credentials.
 *
 * @param flags The parsed flags.
 * @param environment The environment. @default Deno.env.toObject()
 * @returns Options for `startServer` (signals handled, listening announced).
 * @throws {ServeConfigError} For a bad port, boolean, scheme, shared folder or config file.
 * @example
 * ```ts
 * import { resolveServeOptions } from "./serve_config.ts";
 * const options = await resolveServeOptions({ port: "0" }, () => undefined);
 * options.port; // 0
 * ```
 */
export async function resolveServeOptions(
  flags: ServeFlags,
  environment: ServeEnvironment = Deno.env.toObject(),
): Promise<ServeOptions> {
  const read: (name: string) => string | undefined = typeof environment === "function"
    ? environment
    : (name) => Object.hasOwn(environment, name) ? environment[name] : undefined;
  // What cloudStorageFromEnv reads, for an environment that cannot be listed.
  const asked: Record<string, string | undefined> = {};
  const env = (name: string): string | undefined => {
    const value = read(name);
    if (isStorageVariable(name)) asked[name] = value;
    return value;
  };
  let file: ServeOptions = {};
  if (flags.config !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(flags.config);
    } catch (cause) {
      throw new ServeConfigError(`--config ${flags.config}: cannot read the file`, { cause });
    }
    file = parseServeConfig(text, flags.config);
  }
  const pick = (flag: string | undefined, name: string): string | undefined =>
    flag ?? (env(name) || undefined);

  const options: ServeOptions = { ...file, handleSignals: true, announce: true };
  const host = pick(flags.host, "PLANETARY_HOST");
  if (host !== undefined) options.host = host;
  const port = pick(flags.port, "PLANETARY_PORT");
  if (port !== undefined) options.port = parsePort(port);
  const dataDir = pick(flags.dataDir, "PLANETARY_DATA_DIR");
  if (dataDir !== undefined) options.dataDir = dataDir;
  const databaseUrl = pick(flags.databaseUrl, "DATABASE_URL");
  if (databaseUrl !== undefined) options.databaseUrl = databaseUrl;
  const backend = pick(flags.backend, "PLANETARY_BACKEND");
  if (backend !== undefined && backend !== "local" && backend !== "none") {
    throw new ServeConfigError(`--backend: must be local or none, got "${backend}"`);
  }
  if (backend === "none") {
    options.execution = false;
  } else if (options.execution !== false) {
    const execution = { ...options.execution };
    const workDir = pick(flags.workDir, "PLANETARY_WORK_DIR");
    if (workDir !== undefined) execution.workDir = workDir;
    const maxTasks = pick(flags.maxTasks, "PLANETARY_MAX_TASKS");
    if (maxTasks !== undefined) {
      const n = /^[0-9]{1,6}$/.test(maxTasks) ? Number(maxTasks) : 0;
      if (n < 1) {
        throw new ServeConfigError(`--max-tasks: must be a positive integer, got "${maxTasks}"`);
      }
      execution.maxConcurrentTasks = n;
    }
    if (flags.fileAllow !== undefined && flags.fileAllow.length > 0) {
      for (const dir of flags.fileAllow) {
        if (!dir.startsWith("/")) {
          throw new ServeConfigError(`--file-allow: must be an absolute folder, got "${dir}"`);
        }
      }
      execution.fileAllowList = flags.fileAllow;
    }
    const sharedDirs = flags.sharedDir !== undefined && flags.sharedDir.length > 0
      ? flags.sharedDir
      : splitList(env("PLANETARY_SHARED_DIRS"), ":") ?? execution.sharedDirs;
    if (sharedDirs !== undefined) {
      execution.sharedDirs = await checkSharedDirs(sharedDirs);
    }
    const runtime = pick(flags.runtime, "PLANETARY_RUNTIME");
    if (runtime !== undefined) {
      if (
        runtime !== "auto" && runtime !== "host" && runtime !== "docker" && runtime !== "podman"
      ) {
        throw new ServeConfigError(
          `--runtime: must be auto, host, docker or podman, got "${runtime}"`,
        );
      }
      execution.runtime = runtime;
    }
    const taskUser = pick(flags.taskUser, "PLANETARY_TASK_USER");
    if (taskUser !== undefined) execution.taskUser = parseTaskUser(taskUser);
    const maxRun = pick(flags.maxRunSeconds, "PLANETARY_MAX_RUN_SECONDS");
    if (maxRun !== undefined) {
      const n = /^[0-9]{1,9}$/.test(maxRun) ? Number(maxRun) : 0;
      if (n < 1) {
        throw new ServeConfigError(
          `--max-run-seconds: must be a positive integer, got "${maxRun}"`,
        );
      }
      execution.maxRunSeconds = n;
    }
    const perOwner = pick(flags.maxRunningPerOwner, "PLANETARY_MAX_RUNNING_PER_OWNER");
    if (perOwner !== undefined) {
      if (!/^[0-9]{1,7}$/.test(perOwner)) {
        throw new ServeConfigError(
          `--max-running-per-owner: must be a whole number, 0 for no limit, got "${perOwner}"`,
        );
      }
      execution.maxRunningPerOwner = Number(perOwner);
    }
    options.execution = execution;
  }
  const api: ApiConfig = { ...options.api };
  const schemes = splitList(pick(flags.storageSchemes, "PLANETARY_STORAGE_SCHEMES"), ",");
  if (schemes !== undefined) api.allowedUrlSchemes = parseSchemes(schemes);
  const origins = nonEmpty(flags.corsOrigin) ?? splitList(env("PLANETARY_CORS_ORIGINS"), ",");
  if (origins !== undefined) api.corsOrigins = origins;
  const hosts = nonEmpty(flags.allowHost) ?? splitList(env("PLANETARY_ALLOWED_HOSTS"), ",");
  if (hosts !== undefined) api.allowedHosts = hosts;
  if (Object.keys(api).length > 0) options.api = api;
  // Accept (and advertise) the cloud stores the transporter will find in this environment.
  const cloud = cloudStorageFromEnv(env);
  options.cloudStorage = { schemes: cloud.schemes, prefixes: cloud.prefixes };
  if (options.execution !== false) {
    const storageEnv = storageEnvironment(typeof environment === "function" ? asked : environment);
    if (Object.keys(storageEnv).length > 0) {
      options.execution = { ...options.execution, storageEnv };
    }
  }
  if (flags.logRequests !== undefined) {
    options.api = { ...options.api, logRequests: parseBoolean(flags.logRequests) };
  }
  return options;
}

/** Splits a list variable, dropping empty items; undefined when unset or empty. */
function splitList(value: string | undefined, separator: string): string[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(separator).map((item) => item.trim()).filter((item) => item !== "");
  return items.length > 0 ? items : undefined;
}

function nonEmpty(values: string[] | undefined): string[] | undefined {
  return values !== undefined && values.length > 0 ? values : undefined;
}

function parseSchemes(schemes: readonly string[]): string[] {
  const parsed = schemes.map((scheme) => scheme.toLowerCase().replace(/:(\/\/)?$/, ""));
  const unknown = parsed.filter((scheme) => !STORAGE_SCHEMES.includes(scheme));
  if (unknown.length > 0) {
    throw new ServeConfigError(
      `--storage-schemes: unknown scheme ${unknown.map((s) => `"${s}"`).join(", ")}; ` +
        `use a comma list of ${STORAGE_SCHEMES.join(", ")}`,
    );
  }
  return [...new Set(parsed)];
}

/** Checks that every shared folder is absolute and an existing folder; returns them. */
async function checkSharedDirs(dirs: readonly string[]): Promise<string[]> {
  for (const dir of dirs) {
    if (!dir.startsWith("/")) {
      throw new ServeConfigError(`--shared-dir: must be an absolute folder, got "${dir}"`);
    }
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(dir);
    } catch (cause) {
      const why = cause instanceof Deno.errors.NotFound ? "does not exist" : "cannot be read";
      throw new ServeConfigError(`--shared-dir ${dir}: ${why}; create it first`, { cause });
    }
    if (!info.isDirectory) {
      throw new ServeConfigError(`--shared-dir ${dir}: is not a folder; give a folder`);
    }
  }
  return [...dirs];
}

function parseTaskUser(value: string): { uid: number; gid: number } {
  const match = /^([0-9]{1,9}):([0-9]{1,9})$/.exec(value);
  if (match === null) {
    throw new ServeConfigError(
      `--task-user: must be UID:GID (numbers, e.g. "$(id -u):$(id -g)"), got "${value}"`,
    );
  }
  return { uid: Number(match[1]), gid: Number(match[2]) };
}

function parsePort(value: string): number {
  const port = /^[0-9]{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    throw new ServeConfigError(`--port: must be an integer from 0 to 65535, got "${value}"`);
  }
  return port;
}

function parseBoolean(value: string): boolean {
  if (value === "true" || value === "") return true;
  if (value === "false") return false;
  throw new ServeConfigError(`--log-requests: must be true or false, got "${value}"`);
}

function dropUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropUndefined);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, dropUndefined(v)]),
  );
}
