/**
 * Decides whether a task pod is stuck: Pending for too long (not scheduled, or scheduled with
 * no container ever started), or a container that cannot start (an image pull or container
 * creation error) for too long. Pure: no I/O; times come from the pod and the caller's clock.
 *
 * @module
 */
import type { V1ContainerStatus } from "@kubernetes/client-node";
import type { Pod } from "../pod/kubernetes_types.ts";
import { taskStatusFromPod } from "../pod/task_status_from_pod.ts";
import { formatDuration } from "./_format_duration.ts";

/** Options of {@linkcode stuckPodReason}. */
export interface StuckPodOptions {
  /**
   * How long a pod may stay Pending without any container starting (unschedulable, or
   * ContainerCreating), in ms.
   * @default 600000 (10 minutes)
   */
  pendingTimeoutMs?: number;
  /**
   * How long a container may wait on an error that may clear up by itself (`ErrImagePull`,
   * `ImagePullBackOff`, `CreateContainerConfigError`), in ms. Errors that never clear up
   * (`InvalidImageName`, `ErrImageNeverPull`, `CreateContainerError`…) count at once.
   * @default 300000 (5 minutes)
   */
  imagePullTimeoutMs?: number;
}

type DateLike = Date | string | undefined;

function toDate(value: DateLike): Date | undefined {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function allStatuses(pod: Pod): V1ContainerStatus[] {
  return [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
}

/**
 * The last moment the pod made progress: its creation, its scheduling, or the end of one of its
 * containers. A container that waits now has waited at most since then (Kubernetes records no
 * start time for a waiting state).
 */
function lastProgress(pod: Pod): Date | undefined {
  const times: (Date | undefined)[] = [toDate(pod.metadata?.creationTimestamp)];
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "True") times.push(toDate(scheduled.lastTransitionTime));
  for (const status of allStatuses(pod)) {
    times.push(toDate(status.state?.terminated?.finishedAt));
    times.push(toDate(status.lastState?.terminated?.finishedAt));
  }
  let latest: Date | undefined;
  for (const time of times) if (time && (!latest || time > latest)) latest = time;
  return latest;
}

function anyContainerStarted(pod: Pod): boolean {
  return allStatuses(pod).some((s) =>
    s.state?.running !== undefined || s.state?.terminated !== undefined ||
    s.lastState?.running !== undefined || s.lastState?.terminated !== undefined
  );
}

function waitingText(pod: Pod): string {
  for (const status of allStatuses(pod)) {
    const waiting = status.state?.waiting;
    if (waiting?.reason) {
      const message = waiting.message?.trim();
      return `container ${status.name} is waiting: ${waiting.reason}${
        message ? `: ${message}` : ""
      }`;
    }
  }
  return pod.spec?.nodeName
    ? `no container started on node ${pod.spec.nodeName}`
    : "no container started";
}

/**
 * Tells why a task pod is stuck, or nothing when it is not (yet).
 *
 * - A container waiting on a start failure (see `taskStatusFromPod`'s `startFailure`): at once
 *   when the failure is permanent, after `imagePullTimeoutMs` since the pod's last progress
 *   (its scheduling or the end of the previous container) when it is transient.
 * - A pod not scheduled to a node after `pendingTimeoutMs` since its creation, with the
 *   scheduler's message.
 * - A scheduled pod where no container ever started after `pendingTimeoutMs` since it was
 *   scheduled (ContainerCreating: volumes that cannot mount, a sandbox that cannot start…).
 *
 * A pod being deleted, finished, or with a running or finished container (Pending is also the
 * phase of a pod whose init containers, the executors, run) is never stuck by this rule.
 *
 * @param pod The pod as the backend reports it.
 * @param now The current time.
 * @param options The timeouts.
 * @returns The reason, in words for the task's system logs, or undefined.
 * @example
 * ```ts
 * import { stuckPodReason } from "./stuck_pod_reason.ts";
 * const created = new Date("2024-01-01T00:00:00Z");
 * const pod = {
 *   metadata: { name: "task-a", creationTimestamp: created },
 *   status: {
 *     phase: "Pending",
 *     conditions: [{
 *       type: "PodScheduled",
 *       status: "False",
 *       reason: "Unschedulable",
 *       message: "0/3 nodes are available: 3 Insufficient cpu.",
 *     }],
 *   },
 * };
 * stuckPodReason(pod, new Date("2024-01-01T00:11:00Z"));
 * // "pod stuck Pending for 11m: 0/3 nodes are available: 3 Insufficient cpu."
 * ```
 */
export function stuckPodReason(
  pod: Pod,
  now: Date,
  options: StuckPodOptions = {},
): string | undefined {
  const { pendingTimeoutMs = 600_000, imagePullTimeoutMs = 300_000 } = options;
  if (pod.metadata?.deletionTimestamp) return undefined;
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed") return undefined;

  const status = taskStatusFromPod(pod);
  const failure = status.startFailure;
  if (failure) {
    const text = status.systemLogs[status.systemLogs.length - 1] ??
      `container ${failure.container} could not start: ${failure.reason}`;
    if (!failure.transient) return text;
    const since = lastProgress(pod);
    const waited = since ? now.getTime() - since.getTime() : 0;
    if (waited >= imagePullTimeoutMs) return `${text} (gave up after ${formatDuration(waited)})`;
    return undefined;
  }

  if (phase !== "Pending" && phase !== undefined) return undefined;
  if (anyContainerStarted(pod)) return undefined;
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (!pod.spec?.nodeName && scheduled?.status !== "True") {
    const created = toDate(pod.metadata?.creationTimestamp);
    const waited = created ? now.getTime() - created.getTime() : 0;
    if (waited < pendingTimeoutMs) return undefined;
    const why = scheduled?.message?.trim() || scheduled?.reason || "not scheduled to a node";
    return `pod stuck Pending for ${formatDuration(waited)}: ${why}`;
  }
  const since = toDate(scheduled?.lastTransitionTime) ?? toDate(pod.metadata?.creationTimestamp);
  const waited = since ? now.getTime() - since.getTime() : 0;
  if (waited < pendingTimeoutMs) return undefined;
  return `pod stuck Pending for ${formatDuration(waited)}: ${waitingText(pod)}`;
}
