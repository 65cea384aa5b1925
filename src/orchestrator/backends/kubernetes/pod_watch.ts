/**
 * The list+watch loop of the Kubernetes backend: one list, then one long watch from the list's
 * resourceVersion, shared by every subscriber.
 *
 * - Every event and bookmark moves the remembered resourceVersion; when a watch ends (the
 *   server's `timeoutSeconds`, a dropped connection, an apiserver restart) the loop reconnects
 *   from it, with capped exponential backoff after failures.
 * - On `410 Gone` (an HTTP 410 or an `ERROR` event with code 410: the resourceVersion left the
 *   apiserver's window) it lists again and compares the list with what it knew: DELETED for
 *   pods that are gone, ADDED for new ones, MODIFIED for changed ones. No transition is lost;
 *   intermediate states may be (level-triggered consumers need only the last).
 * - A watch that sends nothing for longer than its timeout plus a margin is dropped and
 *   reopened, so a half-open connection cannot stall it.
 *
 * @module
 */
import type { Pod } from "../../../pod/kubernetes_types.ts";
import type { PodEvent } from "../../backend.ts";
import { backoffDelay, HttpStatusError } from "./retry.ts";
import { errorText, sleep } from "../../_util.ts";
export type { Pod } from "../../../pod/kubernetes_types.ts";
export type { PodEvent } from "../../backend.ts";

/** One page of the pod list: the items and the list's resourceVersion. */
export interface PodList {
  /** The pods. */
  items: Pod[];
  /** The resourceVersion to watch from. */
  resourceVersion: string;
}

/** One structured log entry of the watch. */
export type PodWatchLogEntry = Record<string, unknown> & { msg: string };

/** Options of {@linkcode PodWatch}. */
export interface PodWatchOptions {
  /** Lists every watched pod (all pages); throws on failure (the loop backs off). */
  list: (signal: AbortSignal) => Promise<PodList>;
  /**
   * Opens `GET …/pods?watch=1` from `resourceVersion` (with the label selector, bookmarks and a
   * server-side timeout) and returns the streaming response, whatever its status.
   */
  openWatch: (resourceVersion: string, signal: AbortSignal) => Promise<Response>;
  /**
   * Drops a watch that sent nothing for this long, in ms.
   * @default {660000}
   */
  idleTimeoutMs?: number;
  /**
   * Delay after the first failure, in ms; doubled after each further one.
   * @default {200}
   */
  initialDelayMs?: number;
  /**
   * Longest delay between attempts, in ms.
   * @default {5000}
   */
  maxDelayMs?: number;
  /** Receives structured log entries. @default {nothing} */
  log?: (entry: PodWatchLogEntry) => void;
}

/** What the loop did so far (for tests, logs and benchmarks). */
export interface PodWatchStats {
  /** Lists made (the first one included). */
  lists: number;
  /** Watch requests opened. */
  watches: number;
  /** Answers `410 Gone` that caused a relist. */
  expired: number;
  /** Failed lists or watches (each followed by a backoff). */
  failures: number;
}

/** Receives the events of a {@linkcode PodWatch}. */
export type PodEventListener = (event: PodEvent) => void;

interface WatchOutcome {
  expired: boolean;
  /** Whether the stream delivered data and ended without an error (no backoff needed). */
  healthy: boolean;
}

/**
 * A shared list+watch of pods. The first subscriber starts it; a later subscriber first
 * receives ADDED for every pod known so far; it stops when the last subscriber leaves.
 *
 * @example
 * ```ts ignore
 * const watch = new PodWatch({ list, openWatch });
 * const controller = new AbortController();
 * await watch.subscribe((event) => console.log(event.type, event.pod.metadata?.name), controller.signal);
 * ```
 */
export class PodWatch {
  #list: PodWatchOptions["list"];
  #openWatch: PodWatchOptions["openWatch"];
  #idleMs: number;
  #initialMs: number;
  #maxMs: number;
  #log: (entry: PodWatchLogEntry) => void;
  #listeners = new Set<PodEventListener>();
  #known = new Map<string, Pod>();
  #synced = false;
  #resourceVersion: string | undefined;
  #loop: { controller: AbortController; done: Promise<void> } | undefined;
  #stats: PodWatchStats = { lists: 0, watches: 0, expired: 0, failures: 0 };

  /**
   * Creates the watch; nothing runs until {@linkcode PodWatch.subscribe}.
   *
   * @param options How to list and watch, and the backoff.
   */
  constructor(options: PodWatchOptions) {
    const {
      list,
      openWatch,
      idleTimeoutMs = 660_000,
      initialDelayMs = 200,
      maxDelayMs = 5000,
      log = () => {},
    } = options;
    this.#list = list;
    this.#openWatch = openWatch;
    this.#idleMs = idleTimeoutMs;
    this.#initialMs = initialDelayMs;
    this.#maxMs = maxDelayMs;
    this.#log = log;
  }

  /** The resourceVersion the next watch starts from (undefined before the first list). */
  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  /** Counts of lists, watches, expiries and failures so far. */
  get stats(): PodWatchStats {
    return { ...this.#stats };
  }

  /**
   * Calls `onEvent` for every change to a watched pod until `signal` aborts. Errors of the
   * apiserver never end it; errors thrown by `onEvent` are logged and ignored.
   *
   * @param onEvent Receives each event, in order.
   * @param signal Ends the subscription.
   * @returns When `signal` aborted (and, for the last subscriber, the loop stopped).
   */
  async subscribe(onEvent: PodEventListener, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const listener: PodEventListener = (event) => {
      try {
        onEvent(event);
      } catch (error) {
        this.#log({ msg: "pod event handler failed", error: errorText(error) });
      }
    };
    if (this.#synced) {
      for (const pod of this.#known.values()) listener({ type: "ADDED", pod });
    }
    this.#listeners.add(listener);
    if (!this.#loop) {
      const controller = new AbortController();
      this.#loop = { controller, done: this.#run(controller.signal) };
    }
    const loop = this.#loop;
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
    this.#listeners.delete(listener);
    if (this.#listeners.size === 0 && this.#loop === loop) {
      this.#loop = undefined;
      loop.controller.abort();
      await loop.done;
      this.#known.clear();
      this.#synced = false;
      this.#resourceVersion = undefined;
    }
  }

  /** Stops the loop at once for every subscriber (their promises resolve when they abort). */
  async stop(): Promise<void> {
    const loop = this.#loop;
    if (!loop) return;
    loop.controller.abort();
    await loop.done;
  }

  #emit(event: PodEvent): void {
    for (const listener of [...this.#listeners]) listener(event);
  }

  async #run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (this.#resourceVersion === undefined) {
          this.#stats.lists++;
          const list = await this.#list(signal);
          if (signal.aborted) break;
          this.#applyList(list.items);
          this.#resourceVersion = list.resourceVersion;
        }
        this.#stats.watches++;
        const outcome = await this.#watchOnce(this.#resourceVersion, signal);
        if (outcome.expired) {
          this.#stats.expired++;
          this.#log({
            msg: "pod watch expired (410 Gone), relisting",
            from: this.#resourceVersion,
          });
          this.#resourceVersion = undefined;
        }
        if (outcome.healthy) {
          failures = 0;
          continue;
        }
        failures++;
      } catch (error) {
        if (signal.aborted) break;
        failures++;
        this.#stats.failures++;
        this.#log({
          msg: "pod watch failed, will retry",
          attempt: failures,
          error: errorText(error),
        });
      }
      await sleep(backoffDelay(failures, this.#initialMs, this.#maxMs), signal);
    }
  }

  /** Replaces what is known with a fresh list, emitting the differences. */
  #applyList(items: Pod[]): void {
    const listed = new Map<string, Pod>();
    for (const pod of items) {
      const name = pod.metadata?.name;
      if (name) listed.set(name, pod);
    }
    for (const [name, old] of this.#known) {
      if (!listed.has(name)) {
        this.#known.delete(name);
        this.#emit({ type: "DELETED", pod: old });
      }
    }
    for (const [name, pod] of listed) {
      const old = this.#known.get(name);
      this.#known.set(name, pod);
      if (!old) {
        this.#emit({ type: "ADDED", pod });
      } else if (old.metadata?.uid !== pod.metadata?.uid) {
        this.#emit({ type: "DELETED", pod: old });
        this.#emit({ type: "ADDED", pod });
      } else if (old.metadata?.resourceVersion !== pod.metadata?.resourceVersion) {
        this.#emit({ type: "MODIFIED", pod });
      }
    }
    this.#synced = true;
  }

  async #watchOnce(from: string, signal: AbortSignal): Promise<WatchOutcome> {
    const connection = new AbortController();
    const abort = (): void => connection.abort();
    signal.addEventListener("abort", abort);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.#log({ msg: "pod watch idle, reconnecting", idle_ms: this.#idleMs });
        connection.abort();
      }, this.#idleMs);
    };
    arm();
    try {
      const response = await this.#openWatch(from, connection.signal);
      if (response.status === 410) {
        await response.body?.cancel();
        return { expired: true, healthy: true };
      }
      if (!response.ok || !response.body) {
        const text = await response.text().catch(() => "");
        throw new HttpStatusError(
          response.status,
          `watch answered HTTP ${response.status}: ${text.slice(0, 300)}`,
        );
      }
      let buffer = "";
      let received = 0;
      const lines = response.body.pipeThrough(new TextDecoderStream());
      for await (const chunk of lines) {
        arm();
        received++;
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (line && this.#handleLine(line) === "expired") {
            await lines.cancel().catch(() => {});
            return { expired: true, healthy: true };
          }
        }
      }
      // a stream that ends before sending anything counts as a failure (backoff), so a server
      // or proxy that closes at once cannot make the loop spin
      return { expired: false, healthy: received > 0 };
    } catch (error) {
      if (signal.aborted) return { expired: false, healthy: true };
      throw error;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", abort);
      connection.abort();
    }
  }

  /** Applies one watch event; returns "expired" for an ERROR event with code 410. */
  #handleLine(line: string): "ok" | "expired" {
    let event: { type?: unknown; object?: unknown };
    try {
      event = JSON.parse(line);
    } catch {
      this.#log({ msg: "pod watch sent a line that is not JSON", line: line.slice(0, 200) });
      return "ok";
    }
    const object = event.object as Record<string, unknown> | undefined;
    switch (event.type) {
      case "BOOKMARK": {
        const rv = (object?.metadata as { resourceVersion?: unknown } | undefined)
          ?.resourceVersion;
        if (typeof rv === "string" && rv) this.#resourceVersion = rv;
        return "ok";
      }
      case "ERROR": {
        const code = Number(object?.code);
        if (code === 410) return "expired";
        throw new HttpStatusError(
          code || 500,
          `watch sent an error: ${String(object?.message ?? line).slice(0, 300)}`,
        );
      }
      case "ADDED":
      case "MODIFIED":
      case "DELETED": {
        const pod = podFromJson(object ?? {});
        const name = pod.metadata?.name;
        const rv = pod.metadata?.resourceVersion;
        if (rv) this.#resourceVersion = rv;
        if (!name) return "ok";
        if (event.type === "DELETED") this.#known.delete(name);
        else this.#known.set(name, pod);
        this.#emit({ type: event.type, pod });
        return "ok";
      }
      default:
        return "ok";
    }
  }
}

type Json = Record<string, unknown>;

function toDate(holder: Json | undefined, key: string): void {
  const value = holder?.[key];
  if (typeof value === "string") holder![key] = new Date(value);
}

function asObject(value: unknown): Json | undefined {
  return value && typeof value === "object" ? value as Json : undefined;
}

function asArray(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter((v) => v && typeof v === "object") as Json[] : [];
}

/**
 * A pod decoded from watch JSON, with its timestamps as `Date` like the generated client's
 * answers (only the known timestamp fields, so label or annotation values are never touched).
 *
 * @param json The `object` of a watch event.
 * @returns The pod.
 */
export function podFromJson(json: Record<string, unknown>): Pod {
  const metadata = asObject(json.metadata);
  toDate(metadata, "creationTimestamp");
  toDate(metadata, "deletionTimestamp");
  for (const field of asArray(metadata?.managedFields)) toDate(field, "time");
  const status = asObject(json.status);
  toDate(status, "startTime");
  for (const condition of asArray(status?.conditions)) {
    toDate(condition, "lastProbeTime");
    toDate(condition, "lastTransitionTime");
  }
  for (const key of ["initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"]) {
    for (const container of asArray(status?.[key])) {
      for (const which of ["state", "lastState"]) {
        const state = asObject(container[which]);
        toDate(asObject(state?.running), "startedAt");
        toDate(asObject(state?.terminated), "startedAt");
        toDate(asObject(state?.terminated), "finishedAt");
      }
    }
  }
  return json as Pod;
}
