/**
 * The orchestrator: claims QUEUED tasks from the store, creates their pods through a
 * {@linkcode Backend}, watches the pods and reconciles the store from what it sees.
 *
 * Level-triggered: a work item is only a task id. Each pass re-reads the task row and the pod and
 * converges them; it never acts on which event woke it, so a missed event, a restart or a relist
 * cannot lose a transition. Every state write goes through the store's compare-and-set.
 *
 * @module
 */
import type { V1Pod } from "@kubernetes/client-node";
import type { TaskStore, TaskUpdate } from "../store/task_store.ts";
import { TaskNotFoundError } from "../store/task_store.ts";
import type { TesState, TesTask } from "../tes/model.ts";
import { isTerminal } from "../tes/state.ts";
import { LABEL_TASK_ID, OUTPUTS_CONTAINER } from "../pod/layout.ts";
import { podName } from "../pod/pod_name.ts";
import { type TaskStatus, taskStatusFromPod } from "../pod/task_status_from_pod.ts";
import type { Backend, TaskPodObjects } from "./backend.ts";
import { parseTransferReport } from "./report.ts";
import { type PassResult, WorkQueue } from "./work_queue.ts";
import { errorText, sleep } from "./_util.ts";

/** One structured log entry of the orchestrator. */
export type OrchestratorLogEntry = Record<string, unknown> & { msg: string };

/** Options of {@linkcode Orchestrator}. */
export interface OrchestratorOptions {
  /** Where tasks live. */
  store: TaskStore;
  /** What runs pods. */
  backend: Backend;
  /** Builds the pod of a task (the pod builder with this deployment's config). */
  buildPod: (task: TesTask & { id: string }) => TaskPodObjects;
  /** This orchestrator's identity in claims. @default a random id */
  owner?: string;
  /** Tasks handled at once; more stay QUEUED. @default 64 */
  maxConcurrentTasks?: number;
  /**
   * Most live tasks (claimed and not finished) one task owner may have, across every
   * orchestrator of the deployment (enforced in the claim, see `ClaimOptions`); more of the
   * owner's tasks stay QUEUED, in their place, while other owners' tasks run. Tasks without an
   * owner count as one owner. Give every orchestrator replica the same value. `0`: no limit.
   * @default 0
   */
  maxRunningPerOwner?: number;
  /** How long a claim lasts unless renewed, in ms. @default 30000 */
  leaseMs?: number;
  /** Longest wait between looks for new work and cancel requests, in ms. @default 1000 */
  pollIntervalMs?: number;
  /** Reconcile passes running at once. @default 16 */
  reconcileConcurrency?: number;
  /** Receives structured log entries. @default one JSON line on stderr */
  log?: (entry: OrchestratorLogEntry) => void;
  /**
   * Whether the pod of a finished task is deleted at once; `false` keeps it for the monitor to
   * delete after its `keepFinishedPodsMs` (for debugging).
   * @default true
   */
  deleteFinishedPods?: boolean;
}

interface ActiveTask {
  /** Whether this orchestrator created the pod or saw it exist. */
  podSeen: boolean;
  /** Whether this orchestrator asked the backend to create the pod. */
  created: boolean;
}

/**
 * Lines read from the end of the `outputs` container's log to find the report: the report is
 * the transporter's last stdout line; only its own closing lines may follow it.
 */
const REPORT_TAIL_LINES = 100;
const LIVE_STATES: readonly TesState[] = ["QUEUED", "INITIALIZING", "RUNNING", "PAUSED"];

/** Claims tasks, runs them as pods and writes their outcome back to the store. */
export class Orchestrator {
  #store: TaskStore;
  #backend: Backend;
  #buildPod: (task: TesTask & { id: string }) => TaskPodObjects;
  #owner: string;
  #max: number;
  #maxPerOwner: number;
  #leaseMs: number;
  #pollMs: number;
  #log: (entry: OrchestratorLogEntry) => void;
  #deleteFinishedPods: boolean;
  #claimAhead: number;
  #active = new Map<string, ActiveTask>();
  #pods = new Map<string, V1Pod>();
  #queue: WorkQueue;
  #abort = new AbortController();
  /** Aborted to end the claim loop's wait early: a task finished, so there may be room. */
  #claimWake = new AbortController();
  #loops: Promise<unknown>[] = [];
  #started = false;

  /**
   * Builds an orchestrator; nothing runs until {@linkcode Orchestrator.start}.
   *
   * @param options Store, backend, pod builder and limits.
   */
  constructor(options: OrchestratorOptions) {
    const {
      store,
      backend,
      buildPod,
      owner = `orchestrator-${crypto.randomUUID()}`,
      maxConcurrentTasks = 64,
      maxRunningPerOwner = 0,
      leaseMs = 30_000,
      pollIntervalMs = 1_000,
      reconcileConcurrency = 16,
      log = (entry) => console.error(JSON.stringify({ time: new Date().toISOString(), ...entry })),
      deleteFinishedPods = true,
    } = options;
    this.#store = store;
    this.#backend = backend;
    this.#buildPod = buildPod;
    this.#owner = owner;
    this.#max = maxConcurrentTasks;
    this.#maxPerOwner = maxRunningPerOwner;
    this.#leaseMs = leaseMs;
    this.#pollMs = pollIntervalMs;
    this.#log = log;
    this.#deleteFinishedPods = deleteFinishedPods;
    this.#claimAhead = Math.max(1, reconcileConcurrency * 4);
    this.#queue = new WorkQueue((id) => this.#reconcile(id), {
      concurrency: reconcileConcurrency,
      onError: (id, error) =>
        this.#log({ msg: "reconcile failed", task_id: id, error: errorText(error) }),
    });
  }

  /** This orchestrator's identity in claims. */
  get owner(): string {
    return this.#owner;
  }

  /** Number of tasks this orchestrator handles now. */
  get activeTasks(): number {
    return this.#active.size;
  }

  /** Starts the watch, the claim loop, the lease renewal and the cancel poll. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    const signal = this.#abort.signal;
    // A restarted orchestrator that keeps its owner id takes its own tasks back at once instead
    // of waiting for their leases to expire: expire them, and the claim loop adopts them.
    const adopt = this.#store.renewLeases(this.#owner, -1).catch((error) =>
      this.#log({ msg: "could not expire own leases", error: errorText(error) })
    );
    // Leases are renewed by owner: renewing before the first claim took the expired ones back
    // would extend the leases of tasks this process does not hold, and nobody would ever adopt
    // them. So renewal starts once the first claim pass is over.
    const firstClaim = Promise.withResolvers<void>();
    signal.addEventListener("abort", () => firstClaim.resolve(), { once: true });
    this.#loops.push(
      adopt,
      this.#backend.watchPods((event) => {
        const name = event.pod.metadata?.name;
        if (!name) return;
        if (event.type === "DELETED") this.#pods.delete(name);
        else this.#pods.set(name, event.pod);
        const id = event.pod.metadata?.labels?.[LABEL_TASK_ID];
        if (id && this.#active.has(id)) this.#queue.add(id);
      }, signal),
      adopt.then(() =>
        this.#every(this.#pollMs, async () => {
          try {
            await this.#claim();
          } finally {
            firstClaim.resolve();
          }
        }, true)
      ),
      firstClaim.promise.then(() =>
        this.#every(Math.max(100, Math.floor(this.#leaseMs / 3)), async () => {
          // Only the tasks this process works on: a task left over from an earlier life of the
          // same owner must expire so that a claim (ours or another replica's) takes it back.
          await this.#store.renewLeases(this.#owner, this.#leaseMs, [...this.#active.keys()]);
        })
      ),
      this.#every(this.#pollMs, () => this.#pollCancels()),
    );
  }

  /**
   * Stops every loop and gives up its claims: the leases of its tasks expire at once, so that
   * the next orchestrator (another replica, or this server restarted) adopts them right away
   * instead of after a whole lease. Pods keep running (unless the backend stops them).
   */
  async stop(): Promise<void> {
    this.#abort.abort();
    this.#queue.close();
    await Promise.allSettled(this.#loops);
    await this.#queue.idle();
    if (!this.#started) return;
    await this.#store.renewLeases(this.#owner, -1).catch((error) =>
      this.#log({ msg: "could not release leases", error: errorText(error) })
    );
  }

  /** Resolves when no reconcile pass is running or waiting (for tests and benchmarks). */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  async #every(ms: number, fn: () => Promise<void>, waitForWork = false): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        await fn();
      } catch (error) {
        if (!signal.aborted) this.#log({ msg: "background step failed", error: errorText(error) });
      }
      if (signal.aborted) break;
      if (waitForWork) {
        const wake = this.#claimWake;
        const waitSignal = AbortSignal.any([signal, wake.signal]);
        await this.#store.waitForWork(ms, waitSignal).catch(() => sleep(ms, waitSignal));
        if (wake.signal.aborted) this.#claimWake = new AbortController();
      } else await sleep(ms, signal);
    }
  }

  async #claim(): Promise<void> {
    for (;;) {
      // Claim only what can get a pod soon: a task claimed far ahead of its pod sits INITIALIZING
      // without a pod (the monitor fails such tasks as lost after its grace period) and cannot be
      // taken by another replica. So at most `#claimAhead` claimed tasks wait for their pod.
      let waiting = 0;
      for (const task of this.#active.values()) if (!task.podSeen && !task.created) waiting++;
      const room = Math.min(this.#max - this.#active.size, this.#claimAhead - waiting);
      if (room <= 0 || this.#abort.signal.aborted) return;
      const claimed = await this.#store.claim(
        this.#owner,
        room,
        this.#leaseMs,
        this.#maxPerOwner > 0 ? { maxRunningPerOwner: this.#maxPerOwner } : {},
      );
      for (const { task } of claimed) {
        if (this.#active.has(task.id)) continue;
        this.#active.set(task.id, { podSeen: false, created: false });
        this.#queue.add(task.id);
      }
      if (claimed.length < room) return;
    }
  }

  async #pollCancels(): Promise<void> {
    for (const id of await this.#store.cancelingTasks(this.#owner)) {
      if (!this.#active.has(id)) this.#active.set(id, { podSeen: false, created: false });
      this.#queue.add(id);
    }
  }

  async #reconcile(id: string): Promise<PassResult> {
    const active = this.#active.get(id);
    if (!active) return { done: true };
    let task: TesTask;
    try {
      task = await this.#store.get(id, "BASIC");
    } catch (error) {
      if (error instanceof TaskNotFoundError) {
        this.#active.delete(id);
        return { done: true };
      }
      throw error;
    }
    const state = task.state ?? "UNKNOWN";
    const name = podName(id);
    let pod = this.#pods.get(name);
    if (pod) active.podSeen = true;

    if (isTerminal(state)) {
      if (this.#deleteFinishedPods) await this.#backend.deletePod(name);
      this.#release(id);
      return { done: true };
    }

    if (state === "CANCELING") {
      // The cache may not have seen a pod we created moments ago: ask once on this path only.
      pod ??= await this.#backend.getPod(name);
      if (pod && !pod.metadata?.deletionTimestamp) await this.#backend.deletePod(name);
      if (pod && (await this.#backend.getPod(name))) return { again: 500 };
      await this.#finish(id, "CANCELED", { systemLogs: ["task canceled by request"] });
      return { done: true };
    }

    if (!pod) {
      if (active.podSeen) {
        // It existed and is gone without our asking: a deleted or lost pod.
        await this.#finish(id, "SYSTEM_ERROR", statusUpdate(taskStatusFromPod(undefined)));
        return { done: true };
      }
      if (!active.created) {
        const existing = await this.#backend.getPod(name);
        if (existing) {
          this.#pods.set(name, existing);
          active.podSeen = true;
          return this.#reconcile(id);
        }
        if (state === "RUNNING" || state === "PAUSED") {
          // Adopted from a dead owner, and its pod no longer exists: it will not finish.
          await this.#finish(id, "SYSTEM_ERROR", {
            systemLogs: ["the task's pod was lost while it ran (its orchestrator stopped)"],
          });
          return { done: true };
        }
        const full = await this.#store.get(id, "FULL");
        let objects: TaskPodObjects;
        try {
          objects = this.#buildPod({ ...full, id });
        } catch (error) {
          await this.#finish(id, "SYSTEM_ERROR", {
            systemLogs: [`the task cannot run: ${errorText(error)}`],
          });
          return { done: true };
        }
        await this.#backend.createPod(objects);
        active.created = true;
        this.#log({ msg: "pod created", task_id: id, pod: name });
      }
      return { done: true };
    }

    const report = podFinished(pod)
      ? parseTransferReport(
        await this.#backend.readLog(name, OUTPUTS_CONTAINER, { tailLines: REPORT_TAIL_LINES }),
      )
      : undefined;
    const status = taskStatusFromPod(pod, report, { executors: task.executors ?? [] });
    if (isTerminal(status.state)) {
      await this.#finish(id, status.state, statusUpdate(status));
      if (this.#deleteFinishedPods) await this.#backend.deletePod(name);
      return { done: true };
    }
    if (status.state !== state && LIVE_STATES.includes(status.state)) {
      await this.#store.transition(id, status.state, {
        ...(status.startTime ? { startTime: status.startTime } : {}),
        metadata: { pod: name, ...nodeOf(pod) },
      });
    }
    return { done: true };
  }

  async #finish(id: string, to: TesState, update: TaskUpdate): Promise<void> {
    const moved = await this.#store.transition(id, to, { endTime: new Date(), ...update });
    this.#log({ msg: moved ? "task finished" : "task already final", task_id: id, state: to });
    this.#release(id);
  }

  /**
   * Forgets a finished task and wakes the claim loop: its slot (and, with a per-owner limit,
   * its owner's) is free now, not at the next poll.
   */
  #release(id: string): void {
    this.#active.delete(id);
    this.#claimWake.abort();
  }
}

function statusUpdate(status: TaskStatus): TaskUpdate {
  return {
    executorLogs: status.executorLogs,
    outputs: status.outputs,
    systemLogs: status.systemLogs,
    ...(status.startTime ? { startTime: status.startTime } : {}),
    ...(status.endTime ? { endTime: status.endTime } : {}),
  };
}

function podFinished(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed") return true;
  return (pod.status?.containerStatuses ?? []).some((s) =>
    s.name === OUTPUTS_CONTAINER && s.state?.terminated !== undefined
  );
}

function nodeOf(pod: V1Pod): Record<string, string> {
  return pod.spec?.nodeName ? { node: pod.spec.nodeName } : {};
}
