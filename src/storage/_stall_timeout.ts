/**
 * Stall timeouts for transfers: a transfer that receives no byte for a while fails, instead of
 * holding a task slot forever (a slow-drip server, a half-open connection).
 *
 * @module
 */
import { StorageError } from "./storage_error.ts";

/** Environment variable holding the stall timeout in seconds. */
export const STALL_SECONDS_ENV = "PLANETARY_STORAGE_STALL_SECONDS";

/** Stall timeout when {@linkcode STALL_SECONDS_ENV} is not set, in seconds. */
export const DEFAULT_STALL_SECONDS = 60;

/**
 * The stall timeout configured by `PLANETARY_STORAGE_STALL_SECONDS` (a positive number of
 * seconds), else {@linkcode DEFAULT_STALL_SECONDS}. Unreadable environment (no permission)
 * means the default.
 *
 * @returns Milliseconds.
 * @throws {RangeError} When the variable is set to something else than a positive number.
 */
export function stallTimeoutMsFromEnv(): number {
  let value: string | undefined;
  try {
    value = Deno.env.get(STALL_SECONDS_ENV);
  } catch {
    value = undefined;
  }
  if (value === undefined || value.trim() === "") return DEFAULT_STALL_SECONDS * 1000;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new RangeError(`${STALL_SECONDS_ENV} must be a positive number of seconds: "${value}"`);
  }
  return seconds * 1000;
}

/** The message of a stall: `stalled: no data for 60 s`. */
export function stallMessage(timeoutMs: number): string {
  const seconds = timeoutMs / 1000;
  return `stalled: no data for ${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

/** Options of {@linkcode withStallTimeout}. */
export interface StallTimeoutOptions {
  /** Longest wait for the next chunk, in milliseconds. */
  timeoutMs: number;
  /** The URL in the error message (redacted). */
  url?: string;
  /** Called when the stream stalls (for example to abort the request and close the socket). */
  onStall?: () => void;
}

/**
 * Wraps a stream so that it errors with a {@linkcode StorageError}
 * (`stalled: no data for N s`) when no chunk arrives for `timeoutMs`; the source is then
 * cancelled. Only waits that the reader asks for count: a consumer that is slow to read (back
 * pressure) never trips it.
 *
 * @param source The stream to watch.
 * @param options See {@linkcode StallTimeoutOptions}.
 * @returns The watched stream.
 * @example
 * ```ts
 * import { withStallTimeout } from "./_stall_timeout.ts";
 * const body = withStallTimeout(ReadableStream.from([new Uint8Array([1])]), { timeoutMs: 1000 });
 * for await (const chunk of body) console.log(chunk.length);
 * ```
 */
export function withStallTimeout(
  source: ReadableStream<Uint8Array>,
  options: StallTimeoutOptions,
): ReadableStream<Uint8Array> {
  const { timeoutMs, url, onStall } = options;
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = new Promise<"stalled">((resolve) => {
        timer = setTimeout(() => resolve("stalled"), timeoutMs);
      });
      try {
        const next = await Promise.race([reader.read(), stalled]);
        if (next === "stalled") {
          onStall?.();
          const error = new StorageError(stallMessage(timeoutMs), {
            code: "IO_ERROR",
            ...(url !== undefined ? { url } : {}),
          });
          reader.cancel(error).catch(() => {});
          controller.error(error);
          return;
        }
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } finally {
        clearTimeout(timer);
      }
    },
    cancel(reason): Promise<void> {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
