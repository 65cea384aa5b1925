/**
 * Cuts a stream into fixed-size parts and uploads them with bounded parallelism; memory is
 * bounded by `(concurrency + 1) × partSize` whatever the stream's length, and by the stream's
 * length when it is known and shorter (a 4 KiB file never costs an 8 MiB buffer).
 *
 * @module
 */

/** Options of {@linkcode chunkedUpload}. */
export interface ChunkedUploadOptions {
  /** Bytes per part (the last may be shorter). */
  partSize: number;
  /** Parts uploaded at once. */
  concurrency: number;
  /** Bytes the stream will yield, when known: no part buffer is larger than what remains. */
  size?: number;
  /**
   * Uploads one part; `index` counts from 0. `last` is true for the final part, which is only
   * handed over once the stream has ended (so its size and digest checks have run): a single
   * part with `index` 0 and `last` is the whole object.
   */
  uploadPart: (index: number, bytes: Uint8Array, last: boolean) => Promise<void>;
}

/**
 * Reads `stream` to its end, uploading each part as soon as it is full (the final one once the
 * stream has ended). At most `concurrency` part buffers exist at once.
 *
 * @param stream The bytes (consumed; cancelled on failure).
 * @param options Part size, parallelism and the part uploader.
 * @returns The number of parts and bytes.
 * @throws The first part upload's error (remaining parts are not started).
 */
export async function chunkedUpload(
  stream: ReadableStream<Uint8Array>,
  options: ChunkedUploadOptions,
): Promise<{ parts: number; bytes: number }> {
  const { partSize, concurrency, size, uploadPart } = options;
  const reader = stream.getReader();
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let parts = 0;
  let bytes = 0;
  let launched = 0;
  let buffer: Uint8Array | undefined;
  let filled = 0;
  // A full part waits for the next read: only then is it known whether it is the last.
  let ready: Uint8Array | undefined;
  // A stream longer than announced gets full parts (the caller's size check then fails it).
  const capacity = (): number =>
    size === undefined || size <= launched ? partSize : Math.min(partSize, size - launched);

  const launch = async (part: Uint8Array, last: boolean): Promise<void> => {
    const index = parts++;
    const p = uploadPart(index, part, last).catch((error) => {
      failure ??= { error };
    });
    inFlight.add(p);
    p.finally(() => inFlight.delete(p));
    while (inFlight.size >= concurrency) await Promise.race(inFlight);
  };

  try {
    while (failure === undefined) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.byteLength === 0) continue;
      if (ready !== undefined) {
        const part = ready;
        ready = undefined;
        await launch(part, false);
        if (failure !== undefined) break;
      }
      bytes += value.byteLength;
      let offset = 0;
      while (offset < value.byteLength) {
        buffer ??= new Uint8Array(capacity());
        const take = Math.min(buffer.byteLength - filled, value.byteLength - offset);
        buffer.set(value.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === buffer.byteLength) {
          const full = buffer;
          launched += filled;
          buffer = undefined;
          filled = 0;
          if (offset < value.byteLength) await launch(full, false);
          else ready = full;
        }
      }
    }
    if (failure === undefined) {
      if (ready !== undefined) await launch(ready, true);
      else if (filled > 0 || parts === 0) {
        await launch((buffer ?? new Uint8Array(0)).subarray(0, filled), true);
      }
    }
    await Promise.all(inFlight);
  } catch (error) {
    failure ??= { error };
  }
  if (failure !== undefined) {
    await reader.cancel().catch(() => {});
    await Promise.all(inFlight);
    throw failure.error;
  }
  return { parts, bytes };
}
