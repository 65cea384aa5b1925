/**
 * A real Planetary API for client and CLI tests: the in-memory SQLite store and the HTTP app,
 * served on a free loopback port. No orchestrator runs: tests move tasks with
 * `store.transition()` themselves.
 *
 * @module
 */
import { createApp } from "../../api/app.ts";
import { openTaskStore } from "../../store/open_store.ts";
import type { TaskStore } from "../../store/task_store.ts";

/** A running test server. */
export interface TesTestServer {
  /** Server root, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** The store behind the API. */
  store: TaskStore;
  /** Stops the server and closes the store. */
  close(): Promise<void>;
}

/**
 * Starts the API on `127.0.0.1:0` over an in-memory store.
 *
 * @returns The running server.
 */
export async function startTesTestServer(): Promise<TesTestServer> {
  const store = await openTaskStore({});
  const app = createApp({ store, config: { logRequests: false } });
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: (address) => listening.resolve(address),
  }, (request) => app.fetch(request));
  const address = await listening.promise;
  return {
    url: `http://127.0.0.1:${address.port}`,
    store,
    async close(): Promise<void> {
      await server.shutdown();
      await store.close();
    },
  };
}

/**
 * Finds a loopback port that nothing listens on (listen, read the port, close).
 *
 * @returns A port number refused by the time it is returned.
 */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
