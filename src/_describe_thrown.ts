/**
 * One rendering of anything a program can throw, for log lines and the CLI's one-line errors:
 * an `Error` with its chain of causes, a plain object with fields (Emscripten's
 * `ExitStatus {status: 1}`, which PGlite throws when its `initdb` exits), a string, a number,
 * `null`. Never `[object Object]`.
 *
 * @module
 */

/** Longest text {@linkcode describeThrown} returns for one value, in characters. */
const MAX_LENGTH = 2_000;
/** Deepest chain of causes followed. */
const MAX_DEPTH = 8;

/**
 * Describes any thrown value in one line: an error's message followed by its causes
 * (`message: cause: inner cause`, a cause whose text the message already holds is not
 * repeated), a plain object's name, message and other fields, or the value itself.
 *
 * @param value Anything thrown.
 * @returns Readable text, at most 2000 characters.
 * @example
 * ```ts
 * import { describeThrown } from "./_describe_thrown.ts";
 * describeThrown(new Error("cannot open", { cause: new Error("disk full") })); // "cannot open: disk full"
 * describeThrown({ status: 1 }); // "{status: 1}"
 * describeThrown(null); // "null"
 * ```
 */
export function describeThrown(value: unknown): string {
  let text: string;
  try {
    text = describe(value, 0, new Set());
  } catch {
    // A getter or proxy that throws while being read.
    text = `(a thrown ${typeof value} that cannot be read)`;
  }
  return text.length > MAX_LENGTH ? `${text.slice(0, MAX_LENGTH - 1)}…` : text;
}

function describe(value: unknown, depth: number, seen: Set<unknown>): string {
  if (typeof value === "string") return value === "" ? '""' : value;
  if (value === null || value === undefined) return String(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value !== "object" && typeof value !== "function") return String(value);
  if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
  if (seen.has(value)) return "(circular)";
  seen.add(value);
  const record = value as Record<string, unknown>;
  const message = typeof record.message === "string" ? record.message : undefined;
  const name = typeof record.name === "string" ? record.name : undefined;
  let text: string;
  if (value instanceof Error) {
    text = message || name || "Error";
    if (value instanceof AggregateError && value.errors.length > 0) {
      const inner = value.errors.map((error) => describe(error, depth + 1, seen));
      text += ` (${inner.join("; ")})`;
    }
  } else if (message !== undefined) {
    // An error-like object that is not an Error (Emscripten's ExitStatus): its name tells
    // what it is, its other fields (status) may tell why.
    const rest = fields(record, ["name", "message", "cause", "stack"], depth, seen);
    text = `${name && name !== "Error" ? `${name}: ` : ""}${message || "(no message)"}` +
      (rest === "" ? "" : ` {${rest}}`);
  } else {
    const kind = constructorName(value);
    text = `${kind === "Object" || kind === undefined ? "" : `${kind} `}{${
      fields(record, ["cause"], depth, seen)
    }}`;
  }
  const cause = record.cause;
  if (cause !== undefined && depth < MAX_DEPTH) {
    const causeText = describe(cause, depth + 1, seen);
    if (!text.includes(causeText)) text += `: ${causeText}`;
  }
  return text;
}

function fields(
  record: Record<string, unknown>,
  skip: readonly string[],
  depth: number,
  seen: Set<unknown>,
): string {
  return Object.entries(record)
    .filter(([key]) => !skip.includes(key))
    .map(([key, field]) => `${key}: ${fieldText(field, depth, seen)}`)
    .join(", ");
}

function fieldText(value: unknown, depth: number, seen: Set<unknown>): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (seen.has(value)) return "(circular)";
    seen.add(value);
    return `[${value.map((item) => fieldText(item, depth + 1, seen)).join(", ")}]`;
  }
  if (typeof value === "object" && value !== null && depth >= MAX_DEPTH) return "{…}";
  return describe(value, depth + 1, seen);
}

function constructorName(value: object): string | undefined {
  try {
    const prototype: unknown = Object.getPrototypeOf(value);
    if (prototype === null) return undefined;
    const ctor = (prototype as { constructor?: unknown }).constructor;
    return typeof ctor === "function" && ctor.name !== "" ? ctor.name : undefined;
  } catch {
    return undefined;
  }
}
