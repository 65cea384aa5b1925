/**
 * The contract between the orchestrator and what runs pods: the Kubernetes API, or this
 * machine (`local`). A backend knows nothing of tasks; it runs the pods the pod builder made and
 * tells what became of them, in the shape of Kubernetes pod status.
 *
 * @module
 */
import type { ConfigMap, Pod } from "../pod/kubernetes_types.ts";

/** The objects of one task, as built by the pod builder. */
export interface TaskPodObjects {
  /** The task pod. */
  pod: Pod;
  /** The per-task ConfigMap with the transfer spec; owned by the pod once it exists. */
  configMap: ConfigMap;
}

/** A change to a watched pod. */
export interface PodEvent {
  /** What happened. */
  type: "ADDED" | "MODIFIED" | "DELETED";
  /** The pod as it is now (as it was last, for DELETED). */
  pod: Pod;
}

/** Runs task pods and reports their status. */
export interface Backend {
  /** Short name for logs and service-info (`kubernetes`, `local`). */
  readonly name: string;
  /** Creates the pod and its objects; a pod that already exists is left alone (no error). */
  createPod(objects: TaskPodObjects): Promise<void>;
  /** Deletes the pod and its objects; a pod that is already gone is no error. */
  deletePod(name: string): Promise<void>;
  /** The pod as it is now, or undefined when it does not exist. */
  getPod(name: string): Promise<Pod | undefined>;
  /** Every pod managed by Planetary. */
  listPods(): Promise<Pod[]>;
  /**
   * Calls `onEvent` for every change to a managed pod until `signal` aborts. Implementations
   * resume after errors (relist on 410 Gone) and never reject except when aborted.
   */
  watchPods(onEvent: (event: PodEvent) => void, signal: AbortSignal): Promise<void>;
  /**
   * The log of one container of a pod ("" when there is none); with `tailLines`, only its last
   * lines (how the orchestrator finds the transporter's report after any amount of progress).
   */
  readLog(podName: string, container: string, options?: ReadLogOptions): Promise<string>;
  /** Stops whatever the backend runs in the background. */
  close(): Promise<void>;
}

/** Options of {@linkcode Backend.readLog}. */
export interface ReadLogOptions {
  /** Read only this many lines from the end of the log. @default undefined (the whole log) */
  tailLines?: number;
}
