/**
 * Group commit: writes that arrive while earlier ones are being committed wait, and go to the
 * database together in ONE statement (one transaction, one fsync). Each caller is answered only
 * once the statement that carries its item has committed, so an acknowledged write is as
 * durable as with one commit per request, and the fsync is shared.
 *
 * No timer: an item that arrives while a slot is free is written at once (no added latency on
 * an idle server); batches form only under load, and grow with it.
 *
 * @module
 */

/** Writes a batch; returns one result per item, in order. */
export type BatchWriter<I, R> = (items: readonly I[]) => Promise<R[]>;

/** Options of {@linkcode GroupCommitter}. */
export interface GroupCommitterOptions {
  /** Batches written at the same time (database connections used). @default {2} */
  maxInFlight?: number;
  /** Largest batch. @default {512} */
  maxBatch?: number;
}

interface Pending<I, R> {
  item: I;
  resolve: (result: R) => void;
  reject: (error: unknown) => void;
}

/**
 * Collects concurrent writes into batches for a {@linkcode BatchWriter}. When a batch of more
 * than one item fails, each of its items is written again alone, so that one item the database
 * refuses fails only its own caller.
 */
export class GroupCommitter<I, R> {
  #write: BatchWriter<I, R>;
  #maxInFlight: number;
  #maxBatch: number;
  #queue: Pending<I, R>[] = [];
  #inFlight = 0;

  /**
   * @param write Writes one batch in one statement.
   * @param options Concurrency and batch size.
   */
  constructor(write: BatchWriter<I, R>, options: GroupCommitterOptions = {}) {
    const { maxInFlight = 2, maxBatch = 512 } = options;
    if (!(maxInFlight >= 1) || !(maxBatch >= 1)) {
      throw new RangeError("GroupCommitter: maxInFlight and maxBatch must be at least 1");
    }
    this.#write = write;
    this.#maxInFlight = maxInFlight;
    this.#maxBatch = maxBatch;
  }

  /**
   * Writes one item with whatever else is waiting.
   *
   * @param item The item.
   * @returns Its result, once the batch that carried it has committed.
   */
  add(item: I): Promise<R> {
    const { promise, resolve, reject } = Promise.withResolvers<R>();
    this.#queue.push({ item, resolve, reject });
    this.#pump();
    return promise;
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inFlight++;
      this.#flush(batch).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #flush(batch: Pending<I, R>[]): Promise<void> {
    let results: R[];
    try {
      results = await this.#write(batch.map((p) => p.item));
      if (results.length !== batch.length) {
        throw new Error(`batch writer returned ${results.length} results for ${batch.length}`);
      }
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      // one bad item must not fail the others: write each alone
      await Promise.all(batch.map((p) => this.#flush([p])));
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i]!));
  }
}
