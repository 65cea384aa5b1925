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

/** Options of {@linkcode boundedList}. */
export interface BoundedListOptions {
  /** Most items kept. @default {50} */
  maxItems?: number;
  /** Most UTF-16 characters of all kept items together. @default {8192} */
  maxChars?: number;
  /** What is appended for the items left out. @default {(n) => `… and ${n} more`} */
  more?: (left: number) => string;
}

/**
 * The first items of a list that fit a budget, and one line counting the rest: what keeps a
 * task with 20,000 failed outputs from writing 20,000 lines (megabytes) into its report, its
 * termination message and the task's `system_logs`. An item longer than the budget is cut.
 *
 * @param items The lines (errors, warnings).
 * @param options See {@linkcode BoundedListOptions}.
 * @returns At most `maxItems + 1` items.
 * @example
 * ```ts
 * import { boundedList } from "./transfer_error.ts";
 * const kept = boundedList(["a", "b", "c"], { maxItems: 2 });
 * console.assert(kept.join("; ") === "a; b; … and 1 more");
 * ```
 */
export function boundedList(items: readonly string[], options: BoundedListOptions = {}): string[] {
  const { maxItems = 50, maxChars = 8192, more = (n: number) => `… and ${n} more` } = options;
  const kept: string[] = [];
  let chars = 0;
  for (const item of items) {
    if (kept.length >= maxItems || chars >= maxChars) break;
    const room = maxChars - chars;
    const text = item.length > room ? `${item.slice(0, Math.max(room - 1, 0))}…` : item;
    kept.push(text);
    chars += text.length;
  }
  if (kept.length < items.length) kept.push(more(items.length - kept.length));
  return kept;
}
