/**
 * "Planetary on the test cluster": the Kubernetes deployment of Planetary, run for real on
 * loopback. PostgreSQL, the control plane of `./k8s.ts`, a node agent (`./node_agent.ts`) that
 * runs the pods with the host runtime, and the three services as `deno run` SUBPROCESSES with
 * exactly their exported permission flags: `planetary-api migrate`, then the API, N
 * orchestrators (`--owner orch-1`, `orch-2`, …) and the monitor, each talking to the apiserver
 * as the least-privilege `planetary` user bound by `k8s/rbac/task-role.yaml` in a namespace
 * that enforces the `baseline` Pod Security level.
 *
 * The infrastructure (database server, control plane, node agent) can be shared by several
 * deployments (each with its own database, namespace and storage folder):
 * {@linkcode startClusterInfra} once, then {@linkcode startPlanetary} per deployment;
 * {@linkcode startPlanetaryCluster} does both for one deployment.
 *
 * ```ts ignore
 * const cluster = await startPlanetaryCluster();
 * try {
 *   const id = await cluster.client.createTask({ executors: [{ image: "alpine", command: ["true"] }] });
 * } finally {
 *   await cluster.stop();
 * }
 * ```
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { API_PERMISSIONS } from "../../cli/api.ts";
import { MONITOR_PERMISSIONS } from "../../cli/monitor.ts";
import { ORCHESTRATOR_PERMISSIONS } from "../../cli/orchestrator.ts";
import { TesClient } from "../../src/client/mod.ts";
import type { PodBuilderConfig } from "../../src/pod/pod_builder_config.ts";
import { localTransporterCommand } from "../../src/server/execution.ts";
import { requireComponent, which } from "./component.ts";
import {
  type ControlPlane,
  type ControlPlaneOptions,
  requireControlPlane,
  startControlPlane,
} from "./k8s.ts";
import {
  type ContainerRuntime,
  type NodeAgent,
  type NodeAgentFault,
  type SharedHostPath,
  startNodeAgent,
} from "./node_agent.ts";
import {
  createDatabase,
  type PostgresCluster,
  requirePostgres,
  startPostgres,
} from "./postgres.ts";
import { HostRuntime } from "../../src/orchestrator/backends/local/host_runtime.ts";
import { killWithGrace } from "./process.ts";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const CONFIG = `${REPO}/deno.json`;
const ROLE_FILE = `${REPO}/k8s/rbac/task-role.yaml`;
/** Where the node agent shows the shared storage folders inside task containers. */
export const HOST_FILES_ROOT = "/planetary/host";
/**
 * Where task containers see Planetary's source tree (read-only) and the Deno cache, for the
 * transporter: under `/planetary`, which no task path may use, so that a task using `/work` or
 * `/root` paths cannot mount its data volume over them (as `planetary serve` does).
 */
export const CONTAINER_SOURCE_DIR = "/planetary/source";
/** Where task containers see the host's Deno cache (see {@linkcode CONTAINER_SOURCE_DIR}). */
export const CONTAINER_DENO_DIR = "/planetary/deno";

function hostDenoDir(): string | undefined {
  const home = Deno.env.get("HOME");
  return Deno.env.get("DENO_DIR") ?? (home ? `${home}/.cache/deno` : undefined);
}

/** The namespace of task pods. */
export const TASK_NAMESPACE = "planetary-tasks";

/**
 * Whether the cluster can run here: control-plane binaries, PostgreSQL and the host runtime.
 * Skips locally, FAILS under `CI=true` when one is missing.
 *
 * @returns Whether tests of the cluster run.
 */
export async function requirePlanetaryCluster(): Promise<boolean> {
  if (!requireControlPlane() || !requirePostgres()) return false;
  let hostRuntime = false;
  if (which("unshare")) {
    try {
      await new HostRuntime().ensureAvailable();
      hostRuntime = true;
    } catch {
      hostRuntime = false;
    }
  }
  return requireComponent(
    hostRuntime,
    "host runtime: needs util-linux `unshare` and root or user namespaces with overlayfs",
  );
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function pollUntil<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A `deno run` subprocess whose stdout and stderr go to a log file. */
export class ServiceProcess {
  /** Short name (`api`, `orch-1`, …). */
  readonly name: string;
  /** Its log file. */
  readonly logPath: string;
  /** Process id. */
  readonly pid: number;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #piping: Promise<unknown>;
  #exited = false;

  /**
   * Spawns `deno run --quiet --config deno.json <permissions> <script> <args>`.
   *
   * @param name Short name.
   * @param script Path of the entrypoint.
   * @param permissions Its exact permission flags.
   * @param args Its arguments.
   * @param logDir Folder of the log file.
   */
  constructor(
    name: string,
    script: string,
    permissions: readonly string[],
    args: string[],
    logDir: string,
  ) {
    this.name = name;
    this.logPath = `${logDir}/${name}.log`;
    const log = Deno.openSync(this.logPath, { write: true, create: true, append: true });
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--config", CONFIG, ...permissions, script, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.pid = this.#child.pid;
    const sink = (): WritableStream<Uint8Array> =>
      new WritableStream({ write: (chunk) => void log.writeSync(chunk) });
    this.#piping = Promise.allSettled([
      this.#child.stdout.pipeTo(sink()),
      this.#child.stderr.pipeTo(sink()),
    ]).finally(() => log.close());
    this.status = this.#child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** Whether the process ended. */
  get exited(): boolean {
    return this.#exited;
  }

  /**
   * What the process wrote so far.
   *
   * @returns The log text.
   */
  log(): string {
    try {
      return Deno.readTextFileSync(this.logPath);
    } catch {
      return "";
    }
  }

  /**
   * Sends `signal`, then SIGKILL after `graceMs`; waits for the exit and the log.
   *
   * @param signal The first signal.
   * @param graceMs How long to wait before SIGKILL.
   * @returns The exit status.
   */
  async kill(signal: Deno.Signal = "SIGTERM", graceMs = 15_000): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      await killWithGrace(this.#child, this.status, signal, graceMs);
    }
    const status = await this.status;
    await this.#piping;
    return status;
  }

  /**
   * Waits until the log contains `text`.
   *
   * @param text What to find.
   * @param timeoutMs Deadline.
   * @throws {Error} When the process exits first or the deadline passes (with the log).
   */
  async waitForLog(text: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.log().includes(text)) {
      if (this.#exited) {
        await this.#piping;
        throw new Error(`${this.name} exited before logging "${text}":\n${this.log()}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`${this.name} did not log "${text}" in ${timeoutMs} ms:\n${this.log()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /**
   * The peak resident set size of the process (`VmHWM`), in KiB, while it runs.
   *
   * @returns KiB, or undefined once the process is gone.
   */
  peakRssKib(): number | undefined {
    try {
      const status = Deno.readTextFileSync(`/proc/${this.pid}/status`);
      const match = status.match(/^VmHWM:\s+(\d+) kB/m);
      return match ? Number(match[1]) : undefined;
    } catch {
      return undefined;
    }
  }
}

/** Options of {@linkcode startClusterInfra}. */
export interface ClusterInfraOptions {
  /** Allocatable pods of the fake Node. @default {"500"} */
  nodePods?: string;
  /** Faults by pod name for the node agent. @default {{}} */
  faults?: Record<string, NodeAgentFault>;
  /** Shortest time between two status writes of one pod by the node agent, ms. @default {100} */
  statusIntervalMs?: number;
  /** More control plane options. @default {{}} */
  controlPlane?: Omit<ControlPlaneOptions, "nodes" | "nodePods">;
  /**
   * Wraps the node agent's host runtime (for example to bound how many containers run at once).
   * @default {none}
   */
  wrapRuntime?: (inner: ContainerRuntime) => ContainerRuntime;
}

/** Database server, control plane and node agent, shared by deployments. */
export interface ClusterInfra {
  /** The temp dir of everything (logs, storage). */
  readonly dir: string;
  /** The folder under which every deployment's `file://` storage lives (shared with pods). */
  readonly filesRoot: string;
  /** The PostgreSQL server. */
  readonly postgres: PostgresCluster;
  /** The control plane. */
  readonly controlPlane: ControlPlane;
  /** The node agent. */
  readonly nodeAgent: NodeAgent;
  /** Admin clients of the apiserver. */
  readonly admin: { core: k8s.CoreV1Api; rbac: k8s.RbacAuthorizationV1Api };
  /** Stops the node agent, the control plane, PostgreSQL; removes the temp dir. */
  stop(): Promise<void>;
}

/**
 * Starts PostgreSQL, the control plane with one fake Node (room for many pods) and the node
 * agent. The storage root is shared with every pod at `/planetary/host<path>`, as
 * `planetary serve` shares `--file-allow` folders.
 *
 * @param options Node capacity and faults.
 * @returns The running infrastructure.
 */
export async function startClusterInfra(options: ClusterInfraOptions = {}): Promise<ClusterInfra> {
  const {
    nodePods = "500",
    faults = {},
    statusIntervalMs = 100,
    controlPlane = {},
    wrapRuntime,
  } = options;
  const dir = await Deno.makeTempDir({ prefix: "planetary-cluster-" });
  const filesRoot = `${dir}/files`;
  await Deno.mkdir(filesRoot);
  const stops: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const fn of stops.reverse()) await fn().catch((e) => console.error(e));
    stops.length = 0;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const [postgres, cp] = await Promise.all([
      startPostgres(),
      startControlPlane({
        nodes: ["node-1"],
        // requests of every task pod fit many times over: only the pods count limits
        nodeCpu: "4000",
        nodeMemory: "16000Gi",
        nodePods,
        ...controlPlane,
      }),
    ]);
    stops.push(() => postgres.stop());
    stops.push(() => cp.stop());
    const denoDir = hostDenoDir();
    const sharedHostPaths: SharedHostPath[] = [
      ...(denoDir ? [{ hostPath: denoDir, containerPath: CONTAINER_DENO_DIR }] : []),
      { hostPath: REPO, containerPath: CONTAINER_SOURCE_DIR, readOnly: true },
      { hostPath: filesRoot, containerPath: `${HOST_FILES_ROOT}${filesRoot}` },
    ];
    const nodeAgent = await startNodeAgent({
      kubeconfigPath: cp.adminKubeconfigPath,
      nodeNames: cp.nodeNames,
      workDir: `${dir}/agent`,
      statusIntervalMs,
      faults,
      sharedHostPaths,
      ...(wrapRuntime
        ? {
          runtime: wrapRuntime(
            new HostRuntime({ probeDir: `${dir}/agent`, sharedHostPaths }),
          ),
        }
        : {}),
    });
    stops.push(() => nodeAgent.stop());
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cp.adminKubeconfigPath);
    const admin = {
      core: kc.makeApiClient(k8s.CoreV1Api),
      rbac: kc.makeApiClient(k8s.RbacAuthorizationV1Api),
    };
    return { dir, filesRoot, postgres, controlPlane: cp, nodeAgent, admin, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Options of {@linkcode startPlanetary}. */
export interface PlanetaryOptions {
  /** Namespace of the task pods (created, labeled, Role bound). @default {"planetary-tasks"} */
  namespace?: string;
  /** Orchestrator replicas. @default {2} */
  orchestrators?: number;
  /** `--max-tasks` of each orchestrator. @default {64} */
  maxTasks?: number;
  /** `--lease-ms` of each orchestrator. @default {3000} */
  leaseMs?: number;
  /** More monitor flags. @default {short timeouts: interval 1 s, pull 2 s, pending 3 s} */
  monitorArgs?: string[];
  /** More pod builder settings. @default {{}} */
  podConfig?: PodBuilderConfig;
  /** More orchestrator flags (e.g. `--keep-finished-pods`). @default {[]} */
  orchestratorArgs?: string[];
}

/** One running deployment of Planetary on the test cluster. */
export interface PlanetaryCluster {
  /** The API's base URL. */
  readonly url: string;
  /** A client of the API. */
  readonly client: TesClient;
  /** The namespace of the task pods. */
  readonly namespace: string;
  /** The folder `file://` inputs and outputs of this deployment may use. */
  readonly storageDir: string;
  /**
   * The `file://` URL of a path inside the storage folder.
   *
   * @param relativePath Path relative to the storage folder.
   */
  fileUrl(relativePath: string): string;
  /** The database URL. */
  readonly databaseUrl: string;
  /** The current orchestrator processes (undefined while one is stopped). */
  readonly orchestrators: readonly (ServiceProcess | undefined)[];
  /** The API process. */
  readonly api: ServiceProcess;
  /** The monitor process. */
  readonly monitor: ServiceProcess;
  /**
   * Stops orchestrator `i` (0-based) with `signal` and waits for its exit.
   *
   * @param i Replica index.
   * @param signal The signal.
   */
  killOrchestrator(i: number, signal: "SIGTERM" | "SIGKILL"): Promise<Deno.CommandStatus>;
  /**
   * Starts orchestrator `i` again (same owner id) and waits until it runs.
   *
   * @param i Replica index.
   */
  startOrchestrator(i: number): Promise<void>;
  /** The control plane. */
  readonly controlPlane: ControlPlane;
  /** The node agent. */
  readonly nodeAgent: NodeAgent;
  /** The infrastructure. */
  readonly infra: ClusterInfra;
  /** The logs of every service of this deployment, for a failing test. */
  logs(): string;
  /** Stops the services (and the infrastructure when it was started for this deployment). */
  stop(): Promise<void>;
}

async function setUpNamespace(infra: ClusterInfra, namespace: string): Promise<void> {
  const { core, rbac } = infra.admin;
  await core.createNamespace({
    body: {
      metadata: {
        name: namespace,
        labels: { "pod-security.kubernetes.io/enforce": "baseline" },
      },
    },
  });
  const text = (await Deno.readTextFile(ROLE_FILE)).replaceAll("NAMESPACE", namespace);
  for (const doc of parseAllDocuments(text)) {
    const object = doc.toJS() as { kind: string };
    if (object.kind === "Role") {
      await rbac.createNamespacedRole({ namespace, body: object as k8s.V1Role });
    } else {
      await rbac.createNamespacedRoleBinding({ namespace, body: object as k8s.V1RoleBinding });
    }
  }
  // pods can be created once the namespace has its default ServiceAccount
  await pollUntil(`the default ServiceAccount of ${namespace}`, 60_000, async () => {
    await core.readNamespacedServiceAccount({ name: "default", namespace });
    return true;
  });
}

/**
 * Deploys Planetary on running infrastructure: a database, the namespace with its Role,
 * `planetary-api migrate`, the API, the orchestrators and the monitor.
 *
 * @param infra From {@linkcode startClusterInfra}.
 * @param options Namespace, replicas and limits.
 * @returns The running deployment; `stop()` stops its services only.
 * @throws {Error} When a service fails to start (with its log).
 */
export async function startPlanetary(
  infra: ClusterInfra,
  options: PlanetaryOptions = {},
): Promise<PlanetaryCluster> {
  const {
    namespace = TASK_NAMESPACE,
    orchestrators: replicas = 2,
    maxTasks = 64,
    leaseMs = 3000,
    monitorArgs = ["--interval-s", "1", "--image-pull-timeout-s", "2", "--pending-timeout-s", "3"],
    podConfig = {},
    orchestratorArgs: extraOrchestratorArgs = [],
  } = options;
  const cp = infra.controlPlane;
  const dir = `${infra.dir}/${namespace}`;
  const storageDir = `${infra.filesRoot}/${namespace}`;
  await Deno.mkdir(storageDir, { recursive: true });
  await Deno.mkdir(dir, { recursive: true });
  await setUpNamespace(infra, namespace);
  const databaseUrl = await createDatabase(infra.postgres, `planetary_${namespace}`);
  const podConfigPath = `${dir}/pod-config.json`;
  await Deno.writeTextFile(
    podConfigPath,
    JSON.stringify(
      {
        transporterCommand: localTransporterCommand(CONTAINER_SOURCE_DIR),
        ...podConfig,
        transporterEnv: {
          ...(hostDenoDir() ? { DENO_DIR: CONTAINER_DENO_DIR } : {}),
          PLANETARY_FILE_ALLOW_LIST: storageDir,
          PLANETARY_FILE_ROOT: HOST_FILES_ROOT,
          ...podConfig.transporterEnv,
        },
      } satisfies PodBuilderConfig,
    ),
  );

  const procs: ServiceProcess[] = [];
  const service = (
    name: string,
    script: string,
    permissions: readonly string[],
    args: string[],
  ): ServiceProcess => {
    const proc = new ServiceProcess(name, `${REPO}/cli/${script}`, permissions, args, dir);
    procs.push(proc);
    return proc;
  };
  const orchestrators: (ServiceProcess | undefined)[] = [];
  const orchestratorArgs = (i: number): string[] => [
    "--database-url",
    databaseUrl,
    "--namespace",
    namespace,
    "--kubeconfig",
    cp.userKubeconfigPath,
    "--owner",
    `orch-${i + 1}`,
    "--max-tasks",
    String(maxTasks),
    "--lease-ms",
    String(leaseMs),
    "--pod-config",
    podConfigPath,
    "--health-port",
    "0",
    ...extraOrchestratorArgs,
  ];
  const startOrchestrator = async (i: number): Promise<void> => {
    if (orchestrators[i] && !orchestrators[i].exited) {
      throw new Error(`orch-${i + 1} is still running`);
    }
    const proc = service(
      `orch-${i + 1}${orchestrators[i] ? `-${procs.length}` : ""}`,
      "orchestrator.ts",
      ORCHESTRATOR_PERMISSIONS,
      orchestratorArgs(i),
    );
    orchestrators[i] = proc;
    await proc.waitForLog('"msg":"orchestrator started"');
  };
  const stopServices = async (): Promise<void> => {
    await Promise.all(procs.map((p) => p.kill("SIGTERM")));
  };

  try {
    const migrate = service("migrate", "api.ts", API_PERMISSIONS, [
      "migrate",
      "--database-url",
      databaseUrl,
    ]);
    const migrated = await migrate.status;
    if (!migrated.success) throw new Error(`planetary-api migrate failed:\n${migrate.log()}`);
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    const api = service("api", "api.ts", API_PERMISSIONS, [
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--database-url",
      databaseUrl,
      "--log-requests=false",
    ]);
    const monitor = service("monitor", "monitor.ts", MONITOR_PERMISSIONS, [
      "--database-url",
      databaseUrl,
      "--namespace",
      namespace,
      "--kubeconfig",
      cp.userKubeconfigPath,
      "--health-port",
      "0",
      ...monitorArgs,
    ]);
    await Promise.all([
      ...Array.from({ length: replicas }, (_, i) => startOrchestrator(i)),
      monitor.waitForLog('"msg":"monitor started"'),
      (async () => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          if (api.exited) throw new Error(`the API exited:\n${api.log()}`);
          const ok = await fetch(`${url}/readyz`).then(async (r) => {
            await r.body?.cancel();
            return r.ok;
          }, () => false);
          if (ok) return;
          if (Date.now() > deadline) throw new Error(`the API is not ready:\n${api.log()}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })(),
    ]);
    const client = new TesClient(url);
    return {
      url,
      client,
      namespace,
      storageDir,
      fileUrl: (relativePath) => `file://${storageDir}/${relativePath}`,
      databaseUrl,
      orchestrators,
      api,
      monitor,
      async killOrchestrator(i, signal) {
        const proc = orchestrators[i];
        if (!proc) throw new Error(`no orchestrator ${i}`);
        return await proc.kill(signal);
      },
      startOrchestrator,
      controlPlane: cp,
      nodeAgent: infra.nodeAgent,
      infra,
      logs: () => procs.map((p) => `--- ${p.name} ---\n${p.log()}`).join("\n"),
      stop: stopServices,
    };
  } catch (error) {
    console.error(procs.map((p) => `--- ${p.name} ---\n${p.log()}`).join("\n"));
    await stopServices();
    throw error;
  }
}

/** Options of {@linkcode startPlanetaryCluster}. */
export interface PlanetaryClusterOptions extends PlanetaryOptions, ClusterInfraOptions {}

/**
 * Starts the infrastructure and one deployment on it; `stop()` stops everything.
 *
 * @param options Deployment and infrastructure options.
 * @returns The running deployment.
 * @example
 * ```ts ignore
 * const cluster = await startPlanetaryCluster({ orchestrators: 2 });
 * await cluster.stop();
 * ```
 */
export async function startPlanetaryCluster(
  options: PlanetaryClusterOptions = {},
): Promise<PlanetaryCluster> {
  const infra = await startClusterInfra(options);
  try {
    const planetary = await startPlanetary(infra, options);
    return {
      ...planetary,
      get orchestrators() {
        return planetary.orchestrators;
      },
      async stop() {
        await planetary.stop();
        await infra.stop();
      },
    };
  } catch (error) {
    await infra.stop();
    throw error;
  }
}
