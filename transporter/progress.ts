/**
 * Progress lines of a transfer in the transporter's log: one line per finished file while a
 * transfer has few files (or for every large file), and a running total at a fixed interval
 * (files done of planned, bytes, MB/s) so that a long transfer shows it is alive.
 *
 * @module
 */
import { redactUrl } from "../src/storage/mod.ts";

/** Options of {@linkcode TransferProgress}. */
export interface TransferProgressOptions {
  /** What moves: `inputs` (downloads) or `outputs` (uploads). */
  mode: "inputs" | "outputs";
  /** Receives each progress line. */
  log: (line: string) => void;
  /** Milliseconds between running totals; 0 turns them off. @default {10000} */
  intervalMs?: number;
  /** Up to this many planned files, every finished file gets a line. @default {50} */
  fileLinesUpTo?: number;
  /** A file at least this large always gets a line when it finishes. @default {67108864} */
  largeFileBytes?: number;
  /** The clock, in milliseconds. @default {performance.now} */
  now?: () => number;
}

/**
 * Formats a byte count with a decimal unit (`512 B`, `1.5 MB`, `1.07 GB`).
 *
 * @param bytes A count of bytes.
 * @returns The count for people.
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/**
 * Counts the bytes of a transfer as they stream and writes progress lines.
 *
 * @example Usage
 * ```ts
 * import { TransferProgress } from "./progress.ts";
 * const lines: string[] = [];
 * const progress = new TransferProgress({ mode: "inputs", log: (l) => lines.push(l) });
 * progress.plan(1);
 * progress.fileDone("s3://bucket/a.txt", 3);
 * progress.stop();
 * lines[0]; // 'inputs: 1/1 files: s3://bucket/a.txt (3 B)'
 * ```
 */
export class TransferProgress {
  readonly #options: Required<TransferProgressOptions>;
  readonly #startedAt: number;
  #planned = 0;
  #files = 0;
  #bytes = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Starts the running totals (if `intervalMs` > 0).
   *
   * @param options Mode, log sink, interval and thresholds.
   */
  constructor(options: TransferProgressOptions) {
    this.#options = {
      intervalMs: 10_000,
      fileLinesUpTo: 50,
      largeFileBytes: 64 * 1024 * 1024,
      now: () => performance.now(),
      ...options,
    };
    this.#startedAt = this.#options.now();
    if (this.#options.intervalMs > 0) {
      const timer = setInterval(() => this.#options.log(this.totals()), this.#options.intervalMs);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
  }

  /**
   * Adds files to the number planned (the denominator of the totals).
   *
   * @param files How many more files will move.
   */
  plan(files: number): void {
    this.#planned += files;
  }

  /**
   * Passes a stream through, counting its bytes into the running total as they flow.
   *
   * @param stream The bytes of one file.
   * @returns The same bytes.
   */
  count(stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    return stream.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => {
          this.#bytes += chunk.byteLength;
          controller.enqueue(chunk);
        },
      }),
    );
  }

  /**
   * Records a finished file; writes its line when the transfer has few files or it is large.
   *
   * @param url Where the file came from or went to (redacted in the line).
   * @param size Its size in bytes.
   * @param counted Whether its bytes already went through {@linkcode count}. @default {true}
   */
  fileDone(url: string, size: number, counted = true): void {
    this.#files++;
    if (!counted) this.#bytes += size;
    const { fileLinesUpTo, largeFileBytes, mode, log } = this.#options;
    if (this.#planned <= fileLinesUpTo || size >= largeFileBytes) {
      log(
        `${mode}: ${this.#files}/${this.#planned} files: ${redactUrl(url)} (${formatBytes(size)})`,
      );
    }
  }

  /**
   * The running totals line: files done of planned, bytes so far, mean rate.
   *
   * @returns The line.
   */
  totals(): string {
    const seconds = Math.max((this.#options.now() - this.#startedAt) / 1000, 0.001);
    const rate = this.#bytes / 1e6 / seconds;
    return `${this.#options.mode}: ${this.#files}/${this.#planned} files, ${
      formatBytes(this.#bytes)
    } in ${seconds.toFixed(0)} s (${rate.toFixed(1)} MB/s)`;
  }

  /** Stops the running totals. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
