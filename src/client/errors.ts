/**
 * The errors of the TES client: the server answered with an error, could not be reached, or a
 * batch create stopped part-way.
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

/**
 * A {@linkcode TesClient.createTasks} call stopped part-way: the batches before the failed one
 * were created (their ids are in `createdIds`, in order); the failed batch and every later one
 * were not (a Planetary batch is all or none).
 */
export class TesBatchCreateError extends Error {
  /** Stable error code. */
  readonly code = "TES_BATCH_CREATE";
  /** Ids of the tasks that were created, in the order of the tasks given. */
  readonly createdIds: readonly string[];

  /**
   * Builds the error.
   *
   * @param createdIds The ids created before the failure.
   * @param options Standard error options: `cause` is the error of the failed request.
   * @example
   * ```ts
   * import { TesBatchCreateError } from "./errors.ts";
   * new TesBatchCreateError(["a", "b"]).message;
   * // "batch create stopped after 2 tasks"
   * ```
   */
  constructor(createdIds: readonly string[], options?: ErrorOptions) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : "";
    super(`batch create stopped after ${createdIds.length} tasks${reason}`, options);
    this.name = "TesBatchCreateError";
    this.createdIds = createdIds;
  }
}
