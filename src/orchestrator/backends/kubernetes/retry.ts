/**
 * Retries of Kubernetes API calls: capped exponential backoff with jitter on 429 (honouring
 * `Retry-After`), 5xx and network errors; every other answer is final.
 *
 * @module
 */
import { ApiException } from "@kubernetes/client-node";
import { sleep } from "../../_util.ts";

/** Options of {@linkcode retry}. */
export interface RetryOptions {
  /**
   * Attempts in all, the first included.
   * @default {6}
   */
  maxAttempts?: number;
  /**
   * Delay before the second attempt, in ms; doubled after each failure.
   * @default {200}
   */
  initialDelayMs?: number;
  /**
   * Longest delay between attempts, in ms (also caps `Retry-After`).
   * @default {5000}
   */
  maxDelayMs?: number;
  /** Stops waiting and rethrows the last error when aborted. @default {no signal} */
  signal?: AbortSignal;
  /**
   * Decides whether an error is worth another attempt, and how long to wait at least.
   * @default {transientError}
   */
  retryable?: (error: unknown) => RetryDecision;
  /** Called before each wait, for logs. @default {nothing} */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Waits `ms` (resolves early when `signal` aborts). @default {a timer} */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Random number in [0, 1) for jitter. @default {Math.random} */
  random?: () => number;
}

/** Whether to retry an error: `false`, or `true` with an optional least delay in ms. */
export type RetryDecision = false | { afterMs?: number };

/** An HTTP answer outside the generated client (the raw watch): the status and its headers. */
export class HttpStatusError extends Error {
  /** The HTTP status code. */
  readonly status: number;
  /** `Retry-After` in ms, when the server sent one. */
  readonly retryAfterMs: number | undefined;

  /**
   * Creates the error.
   *
   * @param status The HTTP status code.
   * @param message What failed.
   * @param retryAfterMs `Retry-After` in ms, when given.
   */
  constructor(status: number, message: string, retryAfterMs?: number) {
    super(message);
    this.name = "HttpStatusError";
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Parses a `Retry-After` header value (seconds, or an HTTP date).
 *
 * @param value The header value.
 * @param now The current time in ms since the epoch.
 * @returns The delay in ms, or undefined when absent or unreadable.
 * @example
 * ```ts
 * import { parseRetryAfter } from "./retry.ts";
 * parseRetryAfter("2"); // 2000
 * ```
 */
export function parseRetryAfter(
  value: string | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function headerValue(
  headers: Record<string, string> | undefined,
  name: string,
): string | undefined {
  if (!headers) return undefined;
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) return value;
  }
  return undefined;
}

function retryableStatus(status: number, afterMs: number | undefined): RetryDecision {
  if (status === 429 || status >= 500) return afterMs === undefined ? {} : { afterMs };
  return false;
}

/**
 * The default retry rule for Kubernetes calls: 429 and 5xx answers (with their `Retry-After`)
 * and network failures (refused or reset connections, TLS or DNS errors) are transient; every
 * other answer (4xx) is final, and so is an abort.
 *
 * @param error What the call threw.
 * @returns Whether to retry, and the least delay.
 * @example
 * ```ts
 * import { HttpStatusError, transientError } from "./retry.ts";
 * transientError(new HttpStatusError(503, "unavailable")); // {}
 * transientError(new HttpStatusError(404, "not found")); // false
 * ```
 */
export function transientError(error: unknown): RetryDecision {
  if (error instanceof ApiException) {
    const code = (error as ApiException<unknown>).code;
    return retryableStatus(code, parseRetryAfter(headerValue(error.headers, "retry-after")));
  }
  if (error instanceof HttpStatusError) return retryableStatus(error.status, error.retryAfterMs);
  if (error instanceof Error) {
    if (error.name === "AbortError" || error.name === "TimeoutError") return false;
    // node-fetch's FetchError (type "system"), Deno's fetch TypeError, socket errors
    if (error.name === "FetchError" || error instanceof TypeError) return {};
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && /^(E[A-Z]+|UND_ERR)/.test(code)) return {};
  }
  return false;
}

/**
 * The delay before attempt `attempt + 1`: `initial * 2^(attempt-1)` capped at `max`, with
 * "equal jitter" (half fixed, half random) so that many clients do not retry in step.
 *
 * @param attempt The attempt that just failed, from 1.
 * @param initialMs Delay after the first failure.
 * @param maxMs The cap.
 * @param random Random number in [0, 1).
 * @returns The delay in ms.
 * @example
 * ```ts
 * import { backoffDelay } from "./retry.ts";
 * backoffDelay(3, 200, 5000, () => 0); // 400
 * ```
 */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const full = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(full / 2 + (full / 2) * random());
}

/**
 * Runs `fn` until it succeeds, the error is not transient, the attempts run out or `signal`
 * aborts; then returns its value or throws its last error unchanged.
 *
 * @param fn The call; receives the attempt number (from 1).
 * @param options Attempts, delays and the retry rule.
 * @returns What `fn` returned.
 * @throws {unknown} The last error of `fn`.
 * @example
 * ```ts
 * import { retry } from "./retry.ts";
 * let calls = 0;
 * const value = await retry(() => {
 *   calls++;
 *   if (calls < 2) throw new TypeError("connection refused");
 *   return Promise.resolve("ok");
 * }, { sleep: () => Promise.resolve() });
 * console.assert(value === "ok" && calls === 2);
 * ```
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const {
    maxAttempts = 6,
    initialDelayMs = 200,
    maxDelayMs = 5000,
    signal,
    retryable = transientError,
    onRetry,
    sleep: wait = sleep,
    random = Math.random,
  } = options;
  for (let attempt = 1;; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      const decision = retryable(error);
      if (decision === false || attempt >= maxAttempts || signal?.aborted) throw error;
      const delayMs = Math.min(
        maxDelayMs,
        Math.max(decision.afterMs ?? 0, backoffDelay(attempt, initialDelayMs, maxDelayMs, random)),
      );
      onRetry?.(error, attempt, delayMs);
      await wait(delayMs, signal);
      if (signal?.aborted) throw error;
    }
  }
}
