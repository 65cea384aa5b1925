/**
 * The error class of the local backend.
 *
 * @module
 */

/** Stable codes of {@linkcode LocalBackendError}. */
export type LocalBackendErrorCode =
  | "RUNTIME_UNAVAILABLE"
  | "INVALID_POD"
  | "IMAGE_PULL_FAILED"
  | "INVALID_IMAGE_NAME"
  | "CLOSED";

/**
 * A failure of the local backend that a caller may want to tell apart: the chosen runtime
 * cannot work on this machine, a pod spec it cannot run, a container image the engine cannot
 * have (`IMAGE_PULL_FAILED`: the pull failed, the message holds the engine's reason;
 * `INVALID_IMAGE_NAME`: no usable image reference; the pod runner then reports the container
 * waiting with `ErrImagePull` / `InvalidImageName`, as a kubelet), or a call after `close()`.
 *
 * @example
 * ```ts
 * import { LocalBackendError } from "./local_backend_error.ts";
 * const error = new LocalBackendError("INVALID_POD", 'Pod name "A" is not a DNS label');
 * console.assert(error.code === "INVALID_POD");
 * ```
 */
export class LocalBackendError extends Error {
  /** Stable code of the condition. */
  readonly code: LocalBackendErrorCode;

  /**
   * Creates the error.
   *
   * @param code Stable code of the condition.
   * @param message What failed, then the current state.
   * @param options The underlying error, when there is one.
   */
  constructor(code: LocalBackendErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LocalBackendError";
    this.code = code;
  }
}
