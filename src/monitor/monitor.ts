/**
 * The monitor: a periodic check of the database against the cluster, the backstop of the
 * orchestrators. Each cycle it
 *
 * 1. warns about tasks whose lease expired long ago and that no live orchestrator adopted
 *    (adoption itself is done by the orchestrators' `claim()`);
 * 2. deletes managed pods whose task does not exist or finished (after `keepFinishedPodsMs`);
 * 3. fails (SYSTEM_ERROR) claimed tasks whose pod disappeared;
 * 4. fails tasks whose pod is stuck Pending or cannot pull its image, and deletes the pod;
 * 5. reports how many live tasks and pods there are, and how many do not match.
 *
 * Every state write is the store's compare-and-set: a task that an orchestrator finished in the
 * meantime keeps the orchestrator's outcome. Every failure is logged and counted; none stops the
 * loop.
 *
 * @module
 */
import type { Backend } from "../orchestrator/backend.ts";
import type { Pod } from "../pod/kubernetes_types.ts";
import { LABEL_TASK_ID } from "../pod/layout.ts";
import { ANNOTATION_TASK_ID, podName } from "../pod/pod_name.ts";
import type { TaskLeaseInfo, TaskStore } from "../store/task_store.ts";
import type { TesState } from "../tes/model.ts";
import { isTerminal } from "../tes/state.ts";
import { formatDuration } from "./_format_duration.ts";
import { stuckPodReason } from "./stuck_pod_reason.ts";
import { errorText, sleep } from "../orchestrator/_util.ts";

/** One structured log entry of the monitor. */
export type MonitorLogEntry = Record<string, unknown> & {
  /** How much it matters. */
  level: "info" | "warn" | "error";
  /** What happened. */
  msg: string;
};

/** Options of {@linkcode Monitor}. */
export interface MonitorOptions {
  /** Where tasks live. */
  store: TaskStore;
  /** What runs pods. */
  backend: Backend;
  /** Time between the end of a cycle and the start of the next, in ms. @default 15000 */
  intervalMs?: number;
  /**
   * How long a pod may stay Pending with no container started (unschedulable or
   * ContainerCreating) before its task fails, in ms.
   * @default 600000 (10 minutes)
   */
  pendingTimeoutMs?: number;
  /**
   * How long a container may wait on an image pull error that may clear up (`ErrImagePull`,
   * `ImagePullBackOff`) before its task fails, in ms; permanent ones (`InvalidImageName`) fail
   * at once.
   * @default 300000 (5 minutes)
   */
  imagePullTimeoutMs?: number;
  /**
   * How long the pod of a finished task is kept (for debugging; its logs are in the database
   * already), from the task's last change, in ms. Only matters when orchestrators run with
   * `deleteFinishedPods: false`.
   * @default 0
   */
  keepFinishedPodsMs?: number;
  /**
   * How long after its last change a claimed task may be without a pod before it fails (a task
   * claimed a moment ago may not have its pod yet); also how old a pod whose task does not exist
   * must be before it is deleted, in ms.
   * @default 120000 (2 minutes)
   */
  orphanGraceMs?: number;
  /**
   * How long past its expiry a lease may stay unadopted before a warning, in ms (a few times the
   * orchestrators' lease).
   * @default 90000 (3 × the orchestrator's default lease of 30 s)
   */
  staleLeaseMs?: number;
  /** Receives structured log entries. @default one JSON line on stderr */
  log?: (entry: MonitorLogEntry) => void;
  /** The clock used against the pods' timestamps and the tasks' last change. @default the system clock */
  clock?: () => Date;
}

/** What one monitor cycle found and did. */
export interface MonitorReport {
  /** Live tasks (INITIALIZING, RUNNING, PAUSED, CANCELING) in the database. */
  liveTasks: number;
  /** Managed task pods in the cluster. */
  pods: number;
  /** Pods whose task does not exist or is finished (a mismatch). */
  podsWithoutLiveTask: number;
  /** Live tasks without a pod (a mismatch; a task claimed a moment ago counts too). */
  liveTasksWithoutPod: number;
  /** Live tasks whose lease expired more than `staleLeaseMs` ago. */
  staleLeases: number;
  /** Pods deleted (of finished or unknown tasks, and stuck pods). */
  podsDeleted: number;
  /** Tasks set to SYSTEM_ERROR because their pod disappeared. */
  tasksWithLostPod: number;
  /** Tasks set to SYSTEM_ERROR because their pod was stuck (Pending, image pull). */
  tasksWithStuckPod: number;
  /** Tasks that an orchestrator finished while the monitor was about to fail them. */
  tasksFinishedConcurrently: number;
  /** Steps or actions that failed (each one logged). */
  errors: number;
}

/** Live states in which a task's pod should exist and be making progress. */
const RUNNING_STATES: readonly TesState[] = ["INITIALIZING", "RUNNING", "PAUSED"];
/** How many live tasks the monitor reads per page. */
const PAGE_SIZE = 1000;
/** How many task ids a log entry lists at most. */
const LOGGED_IDS = 20;

function emptyReport(): MonitorReport {
  return {
    liveTasks: 0,
    pods: 0,
    podsWithoutLiveTask: 0,
    liveTasksWithoutPod: 0,
    staleLeases: 0,
    podsDeleted: 0,
    tasksWithLostPod: 0,
    tasksWithStuckPod: 0,
    tasksFinishedConcurrently: 0,
    errors: 0,
  };
}

function taskIdOf(pod: Pod): string | undefined {
  return pod.metadata?.annotations?.[ANNOTATION_TASK_ID] ?? pod.metadata?.labels?.[LABEL_TASK_ID];
}

function toDate(value: Date | string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * Watches over the database and the cluster: stale leases, pods without a task, tasks without a
 * pod, stuck pods. Run one cycle with {@linkcode Monitor.runOnce}, or every `intervalMs` with
 * {@linkcode Monitor.start}.
 *
 * @example
 * ```ts ignore
 * import { Monitor } from "./monitor.ts";
 * const monitor = new Monitor({ store, backend, intervalMs: 5_000 });
 * const report = await monitor.runOnce(); // { liveTasks, pods, podsDeleted, … }
 * monitor.start();
 * await monitor.stop();
 * ```
 */
export class Monitor {
  #store: TaskStore;
  #backend: Backend;
  #intervalMs: number;
  #pendingTimeoutMs: number;
  #imagePullTimeoutMs: number;
  #keepFinishedPodsMs: number;
  #orphanGraceMs: number;
  #staleLeaseMs: number;
  #log: (entry: MonitorLogEntry) => void;
  #clock: () => Date;
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;

  /**
   * Builds a monitor; nothing runs until {@linkcode Monitor.runOnce} or
   * {@linkcode Monitor.start}.
   *
   * @param options Store, backend, timeouts and clock.
   * @throws {RangeError} When a duration is negative or not a number.
   */
  constructor(options: MonitorOptions) {
    const {
      store,
      backend,
      intervalMs = 15_000,
      pendingTimeoutMs = 600_000,
      imagePullTimeoutMs = 300_000,
      keepFinishedPodsMs = 0,
      orphanGraceMs = 120_000,
      staleLeaseMs = 90_000,
      log = (entry) => console.error(JSON.stringify({ time: new Date().toISOString(), ...entry })),
      clock = () => new Date(),
    } = options;
    const durations = {
      intervalMs,
      pendingTimeoutMs,
      imagePullTimeoutMs,
      keepFinishedPodsMs,
      orphanGraceMs,
      staleLeaseMs,
    };
    for (const [name, value] of Object.entries(durations)) {
      if (!Number.isFinite(value) || value < 0) {
        throw new RangeError(`${name} must be a non-negative number of milliseconds: ${value}`);
      }
    }
    this.#store = store;
    this.#backend = backend;
    this.#intervalMs = intervalMs;
    this.#pendingTimeoutMs = pendingTimeoutMs;
    this.#imagePullTimeoutMs = imagePullTimeoutMs;
    this.#keepFinishedPodsMs = keepFinishedPodsMs;
    this.#orphanGraceMs = orphanGraceMs;
    this.#staleLeaseMs = staleLeaseMs;
    this.#log = log;
    this.#clock = clock;
  }

  /**
   * Runs cycles every `intervalMs` (the first at once) until {@linkcode Monitor.stop}. A cycle
   * that fails is logged; the loop goes on.
   */
  start(): void {
    if (this.#loop) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.#loop = (async () => {
      while (!abort.signal.aborted) {
        try {
          await this.runOnce();
        } catch (error) {
          this.#log({ level: "error", msg: "monitor cycle failed", error: errorText(error) });
        }
        await sleep(this.#intervalMs, abort.signal);
      }
    })();
  }

  /**
   * Stops the loop and waits for the cycle in progress to end.
   *
   * @returns Resolves once no cycle runs.
   */
  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#loop;
    this.#loop = undefined;
    this.#abort = undefined;
  }

  /**
   * Runs one cycle: stale leases, pods without a live task, live tasks without a pod, stuck
   * pods, consistency counts. Pods are listed before tasks, so that a pod seen here always
   * belongs to a task that exists already.
   *
   * @returns What the cycle found and did; it never rejects (failures are in `errors`).
   */
  async runOnce(): Promise<MonitorReport> {
    const report = emptyReport();
    const now = this.#clock();
    await this.#step(report, "stale leases", () => this.#checkLeases(report));
    const pods = await this.#step(report, "list pods", () => this.#backend.listPods());
    const live = await this.#step(report, "list live tasks", () => this.#allLiveTasks());
    if (pods === undefined || live === undefined) return this.#finish(report);

    const podsByTask = new Map<string, Pod>();
    for (const pod of pods) {
      const id = taskIdOf(pod);
      if (id !== undefined && !podsByTask.has(id)) podsByTask.set(id, pod);
    }
    const liveById = new Map(live.map((task) => [task.id, task]));
    report.liveTasks = live.length;
    report.pods = podsByTask.size;

    await this.#step(
      report,
      "pods without a live task",
      () => this.#collectGarbage(report, podsByTask, liveById, now),
    );
    await this.#step(
      report,
      "tasks without a pod",
      () => this.#failOrphans(report, podsByTask, live, now),
    );
    await this.#step(
      report,
      "stuck pods",
      () => this.#failStuck(report, podsByTask, liveById, now),
    );
    return this.#finish(report);
  }

  #finish(report: MonitorReport): MonitorReport {
    const acted = report.podsDeleted + report.tasksWithLostPod + report.tasksWithStuckPod;
    if (acted > 0 || report.errors > 0) {
      this.#log({ level: report.errors > 0 ? "warn" : "info", msg: "monitor cycle", ...report });
    }
    return report;
  }

  async #step<T>(
    report: MonitorReport,
    step: string,
    fn: () => Promise<T>,
  ): Promise<T | undefined> {
    try {
      return await fn();
    } catch (error) {
      this.#fail(report, { msg: "monitor step failed", step, error: errorText(error) });
      return undefined;
    }
  }

  #fail(report: MonitorReport, entry: Omit<MonitorLogEntry, "level">): void {
    report.errors += 1;
    this.#log({ level: "error", ...entry } as MonitorLogEntry);
  }

  async #allLiveTasks(): Promise<TaskLeaseInfo[]> {
    const all: TaskLeaseInfo[] = [];
    let afterId: string | undefined;
    for (;;) {
      const page = await this.#store.liveTasks({
        limit: PAGE_SIZE,
        ...(afterId === undefined ? {} : { afterId }),
      });
      all.push(...page);
      if (page.length < PAGE_SIZE) return all;
      afterId = page[page.length - 1]!.id;
    }
  }

  async #checkLeases(report: MonitorReport): Promise<void> {
    const stale = await this.#store.staleLeases(this.#staleLeaseMs);
    report.staleLeases = stale.length;
    if (stale.length === 0) return;
    this.#log({
      level: "warn",
      msg: `${stale.length} live task(s) hold a lease that expired over ${
        formatDuration(this.#staleLeaseMs)
      } ago and no orchestrator adopted them: is any orchestrator running?`,
      count: stale.length,
      task_ids: stale.slice(0, LOGGED_IDS).map((task) => task.id),
      owners: [...new Set(stale.map((task) => task.claimOwner ?? ""))],
    });
  }

  async #collectGarbage(
    report: MonitorReport,
    podsByTask: Map<string, Pod>,
    liveById: Map<string, TaskLeaseInfo>,
    now: Date,
  ): Promise<void> {
    const others = [...podsByTask.keys()].filter((id) => !liveById.has(id));
    if (others.length === 0) return;
    const infos = new Map((await this.#store.leaseInfo(others)).map((info) => [info.id, info]));
    for (const id of others) {
      const pod = podsByTask.get(id)!;
      const info = infos.get(id);
      if (info !== undefined && !isTerminal(info.state)) continue;
      report.podsWithoutLiveTask += 1;
      if (pod.metadata?.deletionTimestamp) continue;
      let reason: string;
      if (info === undefined) {
        const created = toDate(pod.metadata?.creationTimestamp);
        if (created && now.getTime() - created.getTime() < this.#orphanGraceMs) continue;
        reason = "its task does not exist";
      } else {
        if (now.getTime() - info.updatedAt.getTime() < this.#keepFinishedPodsMs) continue;
        reason = `its task is ${info.state}`;
      }
      await this.#deletePod(report, pod, id, reason);
    }
  }

  async #failOrphans(
    report: MonitorReport,
    podsByTask: Map<string, Pod>,
    live: TaskLeaseInfo[],
    now: Date,
  ): Promise<void> {
    for (const task of live) {
      if (podsByTask.has(task.id)) continue;
      report.liveTasksWithoutPod += 1;
      if (!RUNNING_STATES.includes(task.state)) continue;
      const age = now.getTime() - task.updatedAt.getTime();
      if (age < this.#orphanGraceMs) continue;
      // An INITIALIZING task whose owner died may never have had its pod: the orchestrator that
      // adopts it creates the pod, so leave it to them (stale leases are warned about above).
      const leaseExpired = task.leaseExpiresAt !== undefined &&
        task.leaseExpiresAt.getTime() < now.getTime();
      if (task.state === "INITIALIZING" && leaseExpired) continue;
      const name = podName(task.id);
      try {
        // The listing may be a moment old: ask for this pod before failing its task.
        if (await this.#backend.getPod(name)) continue;
        const moved = await this.#store.transition(task.id, "SYSTEM_ERROR", {
          endTime: now,
          systemLogs: [
            `pod ${name} disappeared: the task was ${task.state} and its pod no longer exists ` +
            `(found by the monitor ${formatDuration(age)} after the task's last change)`,
          ],
        });
        if (moved) {
          report.tasksWithLostPod += 1;
          this.#log({
            level: "warn",
            msg: "task failed: its pod disappeared",
            task_id: task.id,
            pod: name,
            state: task.state,
          });
        } else {
          report.tasksFinishedConcurrently += 1;
        }
      } catch (error) {
        this.#fail(report, {
          msg: "could not fail a task without a pod",
          task_id: task.id,
          pod: name,
          error: errorText(error),
        });
      }
    }
  }

  async #failStuck(
    report: MonitorReport,
    podsByTask: Map<string, Pod>,
    liveById: Map<string, TaskLeaseInfo>,
    now: Date,
  ): Promise<void> {
    for (const [id, pod] of podsByTask) {
      const task = liveById.get(id);
      if (!task || !RUNNING_STATES.includes(task.state)) continue;
      const reason = stuckPodReason(pod, now, {
        pendingTimeoutMs: this.#pendingTimeoutMs,
        imagePullTimeoutMs: this.#imagePullTimeoutMs,
      });
      if (reason === undefined) continue;
      let moved: boolean;
      try {
        moved = await this.#store.transition(id, "SYSTEM_ERROR", {
          endTime: now,
          systemLogs: [reason],
        });
      } catch (error) {
        this.#fail(report, {
          msg: "could not fail a task with a stuck pod",
          task_id: id,
          reason,
          error: errorText(error),
        });
        continue;
      }
      if (!moved) {
        // Its orchestrator finished it meanwhile; the pod is theirs (or the next cycle's) to
        // delete.
        report.tasksFinishedConcurrently += 1;
        continue;
      }
      report.tasksWithStuckPod += 1;
      this.#log({ level: "warn", msg: "task failed: its pod is stuck", task_id: id, reason });
      await this.#deletePod(report, pod, id, "it was stuck");
    }
  }

  async #deletePod(report: MonitorReport, pod: Pod, taskId: string, why: string): Promise<void> {
    const name = pod.metadata?.name ?? podName(taskId);
    try {
      await this.#backend.deletePod(name);
      report.podsDeleted += 1;
      this.#log({ level: "info", msg: `deleted pod: ${why}`, pod: name, task_id: taskId });
    } catch (error) {
      this.#fail(report, {
        msg: "could not delete pod",
        pod: name,
        task_id: taskId,
        error: errorText(error),
      });
    }
  }
}
