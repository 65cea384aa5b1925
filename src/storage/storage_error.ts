/**
 * Errors thrown by every storage adapter. Messages name the URL with its secrets
 * removed (see {@linkcode redactUrl}); the underlying error, if any, is the `cause`.
 *
 * @module
 */
import { redactUrl } from "./redact_url.ts";

/** Stable codes of {@linkcode StorageError}. */
export type StorageErrorCode =
  /** The object or file does not exist. */
  | "NOT_FOUND"
  /** Access refused: outside the file allow-list, HTTP 401/403, filesystem permissions. */
  | "PERMISSION_DENIED"
  /** The adapter cannot do this (upload over http, directory listing over http). */
  | "UNSUPPORTED"
  /** No adapter handles the URL's scheme. */
  | "UNSUPPORTED_SCHEME"
  /** The URL is malformed for its adapter. */
  | "INVALID_URL"
  /** Any other failure (network, server error after retries, I/O error). */
  | "IO_ERROR";

/** Options of {@linkcode StorageError}. */
export interface StorageErrorOptions {
  /** Stable error code. @default {"IO_ERROR"} */
  code?: StorageErrorCode;
  /** The URL concerned; it is redacted before it is stored or shown. */
  url?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * A storage operation failed. The message names what failed and the redacted URL.
 *
 * @example Usage
 * ```ts
 * import { StorageError } from "./storage_error.ts";
 * const error = new StorageError("read failed", { url: "https://h/x?sig=S" });
 * error.message; // "read failed: https://h/x"
 * ```
 */
export class StorageError extends Error {
  /** Stable error code. */
  readonly code: StorageErrorCode;
  /** The redacted URL concerned, when there is one. */
  readonly url: string | undefined;

  /**
   * Creates a storage error.
   *
   * @param message What failed (without the URL: it is appended, redacted).
   * @param options Code, URL and cause.
   */
  constructor(message: string, options: StorageErrorOptions = {}) {
    const { code = "IO_ERROR", url, cause } = options;
    const shown = url === undefined ? undefined : redactUrl(url);
    super(shown === undefined ? message : `${message}: ${shown}`, { cause });
    this.name = "StorageError";
    this.code = code;
    this.url = shown;
  }
}

/**
 * The object or file at a URL does not exist.
 *
 * @example Usage
 * ```ts
 * import { StorageNotFoundError } from "./storage_error.ts";
 * new StorageNotFoundError("https://h/x").code; // "NOT_FOUND"
 * ```
 */
export class StorageNotFoundError extends StorageError {
  /**
   * Creates a not-found error.
   *
   * @param url The URL that does not exist (redacted in the message).
   * @param cause The underlying error.
   */
  constructor(url: string, cause?: unknown) {
    super("not found", { code: "NOT_FOUND", url, cause });
    this.name = "StorageNotFoundError";
  }
}

/**
 * Access to a URL is refused.
 *
 * @example Usage
 * ```ts
 * import { StoragePermissionError } from "./storage_error.ts";
 * new StoragePermissionError("outside the allow-list", "file:///etc/passwd").code; // "PERMISSION_DENIED"
 * ```
 */
export class StoragePermissionError extends StorageError {
  /**
   * Creates a permission error.
   *
   * @param reason Why access is refused.
   * @param url The URL concerned (redacted in the message).
   * @param cause The underlying error.
   */
  constructor(reason: string, url: string, cause?: unknown) {
    super(`permission denied (${reason})`, { code: "PERMISSION_DENIED", url, cause });
    this.name = "StoragePermissionError";
  }
}

/**
 * Narrows an unknown thrown value to a {@linkcode StorageError}.
 *
 * @param error Anything thrown.
 * @returns Whether it is a storage error.
 */
export function isStorageError(error: unknown): error is StorageError {
  return error instanceof StorageError;
}
