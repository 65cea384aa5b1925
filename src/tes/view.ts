/**
 * The strict writer of TES responses: task views (MINIMAL, BASIC, FULL) and service-info.
 *
 * Real clients reject what the specification does not name (py-tes raises on any unknown key),
 * so every object is built field by field, in the order of the specification, from the fields
 * it names, never by spreading a stored object. Types are coerced on the way out: `cpu_cores`
 * is an integer, `size_bytes` a string, times RFC 3339 strings; every task log has `logs` and
 * `outputs` arrays and every executor log an `exit_code`.
 *
 * @module
 */
import {
  TES_STATES,
  TES_VIEWS,
  type TesExecutor,
  type TesExecutorLog,
  type TesFileType,
  type TesInput,
  type TesOutput,
  type TesOutputFileLog,
  type TesResources,
  type TesServiceInfo,
  type TesState,
  type TesTask,
  type TesTaskLog,
  type TesView,
} from "./model.ts";

/** Exit code rendered for an executor whose log has none yet (it has not ended). */
export const UNKNOWN_EXIT_CODE: number = -1;

type Obj = Record<string, unknown>;

/**
 * Reads the `view` query parameter of a get or list request.
 *
 * @param value The raw parameter (absent, empty, or a view name in any letter case).
 * @returns The view; `"MINIMAL"` when absent or empty; `undefined` when unknown (answer 400).
 * @example
 * ```ts
 * import { parseView } from "./view.ts";
 * parseView(undefined); // "MINIMAL"
 * parseView("FULL"); // "FULL"
 * parseView("EVERYTHING"); // undefined
 * ```
 */
export function parseView(value: string | undefined | null): TesView | undefined {
  if (value === undefined || value === null || value === "") return "MINIMAL";
  const upper = value.toUpperCase();
  return TES_VIEWS.find((view) => view === upper);
}

/**
 * Renders a stored task as a response in the given view: a new object holding only the fields
 * of the TES specification, in its order, with undefined values left out.
 *
 * MINIMAL holds `id` and `state`; BASIC everything except executor-log `stdout`/`stderr`,
 * input `content` and task-log `system_logs`; FULL everything.
 *
 * @param task The task as stored (may carry extra keys; they are not copied).
 * @param view The view to render.
 * @returns The response object.
 * @example
 * ```ts
 * import { renderTask } from "./view.ts";
 * const task = {
 *   id: "t1",
 *   state: "RUNNING" as const,
 *   executors: [{ image: "alpine", command: ["true"] }],
 *   internal_owner: "alice",
 * };
 * renderTask(task, "MINIMAL"); // { id: "t1", state: "RUNNING" }
 * ```
 */
export function renderTask(task: TesTask, view: TesView): TesTask {
  const src = task as unknown as Obj;
  const full = view === "FULL";
  const out: Obj = {};
  put(out, "id", str(src.id));
  put(out, "state", state(src.state));
  if (view === "MINIMAL") return out as unknown as TesTask;

  put(out, "name", str(src.name));
  put(out, "description", str(src.description));
  put(out, "inputs", list(src.inputs, (input) => renderInput(input, full)));
  put(out, "outputs", list(src.outputs, renderOutput));
  put(out, "resources", obj(src.resources, renderResources));
  // `executors` is required by the specification: always an array.
  out.executors = list(src.executors, renderExecutor) ?? [];
  put(out, "volumes", strings(src.volumes));
  put(out, "tags", stringMap(src.tags));
  put(out, "logs", list(src.logs, (log) => renderTaskLog(log, full)));
  put(out, "creation_time", time(src.creation_time));
  return out as unknown as TesTask;
}

/**
 * Renders a service-info document with only the fields of the GA4GH service-info and TES
 * specifications, in their order.
 *
 * @param info The service-info as built by the server (may carry extra keys).
 * @returns A new object with only specification fields.
 * @example
 * ```ts
 * import { renderServiceInfo } from "./view.ts";
 * renderServiceInfo({
 *   id: "org.example.tes",
 *   name: "Planetary",
 *   type: { group: "org.ga4gh", artifact: "tes", version: "1.1.0" },
 *   organization: { name: "Example", url: "https://example.org" },
 *   version: "0.1.0",
 * });
 * ```
 */
export function renderServiceInfo(info: TesServiceInfo): TesServiceInfo {
  const src = info as unknown as Obj;
  const out: Obj = {};
  put(out, "id", str(src.id));
  put(out, "name", str(src.name));
  put(
    out,
    "type",
    obj(src.type, (type) => {
      const t: Obj = {};
      put(t, "group", str(type.group));
      put(t, "artifact", str(type.artifact));
      put(t, "version", str(type.version));
      return t;
    }),
  );
  put(out, "description", str(src.description));
  put(
    out,
    "organization",
    obj(src.organization, (org) => {
      const o: Obj = {};
      put(o, "name", str(org.name));
      put(o, "url", str(org.url));
      return o;
    }),
  );
  put(out, "contactUrl", str(src.contactUrl));
  put(out, "documentationUrl", str(src.documentationUrl));
  put(out, "createdAt", time(src.createdAt));
  put(out, "updatedAt", time(src.updatedAt));
  put(out, "environment", str(src.environment));
  put(out, "version", str(src.version));
  put(out, "storage", strings(src.storage));
  put(out, "tesResources_backend_parameters", strings(src.tesResources_backend_parameters));
  return out as unknown as TesServiceInfo;
}

function renderInput(input: Obj, full: boolean): TesInput {
  const out: Obj = {};
  put(out, "name", str(input.name));
  put(out, "description", str(input.description));
  put(out, "url", str(input.url));
  put(out, "path", str(input.path));
  put(out, "type", fileType(input.type));
  if (full) put(out, "content", str(input.content));
  put(out, "streamable", bool(input.streamable));
  return out as unknown as TesInput;
}

function renderOutput(output: Obj): TesOutput {
  const out: Obj = {};
  put(out, "name", str(output.name));
  put(out, "description", str(output.description));
  put(out, "url", str(output.url));
  put(out, "path", str(output.path));
  put(out, "path_prefix", str(output.path_prefix));
  put(out, "type", fileType(output.type));
  return out as unknown as TesOutput;
}

function renderResources(resources: Obj): TesResources {
  const out: Obj = {};
  const cpu = num(resources.cpu_cores);
  put(out, "cpu_cores", cpu === undefined ? undefined : Math.trunc(cpu));
  put(out, "preemptible", bool(resources.preemptible));
  put(out, "ram_gb", num(resources.ram_gb));
  put(out, "disk_gb", num(resources.disk_gb));
  put(out, "zones", strings(resources.zones));
  put(out, "backend_parameters", stringMap(resources.backend_parameters));
  put(out, "backend_parameters_strict", bool(resources.backend_parameters_strict));
  return out as unknown as TesResources;
}

function renderExecutor(executor: Obj): TesExecutor {
  const out: Obj = {};
  put(out, "image", str(executor.image));
  out.command = strings(executor.command) ?? [];
  put(out, "workdir", str(executor.workdir));
  put(out, "stdin", str(executor.stdin));
  put(out, "stdout", str(executor.stdout));
  put(out, "stderr", str(executor.stderr));
  put(out, "env", stringMap(executor.env));
  put(out, "ignore_error", bool(executor.ignore_error));
  return out as unknown as TesExecutor;
}

function renderTaskLog(log: Obj, full: boolean): TesTaskLog {
  const out: Obj = {};
  out.logs = list(log.logs, (executorLog) => renderExecutorLog(executorLog, full)) ?? [];
  put(out, "metadata", stringMap(log.metadata));
  put(out, "start_time", time(log.start_time));
  put(out, "end_time", time(log.end_time));
  out.outputs = list(log.outputs, renderOutputFileLog) ?? [];
  if (full) put(out, "system_logs", strings(log.system_logs));
  return out as unknown as TesTaskLog;
}

function renderExecutorLog(log: Obj, full: boolean): TesExecutorLog {
  const out: Obj = {};
  put(out, "start_time", time(log.start_time));
  put(out, "end_time", time(log.end_time));
  if (full) {
    put(out, "stdout", str(log.stdout));
    put(out, "stderr", str(log.stderr));
  }
  const code = num(log.exit_code);
  out.exit_code = code === undefined ? UNKNOWN_EXIT_CODE : Math.trunc(code);
  return out as unknown as TesExecutorLog;
}

function renderOutputFileLog(log: Obj): TesOutputFileLog {
  const out: Obj = {};
  put(out, "url", str(log.url));
  put(out, "path", str(log.path));
  const size = log.size_bytes;
  out.size_bytes = typeof size === "string"
    ? size
    : typeof size === "bigint" || (typeof size === "number" && Number.isFinite(size))
    ? String(size)
    : "0";
  return out as unknown as TesOutputFileLog;
}

/** Sets `key` only when the value is defined, so absent fields stay absent. */
function put(out: Obj, key: string, value: unknown): void {
  if (value !== undefined) out[key] = value;
}

function isObject(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function bool(value: unknown): boolean | undefined {
  return typeof value === "boolean" ? value : undefined;
}

function state(value: unknown): TesState | undefined {
  return TES_STATES.find((s) => s === value);
}

function fileType(value: unknown): TesFileType | undefined {
  return value === "FILE" || value === "DIRECTORY" ? value : undefined;
}

/** A time as RFC 3339: strings pass through, dates are converted, anything else dropped. */
function time(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString();
  return undefined;
}

function strings(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.filter((item): item is string => typeof item === "string");
}

/** A string→string map; `Object.fromEntries` keeps a `__proto__` key as plain data. */
function stringMap(value: unknown): Record<string, string> | undefined {
  if (!isObject(value)) return undefined;
  return Object.fromEntries(
    Object.entries(value).filter((entry): entry is [string, string] =>
      typeof entry[1] === "string"
    ),
  );
}

function obj<T>(value: unknown, render: (value: Obj) => T): T | undefined {
  return isObject(value) ? render(value) : undefined;
}

function list<T>(value: unknown, render: (item: Obj) => T): T[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.filter(isObject).map(render);
}
