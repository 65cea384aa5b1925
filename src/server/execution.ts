/**
 * The execution half of `planetary serve`: the orchestrator on the `local` backend (or any
 * other backend), with a pod builder configured for this machine.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { Backend } from "../orchestrator/backend.ts";
import type { SharedHostPath } from "../orchestrator/backends/local/host_runtime.ts";
import { LocalBackend } from "../orchestrator/backends/local/local_backend.ts";
import { Orchestrator } from "../orchestrator/orchestrator.ts";
import { buildTaskPod } from "../pod/build_task_pod.ts";
import type { PodBuilderConfig } from "../pod/pod_builder_config.ts";
import type { TaskStore } from "../store/task_store.ts";
import { STORAGE_SECRET_NAME } from "./storage_environment.ts";

/** Where the local backend shows the allow-listed host folders inside task containers. */
const HOST_FILES_ROOT = "/planetary/host";
/**
 * Where the local backend shows Planetary's own source tree (read-only) and the Deno cache in
 * task containers, for the transporter. Under `/planetary`, which no task path may use: at
 * their host paths a task using, say, `/work` or `/root` paths would mount its data volume
 * over them and the transporter could no longer start.
 */
const CONTAINER_SOURCE_DIR = "/planetary/source";
const CONTAINER_DENO_DIR = "/planetary/deno";

/** The V8 and permission flags the transporter runs with under `deno run` (see transporter/main.ts). */
const TRANSPORTER_FLAGS = [
  "--v8-flags=--optimize-for-size",
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
];

/** Options of {@linkcode startExecution}. */
export interface ExecutionOptions {
  /** What runs pods. @default a {@linkcode LocalBackend} in `workDir` */
  backend?: Backend;
  /** Folder of the local backend's pods (volumes, logs). */
  workDir: string;
  /** Pod builder settings; the transporter command defaults to this program's. @default {} */
  pod?: PodBuilderConfig;
  /** Tasks run at once; more wait QUEUED. @default 4 */
  maxConcurrentTasks?: number;
  /**
   * Host directories that `file://` inputs and outputs may use; the local backend shares them
   * with every container so uploads land on this machine.
   * @default [] (no file:// access)
   */
  fileAllowList?: string[];
  /** The orchestrator's identity in claims. @default a random id */
  owner?: string;
  /** How long a claim lasts unless renewed, in ms. @default 30000 */
  leaseMs?: number;
  /** Longest wait between looks for new work, in ms. @default 1000 */
  pollIntervalMs?: number;
  /**
   * Cloud storage settings and credentials for the transporter (see `storageEnvironment`). With
   * the local backend they become its in-memory Secret `planetary-storage`, which the pod builder
   * names in the transporter containers' `envFrom` (`storageSecrets`): executors never see them,
   * and no value enters a pod spec, the database or a log. Ignored with another backend (name
   * its Secrets in `pod.storageSecrets`).
   * @default {} (none)
   */
  storageEnv?: Readonly<Record<string, string>>;
}

/** The running execution side. */
export interface RunningExecution {
  /** The orchestrator. */
  orchestrator: Orchestrator;
  /** The backend it runs pods on. */
  backend: Backend;
  /** Stops the orchestrator, then the backend (the local backend kills its pods). */
  stop(): Promise<void>;
}

/**
 * The command that runs the transporter on this machine: `deno run` of transporter/main.ts when
 * Planetary runs from source, or this same binary's hidden `transporter` command when it was
 * built with `deno compile`.
 *
 * @param sourceDir Where the containers see Planetary's source tree (the folder of
 * `deno.json`). @default its path on this machine
 * @returns The argv prefix; the pod builder appends `inputs|outputs <spec>`.
 * @example
 * ```ts ignore
 * localTransporterCommand(); // ["/usr/bin/deno", "run", "--allow-read", …, "/…/transporter/main.ts"]
 * ```
 */
export function localTransporterCommand(sourceDir?: string): string[] {
  const exec = Deno.execPath();
  const root = sourceDir ?? localSourceDir();
  if (root !== undefined) {
    const main = `${root}/transporter/main.ts`;
    const config = `${root}/deno.json`;
    return [exec, "run", "--quiet", "--no-prompt", ...TRANSPORTER_FLAGS, "--config", config, main];
  }
  return [exec, "transporter"];
}

/** The folder of `deno.json` when Planetary runs from source under `deno`, else undefined. */
function localSourceDir(): string | undefined {
  const here = new URL(import.meta.url);
  const isDeno = /(^|\/)deno(\.exe)?$/.test(Deno.execPath());
  if (here.protocol !== "file:" || !isDeno) return undefined;
  return fileURLToPath(new URL("../..", here)).replace(/\/+$/, "");
}

/** How task containers run on this machine reach Planetary's transporter and `file://` storage. */
export interface HostTransporterSetup {
  /**
   * Host folders to share with every container (the local backend's and the test node agent's
   * host runtime): the Deno cache at `/planetary/deno`, the source tree read-only at
   * `/planetary/source`, and each allow-listed folder under `/planetary/host`.
   */
  sharedHostPaths: SharedHostPath[];
  /** Pod builder settings: the transporter command and environment that match those paths. */
  pod: Pick<PodBuilderConfig, "transporterCommand" | "transporterEnv">;
}

/**
 * The container paths through which task containers run by a host runtime see Planetary's own
 * files. Everything lives under `/planetary`, so it can never shadow a task's paths (a task may
 * well use `/tmp`, `/work` or `$HOME` paths, where the source tree or the storage may be).
 *
 * @param fileAllowList Host folders that `file://` inputs and outputs may use.
 * @returns Shared paths for the host runtime and the matching pod builder settings.
 * @example
 * ```ts ignore
 * const { sharedHostPaths, pod } = hostTransporterSetup(["/srv/data"]);
 * ```
 */
export function hostTransporterSetup(fileAllowList: readonly string[]): HostTransporterSetup {
  const home = Deno.env.get("HOME");
  const denoDir = Deno.env.get("DENO_DIR") ?? (home ? `${home}/.cache/deno` : undefined);
  const sourceDir = localSourceDir();
  return {
    sharedHostPaths: [
      ...(denoDir ? [{ hostPath: denoDir, containerPath: CONTAINER_DENO_DIR }] : []),
      ...(sourceDir
        ? [{ hostPath: sourceDir, containerPath: CONTAINER_SOURCE_DIR, readOnly: true }]
        : []),
      ...fileAllowList.map((hostPath) => ({
        hostPath,
        containerPath: `${HOST_FILES_ROOT}${hostPath === "/" ? "" : hostPath}`,
      })),
    ],
    pod: {
      transporterCommand: localTransporterCommand(sourceDir ? CONTAINER_SOURCE_DIR : undefined),
      transporterEnv: {
        ...(denoDir ? { DENO_DIR: CONTAINER_DENO_DIR } : {}),
        // A compiled `planetary` runs its transporter as itself: V8 reads the transporter's flag
        // (see TRANSPORTER_FLAGS) from the environment there, the server keeps V8's defaults.
        ...(sourceDir ? {} : { DENO_V8_FLAGS: "--optimize-for-size" }),
        ...(fileAllowList.length
          ? {
            PLANETARY_FILE_ALLOW_LIST: fileAllowList.join(":"),
            PLANETARY_FILE_ROOT: HOST_FILES_ROOT,
          }
          : {}),
      },
    },
  };
}

/**
 * Starts the orchestrator on `store`.
 *
 * @param store The task store (the queue).
 * @param options Backend, folders and limits.
 * @returns The running orchestrator and backend.
 * @example
 * ```ts ignore
 * const execution = startExecution(store, { workDir: "/tmp/planetary-work" });
 * await execution.stop();
 * ```
 */
export function startExecution(store: TaskStore, options: ExecutionOptions): RunningExecution {
  const {
    workDir,
    pod = {},
    maxConcurrentTasks = 4,
    fileAllowList = [],
    storageEnv = {},
  } = options;
  const local = options.backend === undefined;
  const setup = hostTransporterSetup(fileAllowList);
  const storageSecret = local && Object.keys(storageEnv).length > 0;
  const backend = options.backend ?? new LocalBackend({
    workDir,
    maxConcurrentPods: maxConcurrentTasks,
    sharedHostPaths: setup.sharedHostPaths,
    ...(storageSecret ? { secrets: { [STORAGE_SECRET_NAME]: storageEnv } } : {}),
  });
  const podConfig: PodBuilderConfig = local
    ? {
      ...setup.pod,
      ...pod,
      transporterEnv: { ...setup.pod.transporterEnv, ...pod.transporterEnv },
      ...(storageSecret
        ? { storageSecrets: [...(pod.storageSecrets ?? []), STORAGE_SECRET_NAME] }
        : {}),
    }
    : {
      transporterCommand: localTransporterCommand(),
      ...pod,
      transporterEnv: {
        ...(fileAllowList.length ? { PLANETARY_FILE_ALLOW_LIST: fileAllowList.join(":") } : {}),
        ...pod.transporterEnv,
      },
    };
  const orchestrator = new Orchestrator({
    store,
    backend,
    buildPod: (task) => buildTaskPod(task, podConfig),
    maxConcurrentTasks,
    ...(options.owner === undefined ? {} : { owner: options.owner }),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
  });
  orchestrator.start();
  return {
    orchestrator,
    backend,
    async stop() {
      await orchestrator.stop();
      await backend.close();
    },
  };
}
