/**
 * Helpers shared by the service entrypoints (`cli/api.ts`, `cli/orchestrator.ts`,
 * `cli/monitor.ts`).
 *
 * @module
 */

/**
 * Resolves at the first SIGINT or SIGTERM.
 *
 * @returns A promise of the signal's arrival.
 */
export function waitForSignal(): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const onSignal = (): void => {
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    resolve();
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  return promise;
}
