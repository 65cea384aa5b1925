/**
 * The monitor: the periodic backstop of the orchestrators. It warns about leases that no
 * orchestrator adopted, deletes pods whose task finished or does not exist, fails tasks whose
 * pod disappeared or is stuck (Pending, image pull errors) with the reason in their system logs,
 * and reports how the database and the cluster compare.
 *
 * @example
 * ```ts ignore
 * import { Monitor } from "./mod.ts";
 * const monitor = new Monitor({ store, backend, intervalMs: 5_000 });
 * monitor.start();
 * await monitor.stop();
 * ```
 *
 * @module
 */
export * from "./monitor.ts";
export * from "./stuck_pod_reason.ts";
export type { Backend, PodEvent, TaskPodObjects } from "../orchestrator/backend.ts";
export type * from "../pod/kubernetes_types.ts";
export type * from "../store/task_store.ts";
export type * from "../tes/model.ts";
