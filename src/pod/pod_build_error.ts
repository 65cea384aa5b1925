/**
 * The error the pod builder throws when a task cannot become a pod.
 *
 * @module
 */

/** Why a task cannot become a pod. */
export type PodBuildErrorCode =
  | "INVALID_PATH"
  | "RESERVED_PATH"
  | "INVALID_BACKEND_PARAMETER"
  | "SPEC_TOO_LARGE";

/**
 * Thrown by `buildTaskPod()` when the task cannot run as a pod (the orchestrator records it as
 * a SYSTEM_ERROR with the message; the API should have refused such a task already).
 *
 * @example
 * ```ts
 * import { PodBuildError } from "./pod_build_error.ts";
 * const error = new PodBuildError("RESERVED_PATH", 'Cannot mount "/proc": the path is reserved');
 * error.code; // "RESERVED_PATH"
 * ```
 */
export class PodBuildError extends Error {
  /** Stable machine-readable reason. */
  readonly code: PodBuildErrorCode;

  /**
   * Creates the error.
   *
   * @param code Stable reason.
   * @param message What failed, for people.
   * @param options Standard error options (`cause`).
   */
  constructor(code: PodBuildErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PodBuildError";
    this.code = code;
  }
}
