/**
 * The error class of the Kubernetes backend, and the translation of API answers into it.
 *
 * @module
 */
import { ApiException } from "@kubernetes/client-node";
import { HttpStatusError } from "./retry.ts";

/** Stable codes of {@linkcode KubernetesBackendError}. */
export type KubernetesBackendErrorCode =
  /** 401: the credentials were refused. */
  | "UNAUTHORIZED"
  /** 403: RBAC or an admission policy (Pod Security) refused the call. */
  | "FORBIDDEN"
  /** 400/422: the apiserver's validation refused the object. */
  | "INVALID"
  /** 409 where the backend cannot resolve it. */
  | "CONFLICT"
  /** 429/5xx/network errors that outlived the retries. */
  | "UNAVAILABLE"
  /** The kubeconfig could not be loaded. */
  | "CONFIG"
  /** Any other answer. */
  | "API_ERROR";

/**
 * A failed Kubernetes API call, with the HTTP status (0 for network errors) and the
 * apiserver's own message.
 *
 * @example
 * ```ts
 * import { KubernetesBackendError } from "./kubernetes_backend_error.ts";
 * const error = new KubernetesBackendError("FORBIDDEN", "Cannot create pod", 403);
 * console.assert(error.code === "FORBIDDEN" && error.status === 403);
 * ```
 */
export class KubernetesBackendError extends Error {
  /** Stable code of the condition. */
  readonly code: KubernetesBackendErrorCode;
  /** HTTP status of the answer; 0 when there was none. */
  readonly status: number;

  /**
   * Creates the error.
   *
   * @param code Stable code of the condition.
   * @param message What failed, then why.
   * @param status HTTP status; 0 when there was none.
   * @param options The underlying error.
   */
  constructor(
    code: KubernetesBackendErrorCode,
    message: string,
    status = 0,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "KubernetesBackendError";
    this.code = code;
    this.status = status;
  }
}

/**
 * The HTTP status of an error thrown by an API call, or 0 when it has none.
 *
 * @param error What the call threw.
 * @returns The status code, or 0.
 */
export function statusOf(error: unknown): number {
  if (error instanceof ApiException) return (error as ApiException<unknown>).code;
  if (error instanceof HttpStatusError) return error.status;
  if (error instanceof KubernetesBackendError) return error.status;
  return 0;
}

/** The `message` of a Kubernetes `Status` body (a string or an object). */
function apiMessage(error: unknown): string {
  if (error instanceof ApiException) {
    const body: unknown = (error as ApiException<unknown>).body;
    let parsed: unknown = body;
    if (typeof body === "string") {
      try {
        parsed = JSON.parse(body);
      } catch {
        return body.slice(0, 500);
      }
    }
    if (parsed && typeof parsed === "object" && "message" in parsed) {
      return String((parsed as { message: unknown }).message);
    }
    return `HTTP ${(error as ApiException<unknown>).code}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * Turns what an API call threw into a {@linkcode KubernetesBackendError}.
 *
 * @param error What the call threw.
 * @param what The call, for the message: `create pod "x" in namespace "y"`.
 * @returns The domain error (the original as `cause`).
 * @example
 * ```ts
 * import { toBackendError } from "./kubernetes_backend_error.ts";
 * const error = toBackendError(new TypeError("connection refused"), 'get pod "a"');
 * console.assert(error.code === "UNAVAILABLE");
 * ```
 */
export function toBackendError(error: unknown, what: string): KubernetesBackendError {
  if (error instanceof KubernetesBackendError) return error;
  const status = statusOf(error);
  const message = apiMessage(error);
  const code: KubernetesBackendErrorCode = status === 401
    ? "UNAUTHORIZED"
    : status === 403
    ? "FORBIDDEN"
    : status === 400 || status === 422
    ? "INVALID"
    : status === 409
    ? "CONFLICT"
    : status === 0 || status === 429 || status >= 500
    ? "UNAVAILABLE"
    : "API_ERROR";
  const why = status === 403
    ? `forbidden (RBAC or Pod Security admission): ${message}`
    : status === 0
    ? `the apiserver is unreachable: ${message}`
    : `HTTP ${status}: ${message}`;
  return new KubernetesBackendError(code, `Cannot ${what}: ${why}`, status, { cause: error });
}
