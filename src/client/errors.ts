/**
 * The errors of the TES client: the server answered with an error, or could not be reached.
 *
 * @module
 */

/** The server answered a request with an error status (or with a body that is not TES). */
export class TesApiError extends Error {
  /** Stable error code. */
  readonly code = "TES_API_ERROR";
  /** The HTTP status of the answer. */
  readonly status: number;
  /** The server's message (`msg` of its `{ msg, status_code }` body, or the body text). */
  readonly serverMessage: string;
  /** The method and URL of the request. */
  readonly request: string;

  /**
   * Builds the error.
   *
   * @param status The HTTP status of the answer.
   * @param serverMessage What the server said went wrong.
   * @param request The method and URL of the request (`GET http://…/tasks/abc`).
   * @param options Standard error options (`cause`).
   * @example
   * ```ts
   * import { TesApiError } from "./errors.ts";
   * const error = new TesApiError(404, 'Task "abc" not found', "GET http://h/v1/tasks/abc");
   * error.message; // 'Task "abc" not found (HTTP 404)'
   * ```
   */
  constructor(status: number, serverMessage: string, request: string, options?: ErrorOptions) {
    super(`${serverMessage} (HTTP ${status})`, options);
    this.name = "TesApiError";
    this.status = status;
    this.serverMessage = serverMessage;
    this.request = request;
  }
}

/** The TES server could not be reached (connection refused, DNS failure, reset…). */
export class TesConnectionError extends Error {
  /** Stable error code. */
  readonly code = "TES_CONNECTION";
  /** The server root or base URL the client was made with. */
  readonly serverUrl: string;

  /**
   * Builds the error.
   *
   * @param serverUrl The URL the client was made with.
   * @param options Standard error options: `cause` is the network error.
   * @example
   * ```ts
   * import { TesConnectionError } from "./errors.ts";
   * new TesConnectionError("http://127.0.0.1:8000").message;
   * // "cannot reach the TES server at http://127.0.0.1:8000"
   * ```
   */
  constructor(serverUrl: string, options?: ErrorOptions) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : "";
    super(`cannot reach the TES server at ${serverUrl}${reason}`, options);
    this.name = "TesConnectionError";
    this.serverUrl = serverUrl;
  }
}
