/**
 * Health routes for load balancers and Kubernetes probes: `/healthz` (the process answers) and
 * `/readyz` (the task database answers too).
 *
 * @module
 */
import { Hono } from "hono";
import type { TaskStore } from "../store/task_store.ts";
import type { ApiLogger } from "./request_log.ts";
import { describeError } from "./request_log.ts";
import { type ApiEnv, jsonResponse } from "./_http.ts";

/**
 * Builds the health routes.
 *
 * @param store The store whose `ping()` decides readiness.
 * @param logger Where a failed readiness check is logged.
 * @returns A Hono app serving `GET /healthz` and `GET /readyz`.
 * @example
 * ```ts ignore
 * const routes = createHealthRoutes(store, logger);
 * ```
 */
export function createHealthRoutes(store: TaskStore, logger: ApiLogger): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.get("/healthz", () => jsonResponse(200, { status: "ok" }));
  app.get("/readyz", async (c) => {
    try {
      await store.ping();
    } catch (error) {
      logger.error("readiness check failed", {
        request_id: c.get("requestId"),
        error: describeError(error),
      });
      return jsonResponse(503, { msg: "The task database is unavailable", status_code: 503 });
    }
    return jsonResponse(200, { status: "ready" });
  });
  return app;
}
