/**
 * Small helpers shared by the orchestrator, its backends and the monitor.
 *
 * @module
 */
import { describeThrown } from "../_describe_thrown.ts";

/**
 * Waits `ms` milliseconds, or less when `signal` aborts (then it resolves, never rejects).
 *
 * @param ms How long to wait.
 * @param signal Ends the wait early.
 * @returns Resolves when the time is up or the signal aborted.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done);
  });
}

/**
 * The message of an error with its causes, or the thrown value as text (see `describeThrown`).
 *
 * @param error Anything thrown.
 * @returns Text for a log line, never `[object Object]`.
 */
export function errorText(error: unknown): string {
  return describeThrown(error);
}
