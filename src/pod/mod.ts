/**
 * The pod builder: pure functions that turn a TES task into the Kubernetes objects that run it
 * ({@linkcode buildTaskPod}) and read a task pod's status back as a TES state with logs
 * ({@linkcode taskStatusFromPod}). No I/O: the single source of truth for how a task executes.
 *
 * A task is one pod: an `inputs` init container (the transporter downloads inputs), one init
 * container per executor (the user's image running the POSIX `sh` wrapper
 * {@linkcode WRAPPER_SCRIPT}, which records exit codes and always exits 0), and an `outputs`
 * main container (the transporter uploads outputs and prints a report). The names, paths and
 * formats they share live in `layout.ts`.
 *
 * @example
 * ```ts
 * import { buildTaskPod, taskStatusFromPod } from "./mod.ts";
 * const { pod } = buildTaskPod({ id: "abc", executors: [{ image: "alpine", command: ["true"] }] });
 * taskStatusFromPod(pod).state; // "QUEUED" (not scheduled yet)
 * ```
 *
 * @module
 */
export * from "./layout.ts";
export * from "./kubernetes_types.ts";
export * from "./build_task_pod.ts";
export * from "./executor_wrapper.ts";
export * from "./kubernetes_expansion.ts";
export * from "./pod_build_error.ts";
export * from "./pod_builder_config.ts";
export * from "./pod_name.ts";
export * from "./task_mounts.ts";
export * from "./task_status_from_pod.ts";
export type { TaskPodObjects } from "../orchestrator/backend.ts";
