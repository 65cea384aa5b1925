/**
 * Reads a task pod's status (and the transporter's report) back as a TES state with logs.
 * Pure: no I/O.
 *
 * @module
 */
import type { V1ContainerStatus } from "@kubernetes/client-node";
import type { Pod } from "./kubernetes_types.ts";
import type { TesExecutorLog, TesOutputFileLog, TesState } from "../tes/model.ts";
import {
  executorContainerName,
  INPUTS_CONTAINER,
  OUTPUTS_CONTAINER,
  type TransferReport,
} from "./layout.ts";

/** Container waiting reasons that mean an image cannot be pulled. */
export const IMAGE_PULL_REASONS: readonly string[] = Object.freeze([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
]);
/** Image pull reasons that may clear up by themselves (a registry outage, a late secret). */
export const TRANSIENT_PULL_REASONS: readonly string[] = Object.freeze([
  "ErrImagePull",
  "ImagePullBackOff",
]);
/** Container waiting reasons that mean a container cannot be created or started. */
export const CONTAINER_START_REASONS: readonly string[] = Object.freeze([
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

/** A container that cannot start: an image pull error or a container creation error. */
export interface StartFailure {
  /** Container name (`inputs`, `executor-0`, `outputs`). */
  container: string;
  /** Kubernetes waiting reason (`ImagePullBackOff`, `CreateContainerConfigError`…). */
  reason: string;
  /** Kubernetes waiting message. */
  message: string;
  /** The image of the container, when known. */
  image?: string;
  /**
   * Whether it may clear up by itself (`ErrImagePull`, `ImagePullBackOff`,
   * `CreateContainerConfigError` for a Secret created late). A caller that wants to tolerate
   * that keeps the task in its current state until its own deadline passes, then records the
   * SYSTEM_ERROR; `InvalidImageName` and `ErrImageNeverPull` never clear up.
   */
  transient: boolean;
}

/** What a task pod says about its task. */
export interface TaskStatus {
  /** The TES state. */
  state: TesState;
  /** One log per executor that ran, each with its exit code (skipped executors omitted). */
  executorLogs: TesExecutorLog[];
  /** Why the task failed or is stuck, in words a person understands. */
  systemLogs: string[];
  /** Every uploaded output file. */
  outputs: TesOutputFileLog[];
  /** When the pod started. */
  startTime?: Date;
  /** When the task ended: the last container end of a finished pod (unset when unknown). */
  endTime?: Date;
  /** Set when `state` is SYSTEM_ERROR because a container cannot start. */
  startFailure?: StartFailure;
}

/** Options of {@linkcode taskStatusFromPod}. */
export interface TaskStatusOptions {
  /**
   * The task's executors (only `ignore_error` is read): an executor that fails with
   * `ignore_error` does not fail the task. A `TesTask["executors"]` fits.
   * @default [] (every executor counts)
   */
  executors?: readonly { ignore_error?: boolean }[];
  /**
   * Whether the task is being canceled: a missing or finished pod then means CANCELED (and a
   * running one CANCELING), never an error.
   * @default false
   */
  canceling?: boolean;
}

type DateLike = Date | string | undefined;

function toDate(value: DateLike): Date | undefined {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function statuses(pod: Pod): Map<string, V1ContainerStatus> {
  const all = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ];
  return new Map(all.map((status) => [status.name, status]));
}

function executorIndex(container: string): number | undefined {
  const match = /^executor-(\d+)$/.exec(container);
  return match ? Number(match[1]) : undefined;
}

function latestFinish(pod: Pod): Date | undefined {
  let latest: Date | undefined;
  for (const status of statuses(pod).values()) {
    const finished = toDate(status.state?.terminated?.finishedAt);
    if (finished && (!latest || finished > latest)) latest = finished;
  }
  return latest;
}

function describe(reason: string | undefined, message: string | undefined): string {
  const text = [reason, message?.trim()].filter((part) => part).join(": ");
  return text || "no reason given";
}

const DISRUPTION_REASONS = new Set([
  "PreemptionByScheduler",
  "PreemptionByKubeScheduler",
  "DeletionByTaintManager",
  "EvictionByEvictionAPI",
  "TerminationByKubelet",
  "DeletionByPodGC",
]);

/**
 * Reads the state of a task from its pod.
 *
 * Decision table, first match wins:
 * - no pod: SYSTEM_ERROR "pod was deleted" (CANCELED when canceling);
 * - canceling: CANCELED once the pod is finished or being deleted, else CANCELING;
 * - a container OOMKilled: EXECUTOR_ERROR for an executor (its log gets exit code 137),
 *   SYSTEM_ERROR for a transporter;
 * - pod Failed with `Evicted` for exceeding its own ephemeral storage: EXECUTOR_ERROR; other
 *   evictions, node shutdown, preemption (also a `DisruptionTarget` condition on a pod being
 *   deleted): PREEMPTED; `DeadlineExceeded`: SYSTEM_ERROR;
 * - a container waiting on an image pull or creation error: SYSTEM_ERROR with `startFailure`;
 * - `inputs` ended non-zero: SYSTEM_ERROR "input download failed: …";
 * - an executor container ended non-zero (the wrapper could not run, e.g. no `/bin/sh`):
 *   EXECUTOR_ERROR;
 * - `outputs` ended: from the report. An executor with a non-zero exit code and no
 *   `ignore_error` gives EXECUTOR_ERROR (the root cause, even when the upload failed too: the
 *   upload error is kept in the system logs); else an upload error (`report.error`, a non-zero
 *   exit, or no report) gives SYSTEM_ERROR "output upload failed: …"; else an executor
 *   without an exit code (stopped before it ended) gives SYSTEM_ERROR; else COMPLETE. Outputs
 *   that were absent after the executors (`report.warnings`) are not errors: their lines are
 *   appended to the system logs, whatever the end state;
 * - `outputs` or an executor running: RUNNING; `inputs` running: INITIALIZING;
 * - phase Unknown (the node stopped reporting): RUNNING, with a system log, because the pod
 *   may well be running; the monitor's timeouts decide when to give up;
 * - other Failed pods: SYSTEM_ERROR with the pod's reason;
 * - Pending and not scheduled: QUEUED (with the scheduler's message when unschedulable);
 *   scheduled: INITIALIZING.
 *
 * Executor logs come from the report only (the wrapper always exits 0, so only the report
 * knows exit codes); executors it marks skipped are omitted.
 *
 * @param pod The pod, or undefined when it does not exist.
 * @param report The report line of the `outputs` container, when it printed one.
 * @param options The task's executors and whether it is being canceled.
 * @returns The task's state, logs and times.
 * @example
 * ```ts
 * import { taskStatusFromPod } from "./task_status_from_pod.ts";
 * taskStatusFromPod(undefined).state; // "SYSTEM_ERROR"
 * taskStatusFromPod(undefined, undefined, { canceling: true }).state; // "CANCELED"
 * ```
 */
export function taskStatusFromPod(
  pod: Pod | undefined,
  report?: TransferReport,
  options: TaskStatusOptions = {},
): TaskStatus {
  const { executors = [], canceling = false } = options;
  const executorLogs: TesExecutorLog[] = [];
  const outputs: TesOutputFileLog[] = [];
  const systemLogs: string[] = [];
  if (report) {
    for (const entry of report.executors) {
      if (entry.exit_code === undefined) continue;
      executorLogs.push({
        ...(entry.start_time !== undefined ? { start_time: entry.start_time } : {}),
        ...(entry.end_time !== undefined ? { end_time: entry.end_time } : {}),
        stdout: entry.stdout,
        stderr: entry.stderr,
        exit_code: entry.exit_code,
      });
    }
    outputs.push(...report.outputs.map((o) => ({ ...o })));
  }
  const startTime = toDate(pod?.status?.startTime);
  // Outputs absent after the executors (see TransferReport.warnings) are told in the system
  // logs of every end state, after the reason of the end; they never decide the state.
  const warnings = Array.isArray(report?.warnings)
    ? report.warnings.filter((line): line is string => typeof line === "string")
    : [];
  const result = (state: TesState, ended: boolean, extra: Partial<TaskStatus> = {}): TaskStatus => {
    if (ended) systemLogs.push(...warnings);
    const endTime = ended && pod ? latestFinish(pod) : undefined;
    return {
      state,
      executorLogs,
      systemLogs,
      outputs,
      ...(startTime ? { startTime } : {}),
      ...(endTime ? { endTime } : {}),
      ...extra,
    };
  };

  if (!pod) {
    if (canceling) return result("CANCELED", true);
    systemLogs.push("pod was deleted before the task finished");
    return result("SYSTEM_ERROR", true);
  }
  const phase = pod.status?.phase;
  const finished = phase === "Succeeded" || phase === "Failed";
  if (canceling) {
    if (finished || pod.metadata?.deletionTimestamp) return result("CANCELED", true);
    return result("CANCELING", false);
  }

  const byName = statuses(pod);
  const containerNames = [INPUTS_CONTAINER, ...executors.map((_, i) => executorContainerName(i))];
  for (const status of byName.values()) {
    if (!containerNames.includes(status.name)) containerNames.push(status.name);
  }

  // Out of memory, on any container (a restarted container keeps it in lastState).
  for (const status of byName.values()) {
    const terminated = status.state?.terminated ?? status.lastState?.terminated;
    if (terminated?.reason !== "OOMKilled") continue;
    const index = executorIndex(status.name);
    if (index !== undefined) {
      systemLogs.push(`executor ${index} ran out of memory (OOMKilled)`);
      if (!executorLogs.some((log) => log.exit_code === 137)) {
        const started = toDate(terminated.startedAt);
        const ended = toDate(terminated.finishedAt);
        executorLogs.push({
          ...(started ? { start_time: started.toISOString() } : {}),
          ...(ended ? { end_time: ended.toISOString() } : {}),
          exit_code: 137,
        });
      }
      return result("EXECUTOR_ERROR", true);
    }
    const what = status.name === INPUTS_CONTAINER ? "input download" : "output upload";
    systemLogs.push(`${what} ran out of memory (container ${status.name} OOMKilled)`);
    return result("SYSTEM_ERROR", true);
  }

  // Pod-level failures: eviction, preemption, deadline, node shutdown.
  const podReason = pod.status?.reason;
  const podMessage = pod.status?.message;
  if (phase === "Failed" && podReason === "Evicted") {
    if (/ephemeral|emptydir|exceeds/i.test(podMessage ?? "")) {
      systemLogs.push(`task used more disk than it asked for: ${describe(podReason, podMessage)}`);
      return result("EXECUTOR_ERROR", true);
    }
    systemLogs.push(`pod was evicted from its node: ${describe(podReason, podMessage)}`);
    return result("PREEMPTED", true);
  }
  if (phase === "Failed" && podReason === "DeadlineExceeded") {
    systemLogs.push(`task ran longer than its time limit: ${describe(podReason, podMessage)}`);
    return result("SYSTEM_ERROR", true);
  }
  if (
    phase === "Failed" &&
    (podReason === "Preempting" || podReason === "Shutdown" || podReason === "Terminated" ||
      podReason === "NodeShutdown")
  ) {
    systemLogs.push(`pod was preempted: ${describe(podReason, podMessage)}`);
    return result("PREEMPTED", true);
  }
  const disruption = pod.status?.conditions?.find((c) =>
    c.type === "DisruptionTarget" && c.status === "True"
  );
  if (
    disruption && (finished || pod.metadata?.deletionTimestamp) &&
    DISRUPTION_REASONS.has(disruption.reason ?? "")
  ) {
    systemLogs.push(`pod was preempted: ${describe(disruption.reason, disruption.message)}`);
    return result("PREEMPTED", true);
  }

  // Containers that cannot start.
  for (const name of containerNames) {
    const status = byName.get(name);
    const waiting = status?.state?.waiting;
    if (!status || !waiting?.reason) continue;
    const reason = waiting.reason;
    const message = waiting.message?.trim() ?? "";
    if (IMAGE_PULL_REASONS.includes(reason)) {
      systemLogs.push(
        `image "${status.image}" of container ${name} could not be pulled: ${
          describe(reason, message)
        }`,
      );
      return result("SYSTEM_ERROR", true, {
        startFailure: {
          container: name,
          reason,
          message,
          ...(status.image ? { image: status.image } : {}),
          transient: TRANSIENT_PULL_REASONS.includes(reason),
        },
      });
    }
    if (CONTAINER_START_REASONS.includes(reason)) {
      systemLogs.push(`container ${name} could not be started: ${describe(reason, message)}`);
      return result("SYSTEM_ERROR", true, {
        startFailure: {
          container: name,
          reason,
          message,
          ...(status.image ? { image: status.image } : {}),
          transient: reason === "CreateContainerConfigError",
        },
      });
    }
  }

  const inputs = byName.get(INPUTS_CONTAINER)?.state;
  if (inputs?.terminated && inputs.terminated.exitCode !== 0) {
    const t = inputs.terminated;
    systemLogs.push(
      `input download failed: ${
        t.message?.trim() || describe(t.reason, `exit code ${t.exitCode}`)
      }`,
    );
    return result("SYSTEM_ERROR", true);
  }

  for (const [name, status] of byName) {
    const index = executorIndex(name);
    const t = status.state?.terminated;
    if (index === undefined || !t || t.exitCode === 0) continue;
    systemLogs.push(
      `executor ${index} could not run: ${
        describe(t.reason, t.message ?? `exit code ${t.exitCode}`)
      }`,
    );
    const started = toDate(t.startedAt);
    const ended = toDate(t.finishedAt);
    executorLogs.push({
      ...(started ? { start_time: started.toISOString() } : {}),
      ...(ended ? { end_time: ended.toISOString() } : {}),
      exit_code: t.exitCode,
    });
    return result("EXECUTOR_ERROR", true);
  }

  const outputsState = byName.get(OUTPUTS_CONTAINER)?.state;
  if (outputsState?.terminated) {
    const t = outputsState.terminated;
    let uploadError: string | undefined;
    if (report?.error) uploadError = report.error;
    else if (t.exitCode !== 0) {
      uploadError = t.message?.trim() || describe(t.reason, `exit code ${t.exitCode}`);
    } else if (!report) uploadError = "the outputs container ended without a report";
    let failed = false;
    report?.executors.forEach((entry, i) => {
      const code = entry.exit_code;
      if (code === undefined || code === 0) return;
      const ignored = executors[i]?.ignore_error === true;
      const killed = code > 128 ? ` (killed by signal ${code - 128})` : "";
      systemLogs.push(
        `executor ${i} exited with code ${code}${killed}${
          ignored ? " (ignored: ignore_error)" : ""
        }`,
      );
      if (!ignored) failed = true;
    });
    if (uploadError !== undefined) systemLogs.push(`output upload failed: ${uploadError}`);
    if (failed) return result("EXECUTOR_ERROR", true);
    if (uploadError !== undefined) return result("SYSTEM_ERROR", true);
    // The wrapper skips later executors only after a failure that counts (handled above), so
    // an executor without an exit code here was stopped before it ended. Missing outputs no
    // longer fail the task, so this is what keeps such a run from ending COMPLETE.
    const unfinished = report?.executors.findIndex((entry) => entry.exit_code === undefined);
    if (unfinished !== undefined && unfinished >= 0) {
      systemLogs.push(
        `executor ${unfinished} did not finish: no exit code was recorded (it was stopped)`,
      );
      return result("SYSTEM_ERROR", true);
    }
    return result("COMPLETE", true);
  }
  if (outputsState?.running) return result("RUNNING", false);
  for (const [name, status] of byName) {
    if (executorIndex(name) !== undefined && status.state?.running) {
      return result("RUNNING", false);
    }
  }
  if (inputs?.running) return result("INITIALIZING", false);

  if (phase === "Unknown") {
    systemLogs.push(
      `the node of the pod stopped reporting (phase Unknown): ${describe(podReason, podMessage)}`,
    );
    return result("RUNNING", false);
  }
  if (phase === "Failed") {
    systemLogs.push(`pod failed: ${describe(podReason, podMessage)}`);
    return result("SYSTEM_ERROR", true);
  }
  if (phase === "Succeeded") {
    systemLogs.push("pod succeeded but the outputs container reported nothing");
    return result("SYSTEM_ERROR", true);
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (!pod.spec?.nodeName && scheduled?.status !== "True") {
    if (scheduled?.reason === "Unschedulable") {
      systemLogs.push(
        `pod cannot be scheduled yet: ${describe(scheduled.reason, scheduled.message)}`,
      );
    }
    return result("QUEUED", false);
  }
  const anyExecutorDone = [...byName].some(([name, status]) =>
    executorIndex(name) !== undefined && status.state?.terminated
  );
  return result(anyExecutorDone ? "RUNNING" : "INITIALIZING", false);
}
