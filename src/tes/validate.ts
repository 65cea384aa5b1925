/**
 * Validation of a task submitted by a client: shape (the zod schemas of `model.ts`) plus the
 * rules zod cannot express on one field (absolute paths, wildcard outputs, inline content
 * limits, backend parameters, URL schemes), every problem reported with the path of the field
 * that caused it.
 *
 * What real clients send, and how it is read:
 *
 * - `null` follows the protobuf JSON mapping (Funnel) and Cromwell: an OPTIONAL field of the
 *   task, an input, an output, an executor or the resources that is `null` is read as absent;
 *   a `null` value in `tags` or in an executor's `env` is stored as `""` (a `tag_key` filter
 *   still finds the key); a `null` value in `resources.backend_parameters` is dropped (not
 *   set). `null` in a REQUIRED field (`executors`, `image`, `command`, a `path`, an output
 *   `url`) or inside a list is still a problem.
 * - A wildcard output path (`*`, `?`, `[`) needs `path_prefix` but may have any `type`:
 *   Nextflow and py-tes send `FILE`. Without a type it is stored as `DIRECTORY`.
 * - A `url` that is a bare absolute host path (`/data/x`, Cromwell on a shared filesystem and
 *   the specification's example) is stored as the `file://` URL that the file storage adapter
 *   reads back to the same path (see `file_url.ts`). A `url` with no scheme that is not such
 *   a path (`data/x`, `//host/x`), or a host path with `..` segments, is refused.
 * - A `file://` URL must be one the file adapter can read (no remote host, no `.`/`..`
 *   segments, no query or fragment); with `fileAllowList`, it must lie in an allowed folder.
 * - No string may hold a NUL character (PostgreSQL cannot store it), and each string field
 *   has a size limit in UTF-8 bytes (`TES_STRING_LIMITS` in `limits.ts`); inline `content`
 *   has its own `maxContentBytes`. Every check is linear in the size of the body.
 * - Input paths must be distinct, and no input or output path may be `/`.
 *
 * @module
 */
import type { z } from "zod";
import {
  filePathFromUrl,
  fileUrlFromPath,
  isInsideFolders,
  normalizeAbsolutePath,
} from "./file_url.ts";
import { TES_STRING_LIMITS, utf8Length } from "./limits.ts";
import { type TesInput, type TesTask, TesTaskRequestSchema } from "./model.ts";

/** Default limit of one input's inline `content`, in UTF-8 bytes (128 KiB). */
export const DEFAULT_MAX_CONTENT_BYTES = 131072;

/** Most entries accepted in one list or map of a task (executors, inputs, tags, env, …). */
export const MAX_TASK_ITEMS = 1000;

/** Most problems returned by {@linkcode validateTask}; the rest are summarised in one line. */
export const MAX_PROBLEMS = 100;

/** Options of {@linkcode validateTask}. */
export interface ValidateTaskOptions {
  /** Max bytes (UTF-8) of one input's inline content. @default 131072 */
  maxContentBytes?: number;
  /** Backend parameter keys this server supports (compared case-insensitively). @default [] */
  supportedBackendParameters?: readonly string[];
  /**
   * URL schemes accepted for inputs/outputs (e.g. `["file","http","https","s3"]`); when set,
   * any other scheme is a problem naming the field. @default undefined (any scheme)
   */
  allowedUrlSchemes?: readonly string[];
  /**
   * Absolute host folders that `file://` URLs (and bare host paths given as `url`) of inputs
   * and outputs must lie in, on folder boundaries (`/tmp` holds `/tmp/x`, not `/tmpx`); an
   * empty list refuses every `file://` URL. @default undefined (no check)
   */
  fileAllowList?: readonly string[];
}

/** One thing wrong with a submitted task. */
export interface ValidationProblem {
  /** Where: `executors[0].image`, `inputs[2].path`, `tags.foo`; `""` for the task itself. */
  path: string;
  /** What is wrong, for a person: `required`, `expected string, got number`, … */
  message: string;
}

/**
 * The outcome of {@linkcode validateTask}: the normalized task (read-only and unknown fields
 * dropped, unsupported backend parameters dropped with a warning each, input/output `type`
 * defaulted, `null` values read as described in the module doc, bare host paths in `url`
 * turned into `file://` URLs), or every problem found.
 */
export type ValidationResult =
  | { ok: true; task: TesTask; warnings: string[] }
  | { ok: false; problems: ValidationProblem[] };

type Path = readonly (string | number)[];
type Obj = Record<string, unknown>;

const WILDCARD = /[*?[]/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;
const URL_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
/** Keys that a JavaScript object cannot hold as plain data without surprises. */
const RESERVED_KEYS = new Set(["__proto__"]);
const NUL_MESSAGE = "must not contain NUL bytes";

/**
 * Validates and normalizes a task sent by a client (the parsed JSON body of
 * `POST /tasks`). Every problem is reported at once, each with the path of its field.
 *
 * @param body The parsed request body.
 * @param options Limits and what this server supports.
 * @returns `{ ok: true, task, warnings }` or `{ ok: false, problems }`.
 * @example
 * ```ts
 * import { formatProblems, validateTask } from "./validate.ts";
 * const result = validateTask({ executors: [{ image: "alpine", command: ["echo", "hi"] }] });
 * if (!result.ok) throw new Error(formatProblems(result.problems));
 * result.task.executors[0]?.image; // "alpine"
 * ```
 */
export function validateTask(body: unknown, options: ValidateTaskOptions = {}): ValidationResult {
  const {
    maxContentBytes = DEFAULT_MAX_CONTENT_BYTES,
    supportedBackendParameters = [],
    allowedUrlSchemes,
    fileAllowList,
  } = options;
  if (!isObject(body)) {
    return { ok: false, problems: [{ path: "", message: "task must be a JSON object" }] };
  }

  // Counts first: a hostile body with a million entries must not be walked entry by entry.
  const countProblems = checkCounts(body);
  if (countProblems.length > 0) return { ok: false, problems: countProblems };

  const problems: ValidationProblem[] = [];
  const task = withoutNulls(body);
  const parsed = TesTaskRequestSchema.safeParse(task, { error: issueMessage });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push({ path: formatPath(issue.path), message: issue.message });
    }
  }

  const supported = new Set(supportedBackendParameters.map((key) => key.toLowerCase()));
  const schemes = allowedUrlSchemes === undefined
    ? undefined
    : new Set(allowedUrlSchemes.map((scheme) => scheme.toLowerCase()));
  const rules = new Rules(problems, { maxContentBytes, supported, schemes, fileAllowList });
  rules.task(task);

  if (problems.length > 0 || !parsed.success) return { ok: false, problems: cap(problems) };
  return normalize(parsed.data, supported);
}

/**
 * Joins problems into one line for an error message.
 *
 * @param problems The problems of a failed {@linkcode validateTask}.
 * @returns `"executors[0].image: must not be empty; inputs[0].path: must be an absolute path"`.
 * @example
 * ```ts
 * import { formatProblems } from "./validate.ts";
 * formatProblems([{ path: "executors", message: "required" }]); // "executors: required"
 * ```
 */
export function formatProblems(problems: ValidationProblem[]): string {
  return problems.map(({ path, message }) => (path === "" ? message : `${path}: ${message}`))
    .join("; ");
}

function isObject(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (typeof part === "symbol") out += `[${String(part)}]`;
    else if (PLAIN_KEY.test(part)) out += out === "" ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return typeof value;
}

type ZodIssue = z.core.$ZodRawIssue;

/** Per-parse zod error map: short messages a person reads without knowing zod. */
function issueMessage(issue: ZodIssue): string | undefined {
  switch (issue.code) {
    case "invalid_type": {
      if (issue.input === undefined) return "required";
      if (issue.expected === "int") {
        return `expected integer, got ${
          typeof issue.input === "number" ? String(issue.input) : typeName(issue.input)
        }`;
      }
      if (issue.expected === "number" && typeof issue.input === "number") {
        return `expected finite number, got ${String(issue.input)}`;
      }
      return `expected ${issue.expected}, got ${typeName(issue.input)}`;
    }
    case "too_small": {
      if (issue.origin === "number") {
        return issue.minimum === 0 && !issue.inclusive
          ? `must be positive, got ${String(issue.input)}`
          : `must be ${issue.inclusive ? "at least" : "greater than"} ${String(issue.minimum)}`;
      }
      return `must hold at least ${String(issue.minimum)} item(s)`;
    }
    case "too_big":
      return `must be at most ${String(issue.maximum)}`;
    case "invalid_value":
      return `expected one of ${issue.values.map(String).join(", ")}, got ${
        typeof issue.input === "string" ? JSON.stringify(issue.input) : typeName(issue.input)
      }`;
    default:
      return undefined;
  }
}

function cap(problems: ValidationProblem[]): ValidationProblem[] {
  if (problems.length <= MAX_PROBLEMS) return problems;
  const shown = problems.slice(0, MAX_PROBLEMS);
  shown.push({ path: "", message: `${problems.length - MAX_PROBLEMS} more problems not shown` });
  return shown;
}

function checkCounts(body: Obj): ValidationProblem[] {
  const problems: ValidationProblem[] = [];
  const list = (value: unknown, path: Path): void => {
    if (Array.isArray(value) && value.length > MAX_TASK_ITEMS) {
      problems.push({
        path: formatPath(path),
        message: `too many entries: ${value.length} (at most ${MAX_TASK_ITEMS})`,
      });
    }
  };
  const map = (value: unknown, path: Path): void => {
    if (isObject(value)) {
      const count = Object.keys(value).length;
      if (count > MAX_TASK_ITEMS) {
        problems.push({
          path: formatPath(path),
          message: `too many keys: ${count} (at most ${MAX_TASK_ITEMS})`,
        });
      }
    }
  };
  for (const key of ["executors", "inputs", "outputs", "volumes"]) list(body[key], [key]);
  map(body.tags, ["tags"]);
  if (isObject(body.resources)) {
    list(body.resources.zones, ["resources", "zones"]);
    map(body.resources.backend_parameters, ["resources", "backend_parameters"]);
  }
  if (Array.isArray(body.executors) && body.executors.length <= MAX_TASK_ITEMS) {
    body.executors.forEach((executor: unknown, i) => {
      if (!isObject(executor)) return;
      list(executor.command, ["executors", i, "command"]);
      map(executor.env, ["executors", i, "env"]);
    });
  }
  return problems;
}

interface RuleOptions {
  maxContentBytes: number;
  supported: ReadonlySet<string>;
  schemes: ReadonlySet<string> | undefined;
  fileAllowList: readonly string[] | undefined;
}

/** Optional fields of each object, where `null` means "absent" (protobuf JSON mapping). */
const OPTIONAL_TASK_FIELDS = [
  "id",
  "state",
  "name",
  "description",
  "inputs",
  "outputs",
  "resources",
  "volumes",
  "tags",
  "logs",
  "creation_time",
];
const OPTIONAL_INPUT_FIELDS = ["name", "description", "url", "type", "content", "streamable"];
const OPTIONAL_OUTPUT_FIELDS = ["name", "description", "path_prefix", "type"];
const OPTIONAL_RESOURCE_FIELDS = [
  "cpu_cores",
  "preemptible",
  "ram_gb",
  "disk_gb",
  "zones",
  "backend_parameters",
  "backend_parameters_strict",
];
const OPTIONAL_EXECUTOR_FIELDS = ["workdir", "stdin", "stdout", "stderr", "env", "ignore_error"];

/** A shallow copy of `object` without the listed keys whose value is `null`. */
function dropNullFields(object: Obj, optional: readonly string[]): Obj {
  const copy: Obj = { ...object };
  for (const key of optional) {
    if (Object.hasOwn(copy, key) && copy[key] === null) delete copy[key];
  }
  return copy;
}

/** A copy of a string map with each `null` value replaced (`""`) or, with `undefined`, dropped. */
function replaceNullValues(map: Obj, replacement: string | undefined): Obj {
  const entries: [string, unknown][] = [];
  for (const [key, value] of Object.entries(map)) {
    if (value !== null) entries.push([key, value]);
    else if (replacement !== undefined) entries.push([key, replacement]);
  }
  return Object.fromEntries(entries);
}

function mapObjects(value: unknown, change: (item: Obj) => Obj): unknown {
  return Array.isArray(value) ? value.map((item) => isObject(item) ? change(item) : item) : value;
}

/**
 * The body with `null` read as the protobuf JSON mapping reads it (Funnel, Cromwell): an
 * optional field that is `null` is absent; a `null` tag or env value is `""`; a `null`
 * backend parameter is not set. A required field that is `null` stays, and is reported.
 * The body itself is not modified.
 */
function withoutNulls(body: Obj): Obj {
  const task = dropNullFields(body, OPTIONAL_TASK_FIELDS);
  if (isObject(task.tags)) task.tags = replaceNullValues(task.tags, "");
  task.inputs = mapObjects(task.inputs, (input) => dropNullFields(input, OPTIONAL_INPUT_FIELDS));
  task.outputs = mapObjects(
    task.outputs,
    (output) => dropNullFields(output, OPTIONAL_OUTPUT_FIELDS),
  );
  if (isObject(task.resources)) {
    const resources = dropNullFields(task.resources, OPTIONAL_RESOURCE_FIELDS);
    if (isObject(resources.backend_parameters)) {
      resources.backend_parameters = replaceNullValues(resources.backend_parameters, undefined);
    }
    task.resources = resources;
  }
  task.executors = mapObjects(task.executors, (executor) => {
    const copy = dropNullFields(executor, OPTIONAL_EXECUTOR_FIELDS);
    if (isObject(copy.env)) copy.env = replaceNullValues(copy.env, "");
    return copy;
  });
  for (const key of ["inputs", "outputs", "executors"]) {
    if (task[key] === undefined) delete task[key];
  }
  return task;
}

/** Whether a `url` is a bare absolute host path (`/data/x`), not a network path (`//host/x`). */
function isBarePath(url: string): boolean {
  return url.startsWith("/") && !url.startsWith("//");
}

/** The stored form of a `url` that passed every rule: a bare path becomes a `file://` URL. */
function storedUrl(url: string): string {
  if (!isBarePath(url)) return url;
  const result = fileUrlFromPath(url);
  return result.ok ? result.value : url;
}

/** At most 64 characters of a value, for a message about it. */
function preview(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

/**
 * The rules beyond the shape. They read the body defensively: a field of the wrong type
 * is already reported by zod, so each rule only looks at values of the type it expects.
 */
class Rules {
  #problems: ValidationProblem[];
  #options: RuleOptions;

  constructor(problems: ValidationProblem[], options: RuleOptions) {
    this.#problems = problems;
    this.#options = options;
  }

  #add(path: Path, message: string): void {
    this.#problems.push({ path: formatPath(path), message });
  }

  task(body: Obj): void {
    this.#text(body.name, ["name"], TES_STRING_LIMITS.name);
    this.#text(body.description, ["description"], TES_STRING_LIMITS.description);
    const inputPaths = new Map<string, number>();
    this.#each(body.inputs, ["inputs"], (input, path) => this.#input(input, path, inputPaths));
    this.#each(body.outputs, ["outputs"], (output, path) => this.#output(output, path));
    this.#each(body.executors, ["executors"], (executor, path) => this.#executor(executor, path));
    if (Array.isArray(body.volumes)) {
      body.volumes.forEach((volume: unknown, i) => this.#path(volume, ["volumes", i]));
    }
    this.#map(body.tags, ["tags"], TES_STRING_LIMITS.tagKey, TES_STRING_LIMITS.tagValue);
    if (isObject(body.resources)) this.#resources(body.resources, ["resources"]);
  }

  #each(value: unknown, path: Path, check: (item: Obj, path: Path) => void): void {
    if (!Array.isArray(value)) return;
    value.forEach((item: unknown, i) => {
      if (isObject(item)) check(item, [...path, i]);
    });
  }

  /**
   * A string without NUL and within `limit` UTF-8 bytes (no limit when `undefined`).
   * @returns `true` when `value` is such a string, so that further rules may read it.
   */
  #text(value: unknown, path: Path, limit: number | undefined): value is string {
    if (typeof value !== "string") return false;
    if (value.includes("\0")) {
      this.#add(path, NUL_MESSAGE);
      return false;
    }
    if (limit !== undefined) {
      const size = utf8Length(value, limit);
      if (size > limit) {
        this.#add(path, `too long: ${size} bytes (at most ${limit})`);
        return false;
      }
    }
    return true;
  }

  /** An absolute path inside the container. */
  #path(value: unknown, path: Path): value is string {
    if (!this.#text(value, path, TES_STRING_LIMITS.path)) return false;
    if (!value.startsWith("/")) this.#add(path, "must be an absolute path");
    else if (value.split("/").includes("..")) this.#add(path, 'must not contain ".." segments');
    else return true;
    return false;
  }

  /** The `path` of an input or output: an absolute path, not the root directory. */
  #filePath(value: unknown, path: Path): string | undefined {
    if (!this.#path(value, path)) return undefined;
    const normalized = normalizeAbsolutePath(value);
    if (!normalized.ok) return undefined;
    if (normalized.value === "/") {
      this.#add(path, "must not be the root directory /");
      return undefined;
    }
    return normalized.value;
  }

  #url(value: unknown, path: Path): void {
    if (!this.#text(value, path, TES_STRING_LIMITS.url)) return;
    let url = value;
    if (isBarePath(value)) {
      const converted = fileUrlFromPath(value);
      if (!converted.ok) return this.#add(path, `${converted.message} (bare host path)`);
      url = converted.value;
    }
    const scheme = URL_SCHEME.exec(url)?.[1]?.toLowerCase();
    if (scheme === undefined) {
      return this.#add(
        path,
        "must be a URL with a scheme (for example s3://bucket/key) or an absolute host path",
      );
    }
    const schemes = this.#options.schemes;
    if (schemes !== undefined && !schemes.has(scheme)) {
      const accepted = [...schemes].join(", ") || "none";
      return this.#add(path, `URL scheme "${scheme}" is not supported (accepted: ${accepted})`);
    }
    if (scheme === "file") this.#fileUrl(url, path);
  }

  #fileUrl(url: string, path: Path): void {
    const hostPath = filePathFromUrl(url);
    if (!hostPath.ok) return this.#add(path, hostPath.message);
    const allowList = this.#options.fileAllowList;
    if (allowList === undefined || isInsideFolders(hostPath.value, allowList)) return;
    this.#add(
      path,
      allowList.length === 0
        ? "outside the allowed folders: this server allows no file:// URLs or host paths"
        : `outside the allowed folders (${allowList.join(", ")})`,
    );
  }

  #input(input: Obj, path: Path, seen: Map<string, number>): void {
    const index = path[path.length - 1];
    const inputPath = this.#filePath(input.path, [...path, "path"]);
    if (inputPath !== undefined && typeof index === "number") {
      const first = seen.get(inputPath);
      if (first === undefined) seen.set(inputPath, index);
      else this.#add([...path, "path"], `duplicates ${formatPath(["inputs", first, "path"])}`);
    }
    this.#text(input.name, [...path, "name"], TES_STRING_LIMITS.name);
    this.#text(input.description, [...path, "description"], TES_STRING_LIMITS.description);
    const hasUrl = typeof input.url === "string" && input.url !== "";
    const hasContent = input.content !== undefined;
    if (!hasUrl && !hasContent) this.#add([...path, "url"], "required unless content is set");
    if (hasUrl) this.#url(input.url, [...path, "url"]);
    if (this.#text(input.content, [...path, "content"], undefined)) {
      if (input.type === "DIRECTORY") {
        this.#add([...path, "content"], "only allowed when type is FILE");
      }
      const max = this.#options.maxContentBytes;
      const bytes = utf8Length(input.content, max);
      if (bytes > max) {
        this.#add(
          [...path, "content"],
          `too large: ${bytes} bytes (at most ${max} bytes of inline content)`,
        );
      }
    }
  }

  #output(output: Obj, path: Path): void {
    const outPath = output.path;
    const pathOk = this.#filePath(outPath, [...path, "path"]) !== undefined;
    this.#text(output.name, [...path, "name"], TES_STRING_LIMITS.name);
    this.#text(output.description, [...path, "description"], TES_STRING_LIMITS.description);
    if (output.url === "") this.#add([...path, "url"], "must not be empty");
    else this.#url(output.url, [...path, "url"]);
    const prefix = output.path_prefix;
    const prefixOk = this.#text(prefix, [...path, "path_prefix"], TES_STRING_LIMITS.path);
    if (!pathOk || typeof outPath !== "string") return;
    // Any type (or none) is accepted with wildcards: Nextflow and py-tes send FILE, and the
    // transporter expands a wildcard path whatever the type.
    if (WILDCARD.test(outPath) && prefix === undefined) {
      this.#add([...path, "path_prefix"], "required when path holds wildcards (*, ?, [)");
    }
    if (prefixOk && !outPath.startsWith(prefix)) {
      this.#add([...path, "path_prefix"], `must be a prefix of path ${JSON.stringify(outPath)}`);
    }
  }

  #executor(executor: Obj, path: Path): void {
    this.#text(executor.image, [...path, "image"], TES_STRING_LIMITS.image);
    if (Array.isArray(executor.command)) {
      executor.command.forEach((arg: unknown, i) =>
        this.#text(arg, [...path, "command", i], undefined)
      );
      if (executor.command[0] === "") {
        this.#add([...path, "command", 0], "must name the program to run");
      }
    }
    for (const field of ["workdir", "stdin", "stdout", "stderr"]) {
      this.#path(executor[field], [...path, field]);
    }
    const env = executor.env;
    if (isObject(env)) {
      const envPath = [...path, "env"];
      this.#map(env, envPath, TES_STRING_LIMITS.envKey, undefined, (key) => {
        if (!ENV_NAME.test(key)) {
          this.#add([...envPath, key], "not a valid environment variable name");
        }
      });
    }
  }

  /**
   * The keys and string values of a map: no reserved key, no NUL, within the limits. A key
   * over its limit is reported at the map's path, so that the problem does not echo it whole.
   */
  #map(
    map: unknown,
    path: Path,
    keyLimit: number,
    valueLimit: number | undefined,
    checkKey?: (key: string) => void,
  ): void {
    if (!isObject(map)) return;
    for (const [key, value] of Object.entries(map)) {
      const size = utf8Length(key, keyLimit);
      if (size > keyLimit) {
        this.#add(path, `key ${preview(key)} too long: ${size} bytes (at most ${keyLimit})`);
      } else if (key.includes("\0")) {
        this.#add([...path, key], `key ${NUL_MESSAGE}`);
      } else if (RESERVED_KEYS.has(key)) {
        this.#add([...path, key], "reserved key not allowed");
      } else {
        checkKey?.(key);
        this.#text(value, [...path, key], valueLimit);
      }
    }
  }

  #resources(resources: Obj, path: Path): void {
    if (Array.isArray(resources.zones)) {
      resources.zones.forEach((zone: unknown, i) =>
        this.#text(zone, [...path, "zones", i], TES_STRING_LIMITS.zone)
      );
    }
    const params = resources.backend_parameters;
    if (!isObject(params)) return;
    const paramsPath = [...path, "backend_parameters"];
    this.#map(
      params,
      paramsPath,
      TES_STRING_LIMITS.backendParameterKey,
      TES_STRING_LIMITS.backendParameterValue,
    );
    if (resources.backend_parameters_strict !== true) return;
    const supported = this.#options.supported;
    for (const key of Object.keys(params)) {
      if (!supported.has(key.toLowerCase()) && !RESERVED_KEYS.has(key)) {
        this.#add(
          [...paramsPath, key],
          `not supported by this server (supported: ${[...supported].join(", ") || "none"})`,
        );
      }
    }
  }
}

/** Builds the stored form of a task that passed every rule. */
function normalize(task: TesTask, supported: ReadonlySet<string>): ValidationResult {
  const warnings: string[] = [];
  const out: TesTask = { ...task };
  if (task.inputs !== undefined) {
    out.inputs = task.inputs.map((input) => {
      const stored: TesInput = { ...input, type: input.type ?? "FILE" };
      if (input.url !== undefined) stored.url = storedUrl(input.url);
      return stored;
    });
  }
  if (task.outputs !== undefined) {
    out.outputs = task.outputs.map((output) => ({
      ...output,
      url: storedUrl(output.url),
      type: output.type ?? (WILDCARD.test(output.path) ? "DIRECTORY" : "FILE"),
    }));
  }
  const params = task.resources?.backend_parameters;
  if (task.resources !== undefined && params !== undefined) {
    const kept = Object.entries(params).filter(([key]) => {
      if (supported.has(key.toLowerCase())) return true;
      warnings.push(
        `${
          formatPath(["resources", "backend_parameters", key])
        }: not supported by this server; ignored`,
      );
      return false;
    });
    out.resources = { ...task.resources, backend_parameters: Object.fromEntries(kept) };
  }
  return { ok: true, task: out, warnings };
}
