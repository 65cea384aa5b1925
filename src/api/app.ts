/**
 * The HTTP API as one fetch handler: TES routes under `/ga4gh/tes/v1` and `/v1`, service-info
 * also at the root and at `{base}/tasks/service-info` (py-tes < 1), health checks, the `Host`
 * check, CORS, request ids, request logs, optional bearer auth, and the one error handler that
 * turns every error into `{ msg, status_code }`.
 *
 * Safe by default: CORS is off unless origins are configured, every POST that acts must declare
 * a JSON body (see `_http.ts`), request bodies have a time limit, and every malformed value is
 * a 4xx naming it. With `allowedHosts` set, a request whose `Host` is neither loopback nor
 * listed gets a 403 (DNS rebinding); the health routes are exempt, because Kubernetes probes
 * send the pod IP as `Host` and the routes reveal nothing.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { cors } from "hono/cors";
import type { TaskStore } from "../store/task_store.ts";
import { bearerAuth } from "./auth.ts";
import { type ApiConfig, hostName, isLoopbackHost, resolveApiConfig } from "./config.ts";
import { type ErrorBody, HttpError, toHttpError } from "./errors.ts";
import { createHealthRoutes } from "./health.ts";
import { type ApiLogger, createJsonLogger, describeError } from "./request_log.ts";
import { createServiceInfoRoutes } from "./service_info.ts";
import { createTaskRoutes } from "./tasks.ts";
import { type ApiEnv, jsonResponse } from "./_http.ts";

/** The TES base paths the API is served under: the specification's, and the short one. */
export const TES_BASE_PATHS: readonly string[] = Object.freeze(["/ga4gh/tes/v1", "/v1"]);

/** Options of {@linkcode createApp}. */
export interface CreateAppOptions {
  /** Where tasks live. */
  store: TaskStore;
  /** API configuration. @default {} */
  config?: ApiConfig;
  /** Where logs go. @default JSON lines on stderr */
  logger?: ApiLogger;
}

/** The API as a fetch handler, for `Deno.serve` or for tests. */
export interface PlanetaryApp {
  /** Answers one request. Never rejects: every error becomes a JSON error answer. */
  fetch(request: Request): Promise<Response>;
}

const REQUEST_ID_HEADER = "x-request-id";
const HEALTH_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz"]);
const LEGACY_SERVICE_INFO_PATHS: readonly string[] = ["/service-info", "/tasks/service-info"];
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Builds the HTTP API.
 *
 * @param options The store, configuration and logger.
 * @returns The fetch handler.
 * @throws {RangeError} When the configuration is invalid.
 * @example
 * ```ts ignore
 * import { createApp } from "./app.ts";
 * import { openTaskStore } from "../store/open_store.ts";
 * const app = createApp({ store: await openTaskStore({}) });
 * const res = await app.fetch(new Request("http://x/ga4gh/tes/v1/service-info"));
 * ```
 */
export function createApp(options: CreateAppOptions): PlanetaryApp {
  const { store, logger = createJsonLogger() } = options;
  const config = resolveApiConfig(options.config);
  const app = new Hono<ApiEnv>();

  app.use("*", async (c, next) => {
    const started = performance.now();
    const incoming = c.req.header(REQUEST_ID_HEADER);
    const requestId = incoming !== undefined && SAFE_REQUEST_ID.test(incoming)
      ? incoming
      : crypto.randomUUID();
    c.set("requestId", requestId);
    c.set("user", undefined);
    await next();
    c.res.headers.set(REQUEST_ID_HEADER, requestId);
    if (config.logRequests) {
      const length = c.res.headers.get("content-length");
      const user = c.get("user");
      logger.request({
        time: new Date().toISOString(),
        request_id: requestId,
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
        bytes: length === null ? null : Number(length),
        ...(user === undefined ? {} : { user }),
      });
    }
  });

  const allowedHosts = config.allowedHosts;
  if (allowedHosts !== undefined && !allowedHosts.includes("*")) {
    app.use("*", async (c, next) => {
      if (!HEALTH_PATHS.has(c.req.path)) {
        const raw = c.req.header("host") ?? new URL(c.req.url).host;
        const name = hostName(raw);
        if (!isLoopbackHost(name) && !allowedHosts.includes(name)) {
          const shown = JSON.stringify(name.slice(0, 253));
          throw new HttpError(
            403,
            name === ""
              ? "Host header: missing; send the server's name in Host"
              : `Host ${shown} is not allowed; start the server with --allow-host ${
                name.slice(0, 253)
              } to allow it`,
          );
        }
      }
      await next();
    });
  }

  if (config.corsOrigins.length > 0) {
    const origins = [...config.corsOrigins];
    app.use(
      "*",
      cors({
        origin: origins.includes("*") ? "*" : origins,
        allowMethods: ["GET", "POST", "OPTIONS"],
        allowHeaders: ["Authorization", "Content-Type", "X-Request-Id"],
        exposeHeaders: ["X-Request-Id"],
        maxAge: 600,
      }),
    );
  }

  if (config.authTokens !== undefined) {
    // Only the task routes need a token: health checks and service-info stay public, because
    // probes and clients read them before (or without) authenticating.
    const auth = bearerAuth(config.authTokens);
    app.use("*", (c, next) => isTaskPath(c.req.path) ? auth(c, next) : next());
  }

  app.route("/", createHealthRoutes(store, logger));
  const tasks = createTaskRoutes({ store, config, logger });
  app.route("/", createServiceInfoRoutes(config));
  // `{base}/tasks/service-info` is where py-tes < 1 (Toil's TES batch system) looks, as Funnel
  // serves it; it is mounted before the task routes so that it is not read as a task id.
  const baseServiceInfo = createServiceInfoRoutes(config, LEGACY_SERVICE_INFO_PATHS);
  for (const base of TES_BASE_PATHS) {
    app.route(base, baseServiceInfo);
    app.route(base, tasks);
  }

  app.notFound((c) =>
    errorResponse(new HttpError(404, `No route for ${c.req.method} ${c.req.path}`), c, logger)
  );
  app.onError((error, c) => errorResponse(error, c, logger));

  return {
    fetch: async (request) => {
      try {
        return await app.fetch(request);
      } catch (error) {
        // Only reachable if the error handler itself failed: answer without details.
        logger.error("unhandled error", { error: describeError(error) });
        return jsonResponse(500, { msg: "Internal server error", status_code: 500 });
      }
    },
  };
}

/**
 * Whether a path needs a token: everything under `{base}/tasks` (`/tasks`, `/tasks:batch`,
 * `/tasks/{id}`, any spelling the router might also accept) except the legacy service-info.
 * A prefix test, so that a route added later is never public by mistake.
 */
function isTaskPath(path: string): boolean {
  return TES_BASE_PATHS.some((base) =>
    path.startsWith(`${base}/tasks`) && path !== `${base}/tasks/service-info`
  );
}

function errorResponse(error: unknown, c: Context<ApiEnv>, logger: ApiLogger): Response {
  const { error: http, unexpected } = toHttpError(error);
  if (unexpected) {
    logger.error(http.status === 503 ? "store unavailable" : "unexpected error", {
      request_id: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      error: describeError(error),
    });
  }
  const body: ErrorBody = { msg: http.message, status_code: http.status };
  return jsonResponse(http.status, body, http.headers);
}
