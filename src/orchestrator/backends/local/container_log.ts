/**
 * Container log files of the local backend: reading their end in bounded time and memory, and
 * copying a container's output into them without ever rejecting (a full disk fails the
 * container, not the server).
 *
 * @module
 */

/** Options of {@linkcode readLogTail}. */
export interface ReadLogTailOptions {
  /**
   * Most bytes returned (and read from the file, give or take one trailing newline).
   *
   * @default {2048}
   */
  maxBytes?: number;
  /**
   * Most lines returned (the last ones).
   *
   * @default {80}
   */
  maxLines?: number;
}

/**
 * The end of a log file as the kubelet's `FallbackToLogsOnError` takes it: its last `maxLines`
 * lines, cut to their last `maxBytes` bytes (never splitting a UTF-8 character), without the
 * final newline. Only the last `maxBytes + 1` bytes of the file are read (one seek), so time
 * and memory do not depend on the size of the file or the length of its lines.
 *
 * @param file The log file.
 * @param options See {@linkcode ReadLogTailOptions}.
 * @returns The tail; "" when the file is missing or unreadable.
 * @example
 * ```ts
 * import { readLogTail } from "./container_log.ts";
 * const file = await Deno.makeTempFile();
 * await Deno.writeTextFile(file, "one\ntwo\nthree\n");
 * console.assert(await readLogTail(file, { maxLines: 2 }) === "two\nthree");
 * await Deno.remove(file);
 * ```
 */
export async function readLogTail(file: string, options: ReadLogTailOptions = {}): Promise<string> {
  const { maxBytes = 2048, maxLines = 80 } = options;
  let bytes: Uint8Array;
  try {
    using handle = await Deno.open(file);
    const size = (await handle.stat()).size;
    const want = Math.min(size, maxBytes + 1);
    await handle.seek(size - want, Deno.SeekMode.Start);
    bytes = new Uint8Array(want);
    let length = 0;
    while (length < want) {
      const n = await handle.read(bytes.subarray(length));
      if (n === null) break;
      length += n;
    }
    bytes = bytes.subarray(0, length);
  } catch {
    return "";
  }
  if (bytes.at(-1) === 0x0a) bytes = bytes.subarray(0, -1);
  if (bytes.length > maxBytes) bytes = bytes.subarray(bytes.length - maxBytes);
  let start = 0;
  while (start < bytes.length && start < 4 && (bytes[start]! & 0xc0) === 0x80) start++;
  const text = new TextDecoder().decode(bytes.subarray(start));
  const lines = text.split("\n");
  return lines.length > maxLines ? lines.slice(-maxLines).join("\n") : text;
}

/**
 * Why writing a container log failed, in words: `no space left on device` for ENOSPC, else the
 * error's message.
 *
 * @param error What the write threw.
 * @returns A short reason.
 */
export function describeLogWriteError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof Error && "code" in error ? String(error.code) : "";
  if (code === "ENOSPC" || /os error 28\b|no space left/i.test(message)) {
    return "no space left on device";
  }
  if (code === "EDQUOT" || /os error 122\b|quota exceeded/i.test(message)) {
    return "disk quota exceeded";
  }
  return message;
}

/**
 * Copies streams (a container's stdout and stderr) into one open log file, interleaved as the
 * chunks come. It never rejects: after the first failed write it records the error, calls
 * `onError` once (the caller stops the container), and keeps draining the streams so that the
 * writer is never blocked on a full pipe.
 *
 * @param streams The streams to copy.
 * @param file The log file, open for writing.
 * @param onError Called once with the first write error.
 * @returns The first write error, or undefined when every byte was written.
 * @example
 * ```ts
 * import { copyToLog } from "./container_log.ts";
 * const path = await Deno.makeTempFile();
 * using file = await Deno.open(path, { write: true });
 * const stream = ReadableStream.from([new TextEncoder().encode("hi\n")]);
 * console.assert(await copyToLog([stream], file, () => {}) === undefined);
 * await Deno.remove(path);
 * ```
 */
export async function copyToLog(
  streams: readonly ReadableStream<Uint8Array>[],
  file: { write(p: Uint8Array): Promise<number> },
  onError: (error: unknown) => void,
): Promise<unknown> {
  let failure: { error: unknown } | undefined;
  const copy = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    try {
      for await (const chunk of stream) {
        if (failure) continue;
        try {
          let written = 0;
          while (written < chunk.length) written += await file.write(chunk.subarray(written));
        } catch (error) {
          if (!failure) {
            failure = { error };
            onError(error);
          }
        }
      }
    } catch {
      // the stream itself failed (the process went away): nothing more to copy
    }
  };
  await Promise.all(streams.map(copy));
  return failure?.error;
}
