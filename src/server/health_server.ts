/**
 * A tiny HTTP server with `GET /healthz` and `GET /readyz` for the services that have no API of
 * their own (orchestrator, monitor), so Kubernetes can probe them.
 *
 * @module
 */

/** Options of {@linkcode startHealthServer}. */
export interface HealthServerOptions {
  /** Interface to listen on. @default "0.0.0.0" */
  host?: string;
  /** Port to listen on (0 = any free port). */
  port: number;
  /** Resolves when the service is ready (for example: the database answers); rejects otherwise. */
  ready: () => Promise<void>;
}

/** A running health server. */
export interface HealthServer {
  /** The port it listens on. */
  port: number;
  /** Stops it. */
  close(): Promise<void>;
}

/**
 * Starts the health server: `/healthz` answers 200 while the process runs, `/readyz` 200 when
 * `ready()` resolves and 503 when it rejects; anything else 404.
 *
 * @param options Where to listen and how to tell readiness.
 * @returns The running server, once it listens.
 * @example
 * ```ts ignore
 * const health = await startHealthServer({ port: 8081, ready: () => store.ping() });
 * await health.close();
 * ```
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const { host = "0.0.0.0", port, ready } = options;
  const json = (status: number, body: unknown): Response =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json" },
    });
  const listening = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: host, port, onListen: () => listening.resolve() },
    async (request) => {
      const path = new URL(request.url).pathname;
      if (request.method !== "GET") {
        return json(405, { msg: "method not allowed", status_code: 405 });
      }
      if (path === "/healthz") return json(200, { status: "ok" });
      if (path === "/readyz") {
        try {
          await ready();
          return json(200, { status: "ready" });
        } catch {
          return json(503, { msg: "not ready: the database does not answer", status_code: 503 });
        }
      }
      return json(404, { msg: `no route ${path}`, status_code: 404 });
    },
  );
  await listening.promise;
  return { port: server.addr.port, close: () => server.shutdown() };
}
