/**
 * Validation of a task submitted by a client: shape (the zod schemas of `model.ts`) plus the
 * rules zod cannot express on one field (absolute paths, wildcard outputs, inline content
 * limits, backend parameters, URL schemes), every problem reported with the path of the field
 * that caused it.
 *
 * @module
 */
import type { z } from "zod";
import { type TesTask, TesTaskRequestSchema } from "./model.ts";

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
 * defaulted), or every problem found.
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
  } = options;
  if (!isObject(body)) {
    return { ok: false, problems: [{ path: "", message: "task must be a JSON object" }] };
  }

  // Counts first: a hostile body with a million entries must not be walked entry by entry.
  const countProblems = checkCounts(body);
  if (countProblems.length > 0) return { ok: false, problems: countProblems };

  const problems: ValidationProblem[] = [];
  const parsed = TesTaskRequestSchema.safeParse(body, { error: issueMessage });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push({ path: formatPath(issue.path), message: issue.message });
    }
  }

  const supported = new Set(supportedBackendParameters.map((key) => key.toLowerCase()));
  const schemes = allowedUrlSchemes === undefined
    ? undefined
    : new Set(allowedUrlSchemes.map((scheme) => scheme.toLowerCase()));
  const rules = new Rules(problems, { maxContentBytes, supported, schemes });
  rules.task(body);

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
}

/**
 * The rules beyond the shape. They read the raw body defensively: a field of the wrong type
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
    this.#each(body.inputs, ["inputs"], (input, path) => this.#input(input, path));
    this.#each(body.outputs, ["outputs"], (output, path) => this.#output(output, path));
    this.#each(body.executors, ["executors"], (executor, path) => this.#executor(executor, path));
    if (Array.isArray(body.volumes)) {
      body.volumes.forEach((volume: unknown, i) => this.#path(volume, ["volumes", i]));
    }
    this.#mapKeys(body.tags, ["tags"]);
    if (isObject(body.resources)) this.#resources(body.resources, ["resources"]);
  }

  #each(value: unknown, path: Path, check: (item: Obj, path: Path) => void): void {
    if (!Array.isArray(value)) return;
    value.forEach((item: unknown, i) => {
      if (isObject(item)) check(item, [...path, i]);
    });
  }

  /** An absolute path inside the container. */
  #path(value: unknown, path: Path): void {
    if (typeof value !== "string") return;
    if (value.includes("\0")) this.#add(path, "must not contain NUL bytes");
    else if (!value.startsWith("/")) this.#add(path, "must be an absolute path");
    else if (value.split("/").includes("..")) this.#add(path, 'must not contain ".." segments');
  }

  #noNul(value: unknown, path: Path): void {
    if (typeof value === "string" && value.includes("\0")) {
      this.#add(path, "must not contain NUL bytes");
    }
  }

  #url(value: unknown, path: Path): void {
    if (typeof value !== "string") return;
    if (value.includes("\0")) return this.#add(path, "must not contain NUL bytes");
    const schemes = this.#options.schemes;
    if (schemes === undefined) return;
    const scheme = URL_SCHEME.exec(value)?.[1]?.toLowerCase();
    const accepted = [...schemes].join(", ") || "none";
    if (scheme === undefined) {
      this.#add(path, `must be a URL with a scheme (accepted: ${accepted})`);
    } else if (!schemes.has(scheme)) {
      this.#add(path, `URL scheme "${scheme}" is not supported (accepted: ${accepted})`);
    }
  }

  #input(input: Obj, path: Path): void {
    this.#path(input.path, [...path, "path"]);
    const hasUrl = typeof input.url === "string" && input.url !== "";
    const hasContent = input.content !== undefined;
    if (!hasUrl && !hasContent) this.#add([...path, "url"], "required unless content is set");
    if (hasUrl) this.#url(input.url, [...path, "url"]);
    if (typeof input.content === "string") {
      if (input.type === "DIRECTORY") {
        this.#add([...path, "content"], "only allowed when type is FILE");
      }
      const max = this.#options.maxContentBytes;
      // UTF-8 takes at most 3 bytes per UTF-16 unit: skip encoding when it cannot be too long.
      if (input.content.length * 3 > max) {
        const bytes = new TextEncoder().encode(input.content).byteLength;
        if (bytes > max) {
          this.#add(
            [...path, "content"],
            `too large: ${bytes} bytes (at most ${max} bytes of inline content)`,
          );
        }
      }
    }
  }

  #output(output: Obj, path: Path): void {
    const outPath = output.path;
    this.#path(outPath, [...path, "path"]);
    if (output.url === "") this.#add([...path, "url"], "must not be empty");
    else this.#url(output.url, [...path, "url"]);
    const prefix = output.path_prefix;
    this.#noNul(prefix, [...path, "path_prefix"]);
    if (typeof outPath !== "string") return;
    if (WILDCARD.test(outPath)) {
      if (prefix === undefined) {
        this.#add([...path, "path_prefix"], "required when path holds wildcards (*, ?, [)");
      }
      if (output.type === "FILE") {
        this.#add([...path, "type"], "must be DIRECTORY when path holds wildcards (*, ?, [)");
      }
    }
    if (typeof prefix === "string" && !outPath.startsWith(prefix)) {
      this.#add([...path, "path_prefix"], `must be a prefix of path ${JSON.stringify(outPath)}`);
    }
  }

  #executor(executor: Obj, path: Path): void {
    this.#noNul(executor.image, [...path, "image"]);
    if (Array.isArray(executor.command)) {
      executor.command.forEach((arg: unknown, i) => this.#noNul(arg, [...path, "command", i]));
      if (executor.command[0] === "") {
        this.#add([...path, "command", 0], "must name the program to run");
      }
    }
    for (const field of ["workdir", "stdin", "stdout", "stderr"]) {
      this.#path(executor[field], [...path, field]);
    }
    const env = executor.env;
    if (isObject(env)) {
      this.#mapKeys(env, [...path, "env"]);
      for (const [key, value] of Object.entries(env)) {
        if (!ENV_NAME.test(key)) {
          this.#add([...path, "env", key], "not a valid environment variable name");
        }
        this.#noNul(value, [...path, "env", key]);
      }
    }
  }

  /** Map keys that would be lost or dangerous in a plain object. */
  #mapKeys(map: unknown, path: Path): void {
    if (!isObject(map)) return;
    for (const key of Object.keys(map)) {
      if (RESERVED_KEYS.has(key)) this.#add([...path, key], "reserved key not allowed");
    }
  }

  #resources(resources: Obj, path: Path): void {
    const params = resources.backend_parameters;
    if (!isObject(params)) return;
    const paramsPath = [...path, "backend_parameters"];
    this.#mapKeys(params, paramsPath);
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
    out.inputs = task.inputs.map((input) => ({ ...input, type: input.type ?? "FILE" }));
  }
  if (task.outputs !== undefined) {
    out.outputs = task.outputs.map((output) => ({
      ...output,
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
