/**
 * The one HTTP error class of the API and the mapping from domain errors (store, validation) to
 * HTTP answers. Route handlers throw; the app-level handler in `app.ts` turns every error into
 * the JSON error body {@linkcode ErrorBody}.
 *
 * @module
 */
import { InvalidPageTokenError, TaskNotFoundError } from "../store/task_store.ts";

/** HTTP statuses the API answers errors with. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 408 | 413 | 415 | 500 | 503;

/**
 * The JSON body of every error answer.
 *
 * The shape `{ "msg", "status_code" }` is the one Funnel (the reference TES server) answers with
 * and that TESK-era clients and py-tes print when a request fails; the TES specification itself
 * defines no error body, so we use the one real clients already know.
 */
export interface ErrorBody {
  /** What went wrong, for a person; names the offending field where there is one. */
  msg: string;
  /** The HTTP status, repeated for clients that only see the body. */
  status_code: number;
}

/** An error that becomes an HTTP answer with the given status and message. */
export class HttpError extends Error {
  /** Stable error code (`BAD_REQUEST`, `NOT_FOUND`, …), derived from the status. */
  readonly code: string;
  /** The HTTP status of the answer. */
  readonly status: ErrorStatus;
  /** Extra response headers (for example `Allow` on a 405). */
  readonly headers: Readonly<Record<string, string>>;

  /**
   * Builds the error.
   *
   * @param status The HTTP status of the answer.
   * @param message The `msg` of the answer: safe to show to the client.
   * @param options `headers` for the answer and the underlying `cause`.
   * @example
   * ```ts
   * import { HttpError } from "./errors.ts";
   * const error = new HttpError(405, "Method PUT is not allowed here", {
   *   headers: { allow: "GET" },
   * });
   * error.code; // "METHOD_NOT_ALLOWED"
   * ```
   */
  constructor(
    status: ErrorStatus,
    message: string,
    options: ErrorOptions & { headers?: Record<string, string> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HttpError";
    this.status = status;
    this.code = STATUS_CODES[status];
    this.headers = Object.freeze({ ...options.headers });
  }
}

const STATUS_CODES: Readonly<Record<ErrorStatus, string>> = Object.freeze({
  400: "BAD_REQUEST",
  401: "UNAUTHORIZED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  405: "METHOD_NOT_ALLOWED",
  408: "REQUEST_TIMEOUT",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  500: "INTERNAL",
  503: "UNAVAILABLE",
});

/** Error codes (on `code`) of driver errors that mean the database cannot be reached. */
const UNAVAILABLE_CODES: ReadonlySet<string> = new Set([
  "STORE_UNAVAILABLE",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "08000", // connection_exception
  "08001", // sqlclient_unable_to_establish_sqlconnection
  "08003", // connection_does_not_exist
  "08006", // connection_failure
]);

/**
 * Tells whether an error (or one of its causes) means that the store cannot be reached: a
 * refused or dropped connection, a database shutting down, or an error the store marked with
 * code `STORE_UNAVAILABLE`.
 *
 * @param error Anything thrown by a store call.
 * @returns `true` when the request may succeed later, once the database is back.
 * @example
 * ```ts
 * import { isStoreUnavailable } from "./errors.ts";
 * isStoreUnavailable(new Deno.errors.ConnectionRefused("connect")); // true
 * ```
 */
export function isStoreUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if (
      current instanceof Deno.errors.ConnectionRefused ||
      current instanceof Deno.errors.ConnectionReset ||
      current instanceof Deno.errors.ConnectionAborted ||
      current instanceof Deno.errors.NotConnected
    ) return true;
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && UNAVAILABLE_CODES.has(code)) return true;
    current = current.cause;
  }
  return false;
}

/**
 * Maps any thrown value to the {@linkcode HttpError} the client sees. Domain errors keep their
 * (safe) message; anything unknown becomes a 500 whose message reveals nothing.
 *
 * @param error Anything thrown while handling a request.
 * @returns The HTTP error to answer with, and whether it is unexpected (to be logged).
 * @example
 * ```ts
 * import { toHttpError } from "./errors.ts";
 * import { TaskNotFoundError } from "../store/task_store.ts";
 * toHttpError(new TaskNotFoundError("abc")).error.status; // 404
 * ```
 */
export function toHttpError(error: unknown): { error: HttpError; unexpected: boolean } {
  if (error instanceof HttpError) return { error, unexpected: false };
  if (error instanceof TaskNotFoundError || isCoded(error, "TASK_NOT_FOUND")) {
    return { error: new HttpError(404, error.message, { cause: error }), unexpected: false };
  }
  if (error instanceof InvalidPageTokenError || isCoded(error, "INVALID_PAGE_TOKEN")) {
    return { error: new HttpError(400, error.message, { cause: error }), unexpected: false };
  }
  if (isStoreUnavailable(error)) {
    return {
      error: new HttpError(503, "The task database is unavailable; retry later", { cause: error }),
      unexpected: true,
    };
  }
  return {
    error: new HttpError(500, "Internal server error", { cause: error }),
    unexpected: true,
  };
}

function isCoded(error: unknown, code: string): error is Error {
  return error instanceof Error && (error as { code?: unknown }).code === code;
}
