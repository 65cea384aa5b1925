/**
 * Wake-ups of the orchestrators waiting for work, shared by the stores: a notification wakes
 * every waiter, and one that arrives while nobody waits is kept for the next wait, so no
 * wake-up is lost between a claim and a wait.
 *
 * @module
 */

/** The waiters of one store. */
export class WakeUps {
  #waiters = new Set<() => void>();
  #pending = false;
  #closed = false;

  /** Wakes every waiter, or the next wait when nobody waits. */
  notify(): void {
    if (this.#waiters.size === 0) {
      this.#pending = true;
      return;
    }
    for (const waiter of [...this.#waiters]) waiter();
  }

  /**
   * Waits for a notification (or one kept since the last wait), `timeoutMs`, `signal` or close.
   *
   * @param timeoutMs Longest wait.
   * @param signal Ends the wait early.
   * @returns `true` when woken by a notification, `false` on timeout, abort or close.
   */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve(true);
    }
    if (signal?.aborted || this.#closed) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const finish = (woken: boolean): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#waiters.delete(onNotify);
        resolve(woken);
      };
      const onNotify = (): void => finish(!this.#closed);
      const onAbort = (): void => finish(false);
      const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(onNotify);
    });
  }

  /** Ends every wait (with `false`) and every later one. */
  close(): void {
    this.#closed = true;
    for (const waiter of [...this.#waiters]) waiter();
  }
}
