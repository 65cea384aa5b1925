/**
 * Runs jobs with bounded parallelism.
 *
 * @module
 */

/**
 * Runs `worker` over every item with at most `limit` running at once, in item order.
 * Every item is attempted; errors are returned per item, not thrown.
 *
 * @param items The items.
 * @param limit Maximum parallel workers (at least 1).
 * @param worker The job run for each item.
 * @returns One settled result per item, in item order.
 *
 * @example Usage
 * ```ts
 * import { runBounded } from "./pool.ts";
 * const results = await runBounded([1, 2, 3], 2, async (n) => n * 2);
 * results.map((r) => r.status); // ["fulfilled", "fulfilled", "fulfilled"]
 * ```
 */
export async function runBounded<T, R>(
  items: readonly T[],
  limit: number,
  worker: (item: T, index: number) => Promise<R>,
): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  async function lane(): Promise<void> {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = { status: "fulfilled", value: await worker(items[index]!, index) };
      } catch (reason) {
        results[index] = { status: "rejected", reason };
      }
    }
  }
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane);
  await Promise.all(lanes);
  return results;
}
