/**
 * The assembly of `planetary serve`: opens the task store, builds the API, listens with
 * `Deno.serve`, and shuts everything down in order.
 *
 * @module
 */
import { createApp } from "../api/app.ts";
import type { ApiConfig } from "../api/config.ts";
import type { ApiLogger } from "../api/request_log.ts";
import { openTaskStore } from "../store/open_store.ts";
import type { TaskStore } from "../store/task_store.ts";
import type { ExecutionOptions, RunningExecution } from "./execution.ts";
import { Monitor } from "../monitor/monitor.ts";
import { supportedBackendParameters } from "../pod/pod_builder_config.ts";

/** Options of {@linkcode startServer}. */
export interface ServeOptions {
  /** Interface to listen on. @default "127.0.0.1" */
  host?: string;
  /** Port to listen on; 0 picks a free one (read it back from `url`). @default 8000 */
  port?: number;
  /**
   * Folder of the embedded database (SQLite, `planetary.sqlite`; PGlite for a folder an
   * earlier Planetary made with it), used when `databaseUrl` is not set.
   * @default a `planetary` folder under `$XDG_DATA_HOME` or `~/.local/share`
   */
  dataDir?: string;
  /** PostgreSQL connection URL; when set, `dataDir` is not used. @default undefined */
  databaseUrl?: string;
  /**
   * API configuration (service-info fields, body limit, request logs, CORS, auth). Unless set
   * here, `allowedHosts` is `[]` (loopback names only) when `host` is loopback, and
   * `fileAllowList` is the execution's.
   * @default {}
   */
  api?: ApiConfig;
  /**
   * A store to use instead of opening one (it is not closed by `close()`).
   * @default undefined (open one from `databaseUrl` or `dataDir`)
   */
  store?: TaskStore;
  /** Where API logs go. @default JSON lines on stderr */
  logger?: ApiLogger;
  /** Close gracefully on SIGINT and SIGTERM (for the CLI; off for embedding). @default false */
  handleSignals?: boolean;
  /** Print `Planetary listening on URL` to stderr once listening. @default true */
  announce?: boolean;
  /**
   * The orchestrator and its backend; `false` runs the API only (tasks stay QUEUED).
   * @default the local backend, pods under `<dataDir>/work`, `file://` allowed under `$HOME`
   * and `/tmp` (plus `sharedDirs`; the same list becomes `api.fileAllowList` unless set)
   */
  execution?: false | (Partial<ExecutionOptions>);
  /**
   * URL schemes and service-info prefixes of the cloud stores the environment configures (see
   * `cloudStorageFromEnv`). When set, the API accepts only `file`, `http`, `https` and these
   * schemes (unless `api.allowedUrlSchemes` says otherwise) and service-info `storage` lists
   * the allowed `file://` folders, `http(s)://` and these prefixes (unless set in `api`).
   * @default undefined (no scheme restriction, service-info storage as configured)
   */
  cloudStorage?: { schemes: readonly string[]; prefixes: readonly string[] };
  /**
   * Run tasks on the local backend's host runtime even with authentication configured
   * (`api.authTokens`: several users). The host runtime does not isolate one task from
   * another, so without this the server refuses to start there
   * ({@linkcode UnsafeHostRuntimeError}); `planetary serve --unsafe-host-runtime` sets it.
   * @default false
   */
  unsafeHostRuntime?: boolean;
}

/**
 * Thrown by {@linkcode startServer} when authentication is configured (several users) and
 * tasks would run on the host runtime, which does not isolate them, without
 * {@linkcode ServeOptions.unsafeHostRuntime}.
 */
export class UnsafeHostRuntimeError extends Error {
  /** Stable error code. */
  readonly code = "UNSAFE_HOST_RUNTIME";
  /**
   * Builds the error.
   *
   * @param message What is refused and what to do.
   */
  constructor(message: string) {
    super(message);
    this.name = "UnsafeHostRuntimeError";
  }
}

/** The one line `planetary serve` prints when tasks run on the host runtime. */
export const HOST_RUNTIME_WARNING =
  "Planetary warning: tasks run on the host runtime (no docker/podman engine in use), which " +
  "does NOT isolate them: every task reads this machine's files and uses its network; run " +
  "only trusted tasks, or install docker or podman";

/** A running server. */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8000` (with the real port when `port` was 0). */
  url: string;
  /** The store the server uses. */
  store: TaskStore;
  /** The orchestrator and backend, unless execution is off. */
  execution?: RunningExecution;
  /** Stops accepting requests, waits for the ones in flight, then closes what it opened. */
  close(): Promise<void>;
  /** Resolves once the server is closed (by `close()` or a signal). */
  finished: Promise<void>;
}

const SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * Whether an interface name or address is loopback: `localhost` (and `*.localhost`),
 * 127.0.0.0/8, `::1`.
 *
 * @param host A `--host` value.
 * @returns True for loopback.
 * @example
 * ```ts
 * import { isLoopbackHost } from "./start_server.ts";
 * isLoopbackHost("127.0.0.1"); // true
 * isLoopbackHost("0.0.0.0"); // false
 * ```
 */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  if (name === "::1" || name === "0:0:0:0:0:0:0:1") return true;
  if (/^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)) return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/**
 * Returns the default data folder: `$XDG_DATA_HOME/planetary`, else
 * `~/.local/share/planetary`.
 *
 * @returns An absolute path.
 * @throws {Error} When neither `XDG_DATA_HOME` nor `HOME` is set.
 * @example
 * ```ts ignore
 * defaultDataDir(); // "/home/alice/.local/share/planetary"
 * ```
 */
export function defaultDataDir(): string {
  const xdg = Deno.env.get("XDG_DATA_HOME");
  if (xdg) return `${xdg}/planetary`;
  const home = Deno.env.get("HOME");
  if (!home) throw new Error("Cannot choose a data folder: set XDG_DATA_HOME or HOME");
  return `${home}/.local/share/planetary`;
}

/**
 * Returns the folders that `file://` inputs and outputs may use by default: the user's home
 * and `/tmp` (the server listens on loopback by default, and the local backend runs tasks as
 * this user anyway).
 *
 * @returns Absolute paths.
 */
export function defaultFileAllowList(): string[] {
  const home = Deno.env.get("HOME");
  return [...(home ? [home] : []), "/tmp"];
}

/**
 * Starts the TES server.
 *
 * @param options Where to listen, which database, and the API configuration.
 * @returns The running server, once it listens.
 * @throws {Error} When the store cannot be opened or the port cannot be bound (anything
 * opened so far is closed again).
 * @example
 * ```ts ignore
 * import { startServer } from "./start_server.ts";
 * const server = await startServer({ port: 0, dataDir: await Deno.makeTempDir() });
 * console.log(server.url);
 * await server.close();
 * ```
 */
export async function startServer(options: ServeOptions = {}): Promise<RunningServer> {
  const { host = "127.0.0.1", port = 8000, announce = true, handleSignals = false } = options;
  let store: TaskStore;
  let ownsStore = false;
  if (options.store !== undefined) {
    store = options.store;
  } else if (options.databaseUrl !== undefined) {
    store = await openTaskStore({ databaseUrl: options.databaseUrl });
    ownsStore = true;
  } else {
    const dataDir = options.dataDir ?? defaultDataDir();
    // A file in its place is reported by the store (DataDirNotUsableError), not as EEXIST.
    await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 }).catch((error) => {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    });
    store = await openTaskStore({
      dataDir,
      // an earlier Planetary's PGlite folder keeps working: say so, once, at start
      onNotice: (message) =>
        options.logger === undefined
          ? console.error(`planetary: ${message}`)
          : options.logger.warn(message),
    });
    ownsStore = true;
  }

  let execution: RunningExecution | undefined;
  let fileAllowList: readonly string[] = [];
  if (options.execution !== false) {
    const given = options.execution ?? {};
    const base = options.dataDir ?? defaultDataDir();
    const sharedDirs = given.sharedDirs ?? [];
    // Shared folders are file:// storage too: tasks and clients meet there.
    fileAllowList = [
      ...new Set([...(given.fileAllowList ?? defaultFileAllowList()), ...sharedDirs]),
    ];
    const multiUser = Object.keys(options.api?.authTokens ?? {}).length > 0;
    // loaded only when tasks run here (`--backend none` serves the API without it)
    const { startExecution } = await import("./execution.ts");
    execution = startExecution(store, {
      ...given,
      workDir: given.workDir ?? `${base}/work`,
      fileAllowList: [...fileAllowList],
      sharedDirs: [...sharedDirs],
      checkRuntime: (name) => {
        given.checkRuntime?.(name);
        if (name !== "host") return;
        if (multiUser && options.unsafeHostRuntime !== true) {
          throw new UnsafeHostRuntimeError(
            "Refusing to start: authentication is configured (several users), but tasks " +
              "would run on the host runtime, which does not isolate one user's tasks from " +
              "another's; install and start docker or podman, or pass --unsafe-host-runtime " +
              "(unsafeHostRuntime) to run them on the host anyway",
          );
        }
        if (announce) console.error(HOST_RUNTIME_WARNING);
      },
    });
    try {
      await execution.ready;
    } catch (error) {
      await execution.stop().catch(() => {});
      if (ownsStore) await store.close().catch(() => {});
      throw error;
    }
  }
  let apiConfig = options.api;
  if (execution && apiConfig?.fileAllowList === undefined) {
    // Refuse at submit (400) what the transporter would refuse at run time.
    apiConfig = { ...apiConfig, fileAllowList };
  }
  if (apiConfig?.allowedHosts === undefined && isLoopbackHost(host)) {
    // Against DNS rebinding: a loopback server answers loopback names only, unless told more.
    apiConfig = { ...apiConfig, allowedHosts: [] };
  }
  if (execution && apiConfig?.supportedBackendParameters === undefined) {
    // The API keeps (and service-info lists) exactly the keys the pod builder applies.
    const pod = options.execution === false ? undefined : options.execution?.pod;
    apiConfig = {
      ...apiConfig,
      supportedBackendParameters: supportedBackendParameters(pod ?? {}),
    };
  }
  if (options.cloudStorage !== undefined) {
    const { schemes, prefixes } = options.cloudStorage;
    const allowed = apiConfig?.allowedUrlSchemes ?? ["file", "http", "https", ...schemes];
    const offered = [
      ...fileAllowList.map((dir) => `file://${dir}`),
      "http://",
      "https://",
      ...prefixes,
    ];
    apiConfig = {
      ...apiConfig,
      allowedUrlSchemes: allowed,
      serviceInfo: {
        ...apiConfig?.serviceInfo,
        // What is accepted, and nothing else (https://*.blob… needs https AND az).
        storage: apiConfig?.serviceInfo?.storage ?? offered.filter((prefix) => {
          const scheme = prefix.slice(0, prefix.indexOf(":"));
          const viaHttps = scheme === "https" && prefix !== "https://";
          return allowed.includes(scheme) &&
            (!viaHttps || allowed.includes(prefix.includes("blob.core") ? "az" : "gs"));
        }),
      },
    };
  }

  // The monitor backs the orchestrator up: lost and stuck pods, leftover pods, stale leases.
  const monitor = execution &&
    new Monitor({
      store,
      backend: execution.backend,
      intervalMs: 5_000,
      staleLeaseMs: 3 * (options.execution === false ? 0 : options.execution?.leaseMs ?? 30_000),
    });
  monitor?.start();

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    const app = createApp({
      store,
      ...(apiConfig === undefined ? {} : { config: apiConfig }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    });
    const listening = Promise.withResolvers<void>();
    server = Deno.serve({
      hostname: host,
      port,
      onListen: () => listening.resolve(),
    }, (request) => app.fetch(request));
    await listening.promise;
  } catch (error) {
    await monitor?.stop();
    await execution?.stop().catch(() => {});
    if (ownsStore) await store.close().catch(() => {});
    throw error;
  }

  const address = server.addr;
  const shownHost = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  const url = `http://${shownHost}:${address.port}`;
  if (announce) console.error(`Planetary listening on ${url}`);

  const finished = Promise.withResolvers<void>();
  let closing: Promise<void> | undefined;
  const onSignal = (): void => {
    void close();
  };
  function close(): Promise<void> {
    closing ??= (async () => {
      if (handleSignals) { for (const s of SIGNALS) Deno.removeSignalListener(s, onSignal); }
      try {
        await monitor?.stop();
        await server.shutdown();
        await execution?.stop();
      } finally {
        if (ownsStore) await store.close();
        finished.resolve();
      }
    })();
    return closing;
  }
  if (handleSignals) { for (const s of SIGNALS) Deno.addSignalListener(s, onSignal); }

  return {
    url,
    store,
    ...(execution ? { execution } : {}),
    close,
    finished: finished.promise,
  };
}
