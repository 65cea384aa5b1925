/**
 * The TES v1.1 model of Planetary, with no I/O: types and zod schemas of tasks and
 * service-info (`model.ts`), the task state machine (`state.ts`), validation of submitted
 * tasks with a precise path for every problem (`validate.ts`), the size limits of string
 * fields (`limits.ts`), `file://` URLs of host paths (`file_url.ts`), and the strict writer
 * that renders a task in the MINIMAL, BASIC or FULL view with only specification fields
 * (`view.ts`).
 *
 * @example
 * ```ts
 * import { renderTask, validateTask } from "./mod.ts";
 * const result = validateTask({ executors: [{ image: "alpine", command: ["echo", "hi"] }] });
 * if (result.ok) {
 *   renderTask({ ...result.task, id: "t1", state: "QUEUED" }, "BASIC");
 * }
 * ```
 *
 * @module
 */
export * from "./file_url.ts";
export * from "./limits.ts";
export * from "./model.ts";
export * from "./state.ts";
export * from "./validate.ts";
export * from "./view.ts";
