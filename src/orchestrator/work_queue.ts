/**
 * A level-triggered work queue: items are keys (task ids), at most one pass runs per key at a
 * time, a key marked again while its pass runs gets one more pass afterwards, and a failing pass
 * is retried with capped exponential backoff.
 *
 * @module
 */

/** What a pass asks for next. */
export type PassResult =
  /** Nothing more to do until something changes. */
  | { done: true }
  /** Run again after this many milliseconds. */
  | { again: number };

/** Options of {@linkcode WorkQueue}. */
export interface WorkQueueOptions {
  /** Passes running at once, across all keys. @default 16 */
  concurrency?: number;
  /** First retry delay after a failed pass, in ms. @default 200 */
  initialBackoffMs?: number;
  /** Largest retry delay, in ms. @default 30000 */
  maxBackoffMs?: number;
  /** Called with every error a pass throws. */
  onError?: (key: string, error: unknown) => void;
}

interface Entry {
  running: boolean;
  dirty: boolean;
  failures: number;
  timer?: ReturnType<typeof setTimeout> | undefined;
}

/** Runs `pass(key)` for marked keys, one pass per key at a time. */
export class WorkQueue {
  #pass: (key: string) => Promise<PassResult>;
  #entries = new Map<string, Entry>();
  #ready: string[] = [];
  #running = 0;
  #concurrency: number;
  #initialBackoffMs: number;
  #maxBackoffMs: number;
  #onError: (key: string, error: unknown) => void;
  #closed = false;
  #idle: (() => void)[] = [];

  /**
   * Builds a queue around one pass function.
   *
   * @param pass Converges one key; throws to be retried with backoff.
   * @param options Concurrency and backoff.
   */
  constructor(pass: (key: string) => Promise<PassResult>, options: WorkQueueOptions = {}) {
    const {
      concurrency = 16,
      initialBackoffMs = 200,
      maxBackoffMs = 30_000,
      onError = () => {},
    } = options;
    this.#pass = pass;
    this.#concurrency = concurrency;
    this.#initialBackoffMs = initialBackoffMs;
    this.#maxBackoffMs = maxBackoffMs;
    this.#onError = onError;
  }

  /**
   * Marks a key: it gets a pass soon (or one more after the running one).
   *
   * @param key The key to converge.
   */
  add(key: string): void {
    if (this.#closed) return;
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { running: false, dirty: false, failures: 0 };
      this.#entries.set(key, entry);
    }
    if (entry.running) {
      entry.dirty = true;
      return;
    }
    if (entry.timer !== undefined) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
    if (!entry.dirty) {
      entry.dirty = true;
      this.#ready.push(key);
    }
    this.#drain();
  }

  /** Number of keys known to the queue (waiting, running or scheduled). */
  get size(): number {
    return this.#entries.size;
  }

  /** Resolves when no pass runs and none is waiting (scheduled retries do not count). */
  idle(): Promise<void> {
    if (this.#running === 0 && this.#ready.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops scheduling passes; running passes finish on their own. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      if (entry.timer !== undefined) clearTimeout(entry.timer);
    }
    this.#ready = [];
  }

  #drain(): void {
    while (!this.#closed && this.#running < this.#concurrency && this.#ready.length > 0) {
      const key = this.#ready.shift()!;
      const entry = this.#entries.get(key);
      if (!entry || entry.running) continue;
      entry.dirty = false;
      entry.running = true;
      this.#running++;
      this.#run(key, entry);
    }
    if (this.#running === 0 && this.#ready.length === 0) {
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  async #run(key: string, entry: Entry): Promise<void> {
    let delay: number | undefined;
    try {
      const result = await this.#pass(key);
      entry.failures = 0;
      if ("again" in result) delay = result.again;
    } catch (error) {
      this.#onError(key, error);
      entry.failures++;
      delay = Math.min(
        this.#maxBackoffMs,
        this.#initialBackoffMs * 2 ** Math.min(entry.failures - 1, 20),
      );
    }
    entry.running = false;
    this.#running--;
    if (this.#closed) {
      this.#drain();
      return;
    }
    if (entry.dirty) {
      entry.dirty = false;
      this.add(key);
    } else if (delay !== undefined) {
      entry.timer = setTimeout(() => {
        entry.timer = undefined;
        this.add(key);
      }, delay);
    } else {
      this.#entries.delete(key);
    }
    this.#drain();
  }
}
