/**
 * Parallel ranged download: fetches fixed-size byte ranges of one object with bounded
 * concurrency and yields them in order as one stream. Memory is bounded by
 * `concurrency × rangeSize` whatever the object's size.
 *
 * @module
 */

/** Options of {@linkcode rangedRead}. */
export interface RangedReadOptions {
  /** Total size of the object in bytes. */
  size: number;
  /** Bytes per range. @default {8388608} */
  rangeSize?: number;
  /** Ranges in flight at once. @default {4} */
  concurrency?: number;
  /**
   * Fetches `count` bytes at `offset` (the adapter's SDK call, with its own retries).
   * Must resolve with exactly `count` bytes.
   */
  fetchRange: (offset: number, count: number, signal: AbortSignal) => Promise<Uint8Array>;
}

/**
 * Streams an object by parallel ranged requests, in order.
 *
 * @param options Size, range size, concurrency and the range fetcher.
 * @returns The object's bytes.
 */
export function rangedRead(options: RangedReadOptions): ReadableStream<Uint8Array> {
  const { size, rangeSize = 8 * 1024 * 1024, concurrency = 4, fetchRange } = options;
  const abort = new AbortController();
  const pending: Promise<Uint8Array>[] = [];
  let nextOffset = 0;
  const fill = (): void => {
    while (pending.length < concurrency && nextOffset < size) {
      const offset = nextOffset;
      const count = Math.min(rangeSize, size - offset);
      nextOffset += count;
      const p = fetchRange(offset, count, abort.signal).then((bytes) => {
        if (bytes.byteLength !== count) {
          throw new Error(`range at ${offset}: expected ${count} bytes, got ${bytes.byteLength}`);
        }
        return bytes;
      });
      p.catch(() => {}); // observed when awaited in order
      pending.push(p);
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      fill();
      const head = pending.shift();
      if (head === undefined) {
        controller.close();
        return;
      }
      try {
        controller.enqueue(await head);
      } catch (error) {
        abort.abort();
        throw error;
      }
      fill();
    },
    cancel() {
      abort.abort();
    },
  }, { highWaterMark: 0 });
}
