/**
 * The Planetary HTTP API: a GA4GH TES v1.1 service as one fetch handler.
 *
 * - {@linkcode createApp} builds the handler from a `TaskStore` and an {@linkcode ApiConfig};
 * - routes: `GET /service-info`, `GET|POST /tasks`, `GET /tasks/{id}`, `POST /tasks/{id}:cancel`
 *   under `/ga4gh/tes/v1` and `/v1`, `GET /service-info` also at the root and at
 *   `{base}/tasks/service-info` (py-tes < 1), `GET /healthz` and `GET /readyz`;
 * - safe by default: CORS off, JSON content type required on POST, a time limit on request
 *   bodies, an optional `Host` allow-list against DNS rebinding (see {@linkcode ApiConfig});
 * - errors answer `{ "msg": "...", "status_code": N }` (see {@linkcode ErrorBody}).
 *
 * @example
 * ```ts ignore
 * import { createApp } from "@planetary/planetary/api";
 * import { openTaskStore } from "@planetary/planetary/store";
 * const app = createApp({ store: await openTaskStore({}) });
 * Deno.serve(app.fetch);
 * ```
 *
 * @module
 */
export * from "./app.ts";
export * from "./auth_tokens_file.ts";
export * from "./config.ts";
export * from "./errors.ts";
export * from "./request_log.ts";
// The route modules (`tasks.ts`, `service_info.ts`, `health.ts`, `auth.ts`) build Hono sub-apps
// for `createApp`; only their framework-free parts are public.
export { buildServiceInfo, PLANETARY_VERSION, TES_SPEC_VERSION } from "./service_info.ts";
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_PAGE_TOKEN_BYTES, parseListQuery } from "./tasks.ts";
