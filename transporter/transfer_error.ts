/**
 * The error the transporter reports when a transfer fails.
 *
 * @module
 */
import { isStorageError, redactText } from "../src/storage/mod.ts";

/**
 * A transfer of one input or output failed; the message names which one, its URL without
 * secrets, and why.
 */
export class TransferError extends Error {
  /** Stable error code. */
  readonly code = "TRANSFER_FAILED";

  /**
   * Creates a transfer error.
   *
   * @param message What failed and why (already redacted).
   * @param options The underlying error.
   */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TransferError";
  }
}

/**
 * A one-line reason for any thrown value, with URLs redacted.
 *
 * @param error Anything thrown.
 * @returns The reason.
 */
export function describeError(error: unknown): string {
  if (isStorageError(error)) return error.message;
  if (error instanceof Error) return redactText(error.message);
  return redactText(String(error));
}
