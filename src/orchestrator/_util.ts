/**
 * Small helpers shared by the orchestrator, its backends and the monitor.
 *
 * @module
 */

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
 * The message of an error, or the thrown value as text.
 *
 * @param error Anything thrown.
 * @returns Text for a log line.
 */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
