/**
 * Planetary: a GA4GH Task Execution Service (TES v1.1) that runs every task as one Kubernetes
 * pod. This is its library:
 *
 * - the TES model: zod schemas, validation with precise messages, the state machine and the
 *   strict view writer (`validateTask`, `renderTask`, `canTransition`);
 * - a typed TES client (`TesClient`) for any TES server;
 * - the pure pod builder: a task to a pod, and a pod's status back to a TES state
 *   (`buildTaskPod`, `taskStatusFromPod`);
 * - storage adapters chosen by URL (`storageForUrl`).
 *
 * @example
 * ```ts
 * import { buildTaskPod, validateTask } from "./mod.ts";
 *
 * const result = validateTask({ executors: [{ image: "alpine", command: ["echo", "hello"] }] });
 * if (result.ok) {
 *   const { pod } = buildTaskPod({ ...result.task, id: "example" });
 *   console.log(pod.metadata?.name); // "task-example"
 * }
 * ```
 *
 * @module
 */
export * from "./src/tes/mod.ts";
export * from "./src/client/mod.ts";
export * from "./src/pod/mod.ts";
export * from "./src/storage/mod.ts";
