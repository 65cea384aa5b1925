/**
 * A typed client of GA4GH TES v1.1 servers: submit, list, read, cancel and wait for tasks.
 *
 * ```ts ignore
 * import { TesClient } from "@planetary/planetary/client";
 * const client = new TesClient("http://127.0.0.1:8000");
 * const id = await client.createTask({ executors: [{ image: "alpine", command: ["echo", "hi"] }] });
 * const task = await client.waitForTask(id);
 * ```
 *
 * Errors: {@linkcode TesApiError} when the server answers with an error status,
 * {@linkcode TesConnectionError} when it cannot be reached.
 *
 * @module
 */
export * from "./errors.ts";
export * from "./tes_client.ts";
