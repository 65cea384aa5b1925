/**
 * Structured logs of the API: one JSON line per request (never a body), plus warnings and
 * errors, written to stderr by default.
 *
 * @module
 */
import { describeThrown } from "../_describe_thrown.ts";

/** The one log line written per request. */
export interface RequestLogLine {
  /** When the request ended (RFC 3339). */
  time: string;
  /** The request id (`X-Request-Id`). */
  request_id: string;
  /** HTTP method. */
  method: string;
  /** Path, without the query string. */
  path: string;
  /** Response status. */
  status: number;
  /** Time to build the response, in milliseconds. */
  duration_ms: number;
  /** Response body size in bytes, when known. */
  bytes: number | null;
  /** Authenticated user, when authentication is on. */
  user?: string;
}

/** Where the API writes its logs. */
export interface ApiLogger {
  /** Records one finished request. */
  request(line: RequestLogLine): void;
  /** Records something a person should look at (for example dropped backend parameters). */
  warn(message: string, fields?: Record<string, unknown>): void;
  /** Records an unexpected error; `fields` carry the request id. */
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * Builds a logger that writes one JSON object per line.
 *
 * @param write Receives each line, without the newline. @default a write to stderr
 * @returns The logger.
 * @example
 * ```ts
 * import { createJsonLogger } from "./request_log.ts";
 * const lines: string[] = [];
 * const logger = createJsonLogger((line) => lines.push(line));
 * logger.warn("dropped backend parameters", { keys: ["x"] });
 * JSON.parse(lines[0]!).level; // "warn"
 * ```
 */
export function createJsonLogger(write: (line: string) => void = writeStderr): ApiLogger {
  const emit = (level: string, message: string, fields?: Record<string, unknown>): void => {
    write(JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields }));
  };
  return {
    request: (line) => write(JSON.stringify({ ...line, level: "info", msg: "request" })),
    warn: (message, fields) => emit("warn", message, fields),
    error: (message, fields) => emit("error", message, fields),
  };
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}

/**
 * Describes an error for a log line: name, message, code and the chain of causes, and the
 * stack (logs are for operators; answers to clients never carry it). A thrown value that is not
 * an `Error` is described by `describeThrown` (its fields, never `[object Object]`).
 *
 * @param error Anything thrown.
 * @returns A JSON-friendly description.
 * @example
 * ```ts
 * import { describeError } from "./request_log.ts";
 * describeError(new TypeError("boom")).name; // "TypeError"
 * describeError({ status: 1 }).value; // "{status: 1}"
 * ```
 */
export function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { value: describeThrown(error) };
  const code = (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: error.message,
    ...(typeof code === "string" || typeof code === "number" ? { code } : {}),
    ...(error.stack === undefined ? {} : { stack: error.stack }),
    ...(error.cause === undefined ? {} : { cause: describeError(error.cause) }),
  };
}
