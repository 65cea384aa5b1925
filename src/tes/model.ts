/**
 * TES v1.1 data model as zod schemas, with the TypeScript types inferred from them.
 *
 * The schemas describe what the API ACCEPTS from clients (lenient about unknown keys, which are
 * dropped) and what the server STORES; the strict rendering of a task for a response lives in
 * `view.ts`. Validation rules that zod cannot express on one field (absolute paths, wildcard
 * outputs, content and string size limits, NUL characters, `null` values, bare host paths as
 * URLs, backend parameters) live in `validate.ts`.
 *
 * The schemas are tagged `@ignore` because their zod types cannot be documented from this
 * package (`deno doc --lint` reports them as private); the interfaces are the documented API.
 *
 * @module
 */
import { z } from "zod";

/** Every TES task state, in the order of the specification. */
export const TES_STATES = [
  "UNKNOWN",
  "QUEUED",
  "INITIALIZING",
  "RUNNING",
  "PAUSED",
  "COMPLETE",
  "EXECUTOR_ERROR",
  "SYSTEM_ERROR",
  "CANCELED",
  "PREEMPTED",
  "CANCELING",
] as const;

/**
 * Schema of a TES task state.
 *
 * @ignore
 */
export const TesStateSchema: z.ZodEnum<{ [K in (typeof TES_STATES)[number]]: K }> = z.enum(
  TES_STATES,
);
/** A TES task state (`QUEUED`, `RUNNING`, `COMPLETE`, …). */
export type TesState = (typeof TES_STATES)[number];

/** The three task views of the TES API. */
export const TES_VIEWS = ["MINIMAL", "BASIC", "FULL"] as const;
/** A task view: how much of a task a response carries. */
export type TesView = (typeof TES_VIEWS)[number];

/** The two file types of TES inputs and outputs. */
export const TES_FILE_TYPES = ["FILE", "DIRECTORY"] as const;
/** Whether an input or output is a single file or a directory tree. */
export type TesFileType = (typeof TES_FILE_TYPES)[number];

/**
 * Schema of a TES file type.
 *
 * @ignore
 */
export const TesFileTypeSchema: z.ZodEnum<{ FILE: "FILE"; DIRECTORY: "DIRECTORY" }> = z.enum(
  TES_FILE_TYPES,
);

/** An input file or directory of a task. */
export interface TesInput {
  /** User-provided name. */
  name?: string;
  /** User-provided description. */
  description?: string;
  /**
   * Where the input lives (`s3://…`, `https://…`, `file://…`); required unless `content`. A
   * bare absolute host path is accepted and stored as a `file://` URL.
   */
  url?: string;
  /** Absolute path inside the container. */
  path: string;
  /** FILE (default) or DIRECTORY. */
  type?: TesFileType;
  /** Inline file content (UTF-8); when set, `url` is ignored. */
  content?: string;
  /** Hint that the input may be streamed. */
  streamable?: boolean;
}

/** An output file, directory or wildcard pattern of a task. */
export interface TesOutput {
  /** User-provided name. */
  name?: string;
  /** User-provided description. */
  description?: string;
  /** Where the output is uploaded; a bare absolute host path is stored as a `file://` URL. */
  url: string;
  /** Absolute path inside the container; may hold POSIX wildcards. */
  path: string;
  /** Prefix removed from wildcard matches to build each upload URL. */
  path_prefix?: string;
  /** FILE (default) or DIRECTORY; any type is accepted with a wildcard path (default DIRECTORY). */
  type?: TesFileType;
}

/** The compute resources a task asks for. */
export interface TesResources {
  /** Whole CPU cores. */
  cpu_cores?: number;
  /** Whether preemptible (spot) capacity may be used. */
  preemptible?: boolean;
  /** Memory in GB. */
  ram_gb?: number;
  /** Scratch disk in GB. */
  disk_gb?: number;
  /** Zones the task may run in. */
  zones?: string[];
  /** Backend-specific settings; only supported keys are kept. */
  backend_parameters?: Record<string, string>;
  /** Refuse the task when a backend parameter is not supported. */
  backend_parameters_strict?: boolean;
}

/** One command of a task, run in its own container. */
export interface TesExecutor {
  /** Container image. */
  image: string;
  /** argv: the program and its arguments, never a shell string. */
  command: string[];
  /** Working directory inside the container. */
  workdir?: string;
  /** Absolute path of a file piped to stdin. */
  stdin?: string;
  /** Absolute path of a file that receives stdout. */
  stdout?: string;
  /** Absolute path of a file that receives stderr. */
  stderr?: string;
  /** Environment variables. */
  env?: Record<string, string>;
  /** Continue with the next executor when this one fails. */
  ignore_error?: boolean;
}

/** What one executor did. */
export interface TesExecutorLog {
  /** When it started (RFC 3339). */
  start_time?: string;
  /** When it ended (RFC 3339). */
  end_time?: string;
  /** Tail of its stdout. */
  stdout?: string;
  /** Tail of its stderr. */
  stderr?: string;
  /** Its exit code. */
  exit_code: number;
}

/** One uploaded output file. */
export interface TesOutputFileLog {
  /** Where it was uploaded. */
  url: string;
  /** Its path inside the container. */
  path: string;
  /** Its size in bytes, as a decimal string. */
  size_bytes: string;
}

/** One attempt at running a task. */
export interface TesTaskLog {
  /** One entry per executor that ran. */
  logs: TesExecutorLog[];
  /** Free-form metadata (node name, pod name, …). */
  metadata?: Record<string, string>;
  /** When the attempt started (RFC 3339). */
  start_time?: string;
  /** When the attempt ended (RFC 3339). */
  end_time?: string;
  /** Files uploaded by the attempt. */
  outputs: TesOutputFileLog[];
  /** Why the task failed, in words a person understands. */
  system_logs?: string[];
}

/** A TES task: what the client asked for plus what the server recorded. */
export interface TesTask {
  /** Server-assigned id. */
  id?: string;
  /** Current state. */
  state?: TesState;
  /** User-provided name. */
  name?: string;
  /** User-provided description. */
  description?: string;
  /** Files to download before the executors run. */
  inputs?: TesInput[];
  /** Files to upload after the executors ran. */
  outputs?: TesOutput[];
  /** Requested resources. */
  resources?: TesResources;
  /** Commands to run, in order. */
  executors: TesExecutor[];
  /** Empty directories shared by the executors. */
  volumes?: string[];
  /** Arbitrary key/value tags. */
  tags?: Record<string, string>;
  /** Attempts (normally one). */
  logs?: TesTaskLog[];
  /** When the task was created (RFC 3339). */
  creation_time?: string;
}

const stringMap = z.record(z.string(), z.string());

/**
 * Schema of a task input (unknown keys are dropped).
 *
 * @ignore
 */
export const TesInputSchema: z.ZodType<TesInput> = z.object({
  name: z.string().exactOptional(),
  description: z.string().exactOptional(),
  url: z.string().exactOptional(),
  path: z.string(),
  type: TesFileTypeSchema.exactOptional(),
  content: z.string().exactOptional(),
  streamable: z.boolean().exactOptional(),
});

/**
 * Schema of a task output (unknown keys are dropped).
 *
 * @ignore
 */
export const TesOutputSchema: z.ZodType<TesOutput> = z.object({
  name: z.string().exactOptional(),
  description: z.string().exactOptional(),
  url: z.string(),
  path: z.string(),
  path_prefix: z.string().exactOptional(),
  type: TesFileTypeSchema.exactOptional(),
});

/**
 * Schema of task resources (unknown keys are dropped).
 *
 * @ignore
 */
export const TesResourcesSchema: z.ZodType<TesResources> = z.object({
  cpu_cores: z.number().int().positive().max(2 ** 31 - 1).exactOptional(),
  preemptible: z.boolean().exactOptional(),
  ram_gb: z.number().positive().exactOptional(),
  disk_gb: z.number().positive().exactOptional(),
  zones: z.array(z.string()).exactOptional(),
  backend_parameters: stringMap.exactOptional(),
  backend_parameters_strict: z.boolean().exactOptional(),
});

/**
 * Schema of an executor (unknown keys are dropped).
 *
 * @ignore
 */
export const TesExecutorSchema: z.ZodType<TesExecutor> = z.object({
  image: z.string().trim().min(1, "must not be empty"),
  command: z.array(z.string()).min(1, "must hold at least the program to run"),
  workdir: z.string().exactOptional(),
  stdin: z.string().exactOptional(),
  stdout: z.string().exactOptional(),
  stderr: z.string().exactOptional(),
  env: stringMap.exactOptional(),
  ignore_error: z.boolean().exactOptional(),
});

/**
 * Schema of an executor log.
 *
 * @ignore
 */
export const TesExecutorLogSchema: z.ZodType<TesExecutorLog> = z.object({
  start_time: z.string().exactOptional(),
  end_time: z.string().exactOptional(),
  stdout: z.string().exactOptional(),
  stderr: z.string().exactOptional(),
  exit_code: z.number().int(),
});

/**
 * Schema of an output file log.
 *
 * @ignore
 */
export const TesOutputFileLogSchema: z.ZodType<TesOutputFileLog> = z.object({
  url: z.string(),
  path: z.string(),
  size_bytes: z.string(),
});

/**
 * Schema of a task log.
 *
 * @ignore
 */
export const TesTaskLogSchema: z.ZodType<TesTaskLog> = z.object({
  logs: z.array(TesExecutorLogSchema),
  metadata: stringMap.exactOptional(),
  start_time: z.string().exactOptional(),
  end_time: z.string().exactOptional(),
  outputs: z.array(TesOutputFileLogSchema),
  system_logs: z.array(z.string()).exactOptional(),
});

/**
 * Schema of a task as a client submits it. Read-only fields (`id`, `state`, `logs`,
 * `creation_time`) are accepted and dropped: the server sets them.
 *
 * @ignore
 */
export const TesTaskRequestSchema: z.ZodType<TesTask> = z.object({
  name: z.string().exactOptional(),
  description: z.string().exactOptional(),
  inputs: z.array(TesInputSchema).exactOptional(),
  outputs: z.array(TesOutputSchema).exactOptional(),
  resources: TesResourcesSchema.exactOptional(),
  executors: z.array(TesExecutorSchema).min(1, "must hold at least one executor"),
  volumes: z.array(z.string()).exactOptional(),
  tags: stringMap.exactOptional(),
});

/** The response to a create request. */
export interface TesCreateTaskResponse {
  /** The new task's id. */
  id: string;
}

/** The response to a list request. */
export interface TesListTasksResponse {
  /** The tasks of this page, in the requested view. */
  tasks: TesTask[];
  /** Token of the next page; absent on the last page. */
  next_page_token?: string;
}

/** The GA4GH service-info document of a TES server. */
export interface TesServiceInfo {
  /** Reverse-domain id of this service. */
  id: string;
  /** Human-readable name. */
  name: string;
  /** Service type: always group `org.ga4gh`, artifact `tes`. */
  type: { group: string; artifact: "tes"; version: string };
  /** Description for people. */
  description?: string;
  /** Who runs this service. */
  organization: { name: string; url: string };
  /** Contact URL (`mailto:` or https). */
  contactUrl?: string;
  /** Documentation URL. */
  documentationUrl?: string;
  /** When the service was created (RFC 3339). */
  createdAt?: string;
  /** When the service was last updated (RFC 3339). */
  updatedAt?: string;
  /** Deployment environment (prod, test, …). */
  environment?: string;
  /** Version of the service. */
  version: string;
  /** Storage locations the service can read and write. */
  storage?: string[];
  /** Backend parameters the service supports. */
  tesResources_backend_parameters?: string[];
}
