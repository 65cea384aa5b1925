/**
 * Stall timeouts for transfers, shared by every network adapter: a transfer that moves no byte
 * (received or sent) for a while fails, instead of holding a task slot forever (a server that
 * stops answering, a half-open connection). Only inactivity counts: a slow transfer that keeps
 * moving is never cut, whatever its total time.
 *
 * Three tools, for the three places a transfer can hang:
 * - {@linkcode withStallTimeout}: a body being read (counts only while the reader waits, so a
 *   consumer that is slow to write never trips it);
 * - {@linkcode StallWatchdog}: a request whose bytes the adapter sees move (an upload body it
 *   hands over, a range it copies): restarted by `touch()`, it aborts its `signal` when idle;
 * - {@linkcode withStallDeadline}: a call that exposes neither (no signal, no stream): bounded
 *   as a whole.
 *
 * Each fails with a {@linkcode StallError} naming the URL and the timeout.
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

/** What did not arrive: bytes of a transfer, a response, a connection. */
export type StallKind = "data" | "response" | "connection";

/**
 * The message of a stall: `stalled: no data for 60 s`.
 *
 * @param timeoutMs The stall timeout.
 * @param kind What did not arrive. @default {"data"}
 * @returns The message, without the URL.
 */
export function stallMessage(timeoutMs: number, kind: StallKind = "data"): string {
  const seconds = timeoutMs / 1000;
  return `stalled: no ${kind} for ${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

/** Options of {@linkcode StallError}. */
export interface StallErrorOptions {
  /** The stall timeout that ran out, in milliseconds. */
  timeoutMs: number;
  /** The URL concerned (redacted in the message). */
  url?: string | undefined;
  /** What was being done (`S3 GetObject`), shown after the timeout. */
  operation?: string | undefined;
  /** How many attempts stalled, when the adapter retried; shown when more than one. */
  attempts?: number | undefined;
  /** What did not arrive. @default {"data"} */
  kind?: StallKind;
}

/**
 * A transfer moved no byte for the stall timeout. The message says so first, then what was
 * being done and how often it was tried:
 * `stalled: no data for 60 s (S3 GetObject, 6 attempts): s3://bucket/key`.
 *
 * @example Usage
 * ```ts
 * import { StallError } from "./_stall_timeout.ts";
 * new StallError({ timeoutMs: 2000, url: "s3://b/k", operation: "S3 GetObject" }).message;
 * // "stalled: no data for 2 s (S3 GetObject): s3://b/k"
 * ```
 */
export class StallError extends StorageError {
  /** The stall timeout that ran out, in milliseconds. */
  readonly timeoutMs: number;

  /**
   * Creates a stall error.
   *
   * @param options Timeout, URL, operation and attempts.
   */
  constructor(options: StallErrorOptions) {
    const { timeoutMs, url, operation, attempts, kind = "data" } = options;
    const details = [
      operation,
      attempts !== undefined && attempts > 1 ? `${attempts} attempts` : undefined,
    ].filter((d) => d !== undefined && d !== "");
    super(
      `${stallMessage(timeoutMs, kind)}${details.length > 0 ? ` (${details.join(", ")})` : ""}`,
      { code: "IO_ERROR", ...(url !== undefined ? { url } : {}) },
    );
    this.name = "StallError";
    this.timeoutMs = timeoutMs;
  }
}

/** Options of {@linkcode withStallTimeout}. */
export interface StallTimeoutOptions {
  /** Longest wait for the next chunk, in milliseconds. */
  timeoutMs: number;
  /** The URL in the error message (redacted). */
  url?: string;
  /** What was being done, for the error message (`S3 GetObject`). @default none */
  operation?: string;
  /** Called when the stream stalls (for example to abort the request and close the socket). */
  onStall?: () => void;
}

/**
 * Wraps a stream so that it errors with a {@linkcode StallError}
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
  const { timeoutMs, url, operation, onStall } = options;
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
          const error = new StallError({ timeoutMs, url, operation });
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

/** Options of {@linkcode StallWatchdog}. */
export interface StallWatchdogOptions {
  /** Longest time without activity, in milliseconds. */
  timeoutMs: number;
  /** Called once when the watchdog fires (after `signal` is aborted). @default none */
  onStall?: () => void;
}

/**
 * An inactivity timer for one request: started at construction, restarted by every
 * {@linkcode StallWatchdog.touch} (a chunk sent or received), it aborts {@linkcode
 * StallWatchdog.signal} when `timeoutMs` pass without one, until {@linkcode StallWatchdog.stop}.
 * Hand `signal` to the SDK call and `touch` to whatever sees its bytes move.
 *
 * @example Usage
 * ```ts
 * import { StallWatchdog } from "./_stall_timeout.ts";
 * const watchdog = new StallWatchdog({ timeoutMs: 60_000 });
 * try {
 *   // await sdk.call({ abortSignal: watchdog.signal, onProgress: () => watchdog.touch() });
 * } finally {
 *   watchdog.stop();
 * }
 * ```
 */
export class StallWatchdog {
  #controller = new AbortController();
  #timeoutMs: number;
  #onStall: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  /**
   * Starts the timer.
   *
   * @param options Timeout and stall callback.
   */
  constructor(options: StallWatchdogOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#onStall = options.onStall;
    this.touch();
  }

  /** Aborted (with a {@linkcode StallError} as its reason) when the watchdog fires. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Whether the watchdog fired. */
  get stalled(): boolean {
    return this.#controller.signal.aborted;
  }

  /** The stall timeout, in milliseconds. */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** Records activity: the countdown starts again. */
  touch = (): void => {
    if (this.#stopped || this.stalled) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#stopped = true;
      this.#controller.abort(new StallError({ timeoutMs: this.#timeoutMs }));
      this.#onStall?.();
    }, this.#timeoutMs);
  };

  /** Ends the watch (the request finished or failed by itself). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}

/**
 * Passes a stream's chunks through, calling `onChunk` as each one is taken by the consumer
 * (an SDK sending an upload): how far an upload got, seen from the sending side.
 *
 * @param source The bytes.
 * @param onChunk Called per chunk, before it is handed over.
 * @returns The same bytes, pulled one chunk at a time.
 */
export function onEachChunk(
  source: ReadableStream<Uint8Array>,
  onChunk: (chunk: Uint8Array) => void,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      const next = await reader.read();
      if (next.done) {
        controller.close();
        return;
      }
      onChunk(next.value);
      controller.enqueue(next.value);
    },
    cancel(reason): Promise<void> {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Yields the chunks of a body being received (a node stream or any async iterable), calling
 * `touch` as each one arrives: what restarts a {@linkcode StallWatchdog} for a range read.
 *
 * @param source The body.
 * @param touch Called per chunk.
 * @returns The same chunks.
 */
export async function* touchEach(
  source: AsyncIterable<unknown>,
  touch: () => void,
): AsyncIterable<Uint8Array> {
  for await (const chunk of source) {
    touch();
    yield chunk as Uint8Array;
  }
}

/** Options of {@linkcode withStallDeadline}. */
export interface StallDeadlineOptions {
  /** Longest wait for the answer, in milliseconds. */
  timeoutMs: number;
  /** The URL in the error message (redacted). */
  url: string;
  /** What is being done, for the error message. */
  operation: string;
}

/**
 * Waits for a call that offers no way to watch its bytes or to abort it (a metadata request of
 * an SDK without signals), at most `timeoutMs`: then it fails with a {@linkcode StallError}
 * (`stalled: no response for N s`) and the call is abandoned.
 *
 * @param call The pending call.
 * @param options Timeout, URL and operation.
 * @returns What the call resolved with.
 * @throws {StallError} When it did not settle in time.
 */
export async function withStallDeadline<T>(
  call: Promise<T>,
  options: StallDeadlineOptions,
): Promise<T> {
  const { timeoutMs, url, operation } = options;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StallError({ timeoutMs, url, operation, kind: "response" })),
      timeoutMs,
    );
  });
  call.catch(() => {}); // settled late, after the deadline: nobody listens any more
  try {
    return await Promise.race([call, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
