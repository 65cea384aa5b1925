/**
 * A hand-written fake {@linkcode Backend} for the monitor's tests: it holds pods built by hand
 * (Pending, unschedulable, image pull errors…) that no real backend here can produce, because
 * no kubelet here fails image pulls or leaves pods unscheduled. It runs nothing.
 *
 * @module
 */
import type { V1ContainerStatus, V1PodCondition } from "@kubernetes/client-node";
import type { Backend, PodEvent, TaskPodObjects } from "../../orchestrator/backend.ts";
import type { Pod } from "../../pod/kubernetes_types.ts";
import { LABEL_MANAGED_BY, LABEL_TASK_ID, MANAGED_BY_VALUE } from "../../pod/layout.ts";
import { ANNOTATION_TASK_ID, podName } from "../../pod/pod_name.ts";

/** Fake backend: pods in a map, with hooks to fail calls or act while they run. */
export class FakeBackend implements Backend {
  /** Always `fake`. */
  readonly name = "fake";
  /** The pods, by name. */
  readonly pods: Map<string, Pod> = new Map();
  /** Names of the pods deleted, in order. */
  readonly deleted: string[] = [];
  /** When set, `listPods()` rejects with it. */
  listError: Error | undefined;
  /** Pod names whose deletion rejects. */
  readonly failDeletes: Set<string> = new Set();
  /** Called by `getPod()` before it answers (to act "concurrently"). */
  onGetPod: ((name: string) => Promise<void>) | undefined;

  /**
   * Adds a pod.
   *
   * @param pod The pod (needs a name).
   */
  add(pod: Pod): void {
    this.pods.set(pod.metadata!.name!, structuredClone(pod));
  }

  /** Adds the pod. */
  createPod(objects: TaskPodObjects): Promise<void> {
    this.add(objects.pod);
    return Promise.resolve();
  }

  /** Removes the pod (or rejects for names in `failDeletes`). */
  deletePod(name: string): Promise<void> {
    if (this.failDeletes.has(name)) return Promise.reject(new Error(`cannot delete ${name}`));
    if (this.pods.delete(name)) this.deleted.push(name);
    return Promise.resolve();
  }

  /** The pod, after `onGetPod`. */
  async getPod(name: string): Promise<Pod | undefined> {
    await this.onGetPod?.(name);
    const pod = this.pods.get(name);
    return pod ? structuredClone(pod) : undefined;
  }

  /** Every pod (or rejects with `listError`). */
  listPods(): Promise<Pod[]> {
    if (this.listError) return Promise.reject(this.listError);
    return Promise.resolve([...this.pods.values()].map((pod) => structuredClone(pod)));
  }

  /** Sends nothing; resolves when aborted. */
  watchPods(_onEvent: (event: PodEvent) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  /** No logs. */
  readLog(): Promise<string> {
    return Promise.resolve("");
  }

  /** Nothing to stop. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The shape of a hand-built task pod. */
export interface FakePodSpec {
  /** When the pod was created. */
  created: Date;
  /** Pod phase. @default "Pending" */
  phase?: string;
  /** Node it is bound to. */
  nodeName?: string;
  /** Pod conditions. */
  conditions?: V1PodCondition[];
  /** Init container statuses. */
  initContainerStatuses?: V1ContainerStatus[];
  /** Main container statuses. */
  containerStatuses?: V1ContainerStatus[];
}

/**
 * Builds a task pod as Kubernetes would report it, labelled for the task.
 *
 * @param taskId The task id.
 * @param spec Times and status.
 * @returns The pod.
 */
export function fakeTaskPod(taskId: string, spec: FakePodSpec): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: podName(taskId),
      namespace: "default",
      creationTimestamp: spec.created,
      labels: { [LABEL_TASK_ID]: taskId, [LABEL_MANAGED_BY]: MANAGED_BY_VALUE },
      annotations: { [ANNOTATION_TASK_ID]: taskId },
    },
    spec: {
      restartPolicy: "Never",
      ...(spec.nodeName ? { nodeName: spec.nodeName } : {}),
      containers: [{ name: "outputs", image: "transporter" }],
    },
    status: {
      phase: spec.phase ?? "Pending",
      conditions: spec.conditions ?? [],
      initContainerStatuses: spec.initContainerStatuses ?? [],
      containerStatuses: spec.containerStatuses ?? [],
    },
  };
}

/**
 * A container status waiting with `reason`.
 *
 * @param name Container name.
 * @param image Image.
 * @param reason Waiting reason.
 * @param message Waiting message.
 * @returns The status.
 */
export function waitingStatus(
  name: string,
  image: string,
  reason: string,
  message = "",
): V1ContainerStatus {
  return {
    name,
    image,
    imageID: "",
    ready: false,
    restartCount: 0,
    state: { waiting: { reason, message } },
  };
}
