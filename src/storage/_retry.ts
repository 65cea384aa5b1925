/**
 * Capped exponential backoff for cloud calls whose SDK does not retry every throttling or
 * server error by itself (the Azure SDK does not retry HTTP 429).
 *
 * @module
 */
import { cloudFailure } from "./_cloud_error.ts";
import { StallError } from "./_stall_timeout.ts";

/** Options of {@linkcode withRetry}. */
export interface RetryPolicy {
  /** Attempts in total. @default {6} */
  maxAttempts?: number;
  /** Delay before the first retry, doubled each time (with jitter). @default {200} */
  initialDelayMs?: number;
  /** Upper bound of one delay. @default {10000} */
  maxDelayMs?: number;
  /** How to wait (tests may inject one). @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Whether a failure is worth retrying: HTTP 408, 429, 5xx, no HTTP response at all
 * (connection refused or reset, timeout), or a stall ({@linkcode StallError}).
 *
 * @param error Anything thrown by an SDK.
 * @returns Whether to try again.
 */
export function isRetryableFailure(error: unknown): boolean {
  // A request that stalled goes again on a fresh connection, like one that was reset.
  if (error instanceof StallError) return true;
  const { status, code } = cloudFailure(error);
  if (status !== undefined) return status === 408 || status === 429 || status >= 500;
  if (code === "AbortError" || code === "StorageError") return false;
  return true;
}

/**
 * Runs `fn` until it succeeds, retrying retryable failures with capped, jittered exponential
 * backoff.
 *
 * @param fn The call.
 * @param policy Attempts and delays.
 * @returns What `fn` returned.
 * @throws The last error when attempts run out or the error is not retryable.
 */
export async function withRetry<T>(fn: () => Promise<T>, policy: RetryPolicy = {}): Promise<T> {
  const {
    maxAttempts = 6,
    initialDelayMs = 200,
    maxDelayMs = 10_000,
    sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
  } = policy;
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= maxAttempts || !isRetryableFailure(error)) throw error;
      const capped = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
      await sleep(Math.round(capped / 2 + Math.random() * capped / 2));
    }
  }
}
