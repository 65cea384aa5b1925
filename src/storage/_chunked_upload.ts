/**
 * Cuts a stream into fixed-size parts and uploads them with bounded parallelism; memory is
 * bounded by `(concurrency + 1) × partSize` whatever the stream's length.
 *
 * @module
 */

/** Options of {@linkcode chunkedUpload}. */
export interface ChunkedUploadOptions {
  /** Bytes per part (the last may be shorter). */
  partSize: number;
  /** Parts uploaded at once. */
  concurrency: number;
  /** Uploads one part; `index` counts from 0. */
  uploadPart: (index: number, bytes: Uint8Array) => Promise<void>;
}

/**
 * Reads `stream` to its end, uploading each part as soon as it is full.
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
  const { partSize, concurrency, uploadPart } = options;
  const reader = stream.getReader();
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let parts = 0;
  let bytes = 0;
  let buffer = new Uint8Array(partSize);
  let filled = 0;

  const launch = async (part: Uint8Array): Promise<void> => {
    const index = parts++;
    const p = uploadPart(index, part).catch((error) => {
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
      bytes += value.byteLength;
      let offset = 0;
      while (offset < value.byteLength) {
        const take = Math.min(partSize - filled, value.byteLength - offset);
        buffer.set(value.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === partSize) {
          await launch(buffer);
          buffer = new Uint8Array(partSize);
          filled = 0;
        }
      }
    }
    if (failure === undefined && (filled > 0 || parts === 0)) {
      await launch(buffer.subarray(0, filled));
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
