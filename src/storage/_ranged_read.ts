/**
 * Parallel ranged download: fetches fixed-size byte ranges of one object with bounded
 * concurrency into a fixed set of `concurrency + 1` range buffers, reused for the whole object,
 * and yields the bytes in order as one stream of short-lived copies (at most 256 KiB each).
 * The range buffers are the only long-lived memory, `(concurrency + 1) × rangeSize` whatever
 * the object's size; the copies die young, so the garbage collector frees them at once instead
 * of piling up dead 8 MiB buffers until its next full collection.
 *
 * @module
 */

/** Bytes per chunk the stream yields. */
const SLICE = 256 * 1024;

/** Options of {@linkcode rangedRead}. */
export interface RangedReadOptions {
  /** Total size of the object in bytes. */
  size: number;
  /** Bytes per range. @default {8388608} */
  rangeSize?: number;
  /** Ranges in flight at once, besides the one being drained. @default {3} */
  concurrency?: number;
  /**
   * Fetches `into.byteLength` bytes at `offset` into `into` (the adapter's SDK call, with its
   * own retries), resolving with the bytes written: `into` itself, or a prefix of it when the
   * object ended early (which fails the stream).
   */
  fetchRange: (offset: number, into: Uint8Array, signal: AbortSignal) => Promise<Uint8Array>;
}

/**
 * Streams an object by parallel ranged requests, in order.
 *
 * @param options Size, range size, concurrency and the range fetcher.
 * @returns The object's bytes.
 *
 * @example Usage
 * ```ts
 * import { rangedRead } from "./_ranged_read.ts";
 * const data = new Uint8Array(10).map((_, i) => i);
 * const stream = rangedRead({
 *   size: 10,
 *   rangeSize: 4,
 *   fetchRange: (offset, into) => {
 *     into.set(data.subarray(offset, offset + into.byteLength));
 *     return Promise.resolve(into);
 *   },
 * });
 * new Uint8Array(await new Response(stream).arrayBuffer()); // 0, 1, …, 9
 * ```
 */
export function rangedRead(options: RangedReadOptions): ReadableStream<Uint8Array> {
  const { size, rangeSize = 8 * 1024 * 1024, concurrency = 3, fetchRange } = options;
  const abort = new AbortController();
  const free: Uint8Array[] = [];
  const pending: { buffer: Uint8Array; bytes: Promise<Uint8Array> }[] = [];
  let nextOffset = 0;
  let current: { buffer: Uint8Array; bytes: Uint8Array } | undefined;
  let position = 0;
  const fill = (): void => {
    while (pending.length < concurrency && nextOffset < size) {
      const offset = nextOffset;
      const count = Math.min(rangeSize, size - offset);
      nextOffset += count;
      const buffer = free.pop() ?? new Uint8Array(Math.min(rangeSize, size));
      const bytes = fetchRange(offset, buffer.subarray(0, count), abort.signal).then((got) => {
        if (got.byteLength !== count) {
          throw new Error(`range at ${offset}: expected ${count} bytes, got ${got.byteLength}`);
        }
        return got;
      });
      bytes.catch(() => {}); // observed when awaited in order
      pending.push({ buffer, bytes });
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (current === undefined) {
        fill();
        const head = pending.shift();
        if (head === undefined) {
          controller.close();
          return;
        }
        fill(); // the next range starts while this one drains
        try {
          current = { buffer: head.buffer, bytes: await head.bytes };
        } catch (error) {
          abort.abort();
          throw error;
        }
        position = 0;
      }
      const end = Math.min(position + SLICE, current.bytes.byteLength);
      controller.enqueue(current.bytes.slice(position, end)); // a copy: the buffer is reused
      position = end;
      if (position >= current.bytes.byteLength) {
        free.push(current.buffer);
        current = undefined;
        fill();
      }
    },
    cancel() {
      abort.abort();
    },
  }, { highWaterMark: 0 });
}

/**
 * Reads a range's body into `into`, chunk by chunk (an SDK's own "to bytes" helper keeps every
 * chunk and then concatenates them into a new buffer).
 *
 * @param body The range's bytes.
 * @param into Where to put them; its length is the range's.
 * @returns The bytes written: `into`, or a prefix of it when the body ended early.
 * @throws {RangeError} When the body holds more than `into.byteLength` bytes.
 */
export async function readExactly(
  body: AsyncIterable<Uint8Array>,
  into: Uint8Array,
): Promise<Uint8Array> {
  const count = into.byteLength;
  let filled = 0;
  for await (const chunk of body) {
    if (filled + chunk.byteLength > count) {
      throw new RangeError(`range body longer than the ${count} bytes asked for`);
    }
    into.set(chunk, filled);
    filled += chunk.byteLength;
  }
  return filled === count ? into : into.subarray(0, filled);
}
