/**
 * The execution half of `planetary serve`: the orchestrator on the `local` backend (or any
 * other backend), with a pod builder configured for this machine.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { Backend } from "../orchestrator/backend.ts";
import {
  type ContainerUser,
  type SharedHostPath,
  UNPRIVILEGED_USER,
} from "../orchestrator/backends/local/host_runtime.ts";
import { LocalBackend } from "../orchestrator/backends/local/local_backend.ts";
import { Orchestrator } from "../orchestrator/orchestrator.ts";
import type { TaskPodObjects } from "../orchestrator/backend.ts";
import { buildTaskPod } from "../pod/build_task_pod.ts";
import { INPUTS_CONTAINER, OUTPUTS_CONTAINER } from "../pod/layout.ts";
import type { PodBuilderConfig } from "../pod/pod_builder_config.ts";
import type { TaskStore } from "../store/task_store.ts";
import type { TesTask } from "../tes/model.ts";
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
/** The only containers that see Planetary's own files: the transporter's. */
const TRANSPORTER_CONTAINERS: readonly string[] = Object.freeze([
  INPUTS_CONTAINER,
  OUTPUTS_CONTAINER,
]);
/** Prefix of the pod volumes of the shared dirs (`planetary-shared-0`, …). */
const SHARED_VOLUME_PREFIX = "planetary-shared-";

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
  /**
   * Host directories that every executor container sees read-write at the SAME path (mounted
   * after the private `/tmp`), and that `file://` inputs and outputs may use. For workflow
   * engines that need a folder shared between client and tasks (Snakemake's working directory,
   * Toil's file job store). Refused when one covers Planetary's own paths.
   * @default [] (none)
   */
  sharedDirs?: string[];
  /**
   * What runs the local backend's containers: `auto` (a working docker engine, else podman,
   * else the host runtime), or one of them by name. @default "auto"
   */
  runtime?: "auto" | "host" | "docker" | "podman";
  /**
   * The user and group that executor containers of the local backend's host runtime run as,
   * always with no capabilities. Give the owner of the shared dirs when tasks must write there
   * as the workflow engine does.
   * @default {see {@linkcode defaultTaskUser}: the owner of the first shared dir when that is
   * not root, else 65534:65534 (`nobody`)}
   */
  taskUser?: { uid: number; gid: number };
  /**
   * Longest a task's pod may run, in seconds (`activeDeadlineSeconds`, honoured by the local
   * backend as by Kubernetes); a task over it ends SYSTEM_ERROR saying so.
   * @default undefined (no limit)
   */
  maxRunSeconds?: number;
  /**
   * Most live tasks (claimed and not finished) of one task owner; more of the owner's tasks
   * stay QUEUED, in their place, while other owners' tasks run (see `ClaimOptions`). Tasks
   * without an owner (no authentication) count as one owner. `0`: no limit.
   * @default 0
   */
  maxRunningPerOwner?: number;
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
  /**
   * Called with the name of the local backend's runtime (`host`, `docker`, `podman`) once it
   * is chosen, before any task is claimed. When it throws, no task runs and
   * {@linkcode RunningExecution.ready} rejects with that error. Not called with another
   * backend, or when no runtime works here (tasks then fail with the reason).
   * @default undefined (no check)
   */
  checkRuntime?: (runtimeName: string) => void;
}

/** The running execution side. */
export interface RunningExecution {
  /** The orchestrator. */
  orchestrator: Orchestrator;
  /** The backend it runs pods on. */
  backend: Backend;
  /**
   * Resolves once the orchestrator claims tasks (after
   * {@linkcode ExecutionOptions.checkRuntime}); rejects with the check's error.
   */
  ready: Promise<void>;
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
   * Host folders to share with the transporter containers (`inputs` and `outputs`) of the
   * local backend's and the test node agent's host runtime, and with no executor: the Deno
   * cache read-only at `/planetary/deno`, the source tree read-only at `/planetary/source`, and
   * each allow-listed folder (read-write) under `/planetary/host`. Nothing that a later process
   * runs is writable by a task, and executors see none of Planetary's own files.
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
  const containers = TRANSPORTER_CONTAINERS;
  return {
    sharedHostPaths: [
      ...(denoDir
        ? [{ hostPath: denoDir, containerPath: CONTAINER_DENO_DIR, readOnly: true, containers }]
        : []),
      ...(sourceDir
        ? [{ hostPath: sourceDir, containerPath: CONTAINER_SOURCE_DIR, readOnly: true, containers }]
        : []),
      ...fileAllowList.map((hostPath) => ({
        hostPath,
        containerPath: `${HOST_FILES_ROOT}${hostPath === "/" ? "" : hostPath}`,
        containers,
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
    fileAllowList: allowed = [],
    storageEnv = {},
  } = options;
  const local = options.backend === undefined;
  const sharedDirs = checkSharedDirs(options.sharedDirs ?? [], workDir);
  if (sharedDirs.length > 0 && !local) {
    throw new Error(
      "Cannot use shared dirs with this backend: they are bind mounts of this machine's " +
        "folders and need the local backend; drop the shared dirs or use the local backend",
    );
  }
  const fileAllowList = [...allowed, ...sharedDirs.filter((dir) => !allowed.includes(dir))];
  const setup = hostTransporterSetup(fileAllowList);
  const storageSecret = local && Object.keys(storageEnv).length > 0;
  const backend = options.backend ?? new LocalBackend({
    workDir,
    maxConcurrentPods: maxConcurrentTasks,
    sharedHostPaths: setup.sharedHostPaths,
    hostUser: options.taskUser ?? defaultTaskUser(sharedDirs),
    ...(options.runtime === undefined ? {} : { runtime: options.runtime }),
    ...(storageSecret ? { secrets: { [STORAGE_SECRET_NAME]: storageEnv } } : {}),
  });
  const deadline = options.maxRunSeconds === undefined
    ? {}
    : { activeDeadlineSeconds: options.maxRunSeconds };
  const podConfig: PodBuilderConfig = local
    ? {
      ...deadline,
      ...setup.pod,
      ...pod,
      transporterEnv: { ...setup.pod.transporterEnv, ...pod.transporterEnv },
      ...(storageSecret
        ? { storageSecrets: [...(pod.storageSecrets ?? []), STORAGE_SECRET_NAME] }
        : {}),
    }
    : {
      ...deadline,
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
    buildPod: sharedDirs.length === 0
      ? (task) => buildTaskPod(task, podConfig)
      : (task) =>
        withSharedDirs(buildTaskPod(withoutSharedCopies(task, sharedDirs), podConfig), sharedDirs),
    maxConcurrentTasks,
    ...(options.owner === undefined ? {} : { owner: options.owner }),
    ...(options.maxRunningPerOwner === undefined
      ? {}
      : { maxRunningPerOwner: options.maxRunningPerOwner }),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
  });
  const { checkRuntime } = options;
  let stopped = false;
  const ready = (async () => {
    if (checkRuntime !== undefined && backend instanceof LocalBackend) {
      const runtime = await backend.runtime().catch(() => undefined);
      if (runtime !== undefined) checkRuntime(runtime.name);
    }
    if (!stopped) orchestrator.start();
  })();
  return {
    orchestrator,
    backend,
    ready,
    async stop() {
      stopped = true;
      await ready.catch(() => {});
      await orchestrator.stop();
      await backend.close();
    },
  };
}

/**
 * The user that executors of the host runtime run as when {@linkcode ExecutionOptions.taskUser}
 * is not given: the owner of the first shared dir when that is not root (the workflow engine's
 * user, so that tasks can write where it does), otherwise 65534:65534 (`nobody`). Never root
 * by default: root without capabilities still owns the host's root-owned files.
 *
 * @param sharedDirs The checked shared dirs (see {@linkcode checkSharedDirs}).
 * @returns The user and group.
 * @example
 * ```ts ignore
 * defaultTaskUser([]); // { uid: 65534, gid: 65534 }
 * ```
 */
export function defaultTaskUser(sharedDirs: readonly string[]): ContainerUser {
  const first = sharedDirs[0];
  if (first !== undefined) {
    try {
      const { uid, gid } = Deno.statSync(first);
      if (uid !== null && gid !== null && uid !== 0) return { uid, gid };
    } catch {
      // checked before: gone since, use the default
    }
  }
  return { ...UNPRIVILEGED_USER };
}

/**
 * Checks the shared dirs of {@linkcode ExecutionOptions.sharedDirs}: each must be an absolute
 * path of an existing directory that covers none of Planetary's own folders (`/planetary`,
 * `/`, the Deno cache, the source tree, the work folder), and lies inside none of them.
 *
 * @param dirs The shared dirs as given.
 * @param workDir The local backend's work folder.
 * @returns Them, normalized and resolved (symbolic links followed), without duplicates.
 * @throws {Error} Naming the first refused folder, why, and what to do.
 * @example
 * ```ts ignore
 * checkSharedDirs(["/srv/shared"], "/var/lib/planetary/work"); // ["/srv/shared"]
 * checkSharedDirs(["/"], "/var/lib/planetary/work"); // throws
 * ```
 */
export function checkSharedDirs(dirs: readonly string[], workDir: string): string[] {
  const home = Deno.env.get("HOME");
  const denoDir = Deno.env.get("DENO_DIR") ?? (home ? `${home}/.cache/deno` : undefined);
  const sourceDir = localSourceDir();
  const own: [string, string][] = [
    ["/planetary", "Planetary's folder inside task containers"],
    [workDir, "the local backend's work folder (task volumes)"],
  ];
  if (denoDir) own.push([denoDir, "the Deno cache"]);
  if (sourceDir) own.push([sourceDir, "Planetary's source tree"]);
  const result: string[] = [];
  for (const dir of dirs) {
    if (!dir.startsWith("/")) {
      throw new Error(`Cannot share "${dir}" with tasks: a shared dir must be an absolute path`);
    }
    let real: string;
    try {
      real = Deno.realPathSync(dir);
      if (!Deno.statSync(real).isDirectory) throw new Error("not a directory");
    } catch (error) {
      throw new Error(
        `Cannot share "${dir}" with tasks: it is not an existing directory ` +
          `(${error instanceof Error ? error.message : String(error)}); create it first`,
      );
    }
    for (const candidate of new Set([normalize(dir), real])) {
      if (candidate === "/") {
        throw new Error(
          `Cannot share "${dir}" with tasks: it is the root folder, which holds Planetary's own ` +
            "folders; share a folder made for the workflow instead",
        );
      }
      for (const [path, what] of own) {
        for (const p of new Set([normalize(path), realOr(path)])) {
          if (within(p, candidate) || within(candidate, p)) {
            throw new Error(
              `Cannot share "${dir}" with tasks: it ${
                within(p, candidate) ? "covers" : "lies inside"
              } ${what} (${p}); share a folder outside it`,
            );
          }
        }
      }
    }
    if (!result.includes(real)) result.push(real);
  }
  return result;
}

/** Normalizes an absolute path lexically (no `.`, `..`, `//`, trailing `/`). */
function normalize(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}

/** The real path of `path`, or its normalized form when it does not exist. */
function realOr(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return normalize(path);
  }
}

/** Whether `path` is `dir` or inside it (both normalized). */
function within(path: string, dir: string): boolean {
  return path === dir || dir === "/" || path.startsWith(`${dir}/`);
}

/** The path of a `file://` URL, or undefined for another URL. */
function filePath(url: string | undefined): string | undefined {
  if (url === undefined || !url.startsWith("file://")) return undefined;
  try {
    return normalize(decodeURIComponent(new URL(url).pathname));
  } catch {
    return undefined;
  }
}

/**
 * Drops the inputs and outputs that would copy a file of a shared dir onto itself: `url`
 * `file://P` with `path` P inside a shared dir (Toil mounts its file job store so). Executors
 * see P as it is; copying it into the task's volume would hide the real one from them.
 */
function withoutSharedCopies<T extends TesTask>(task: T, sharedDirs: readonly string[]): T {
  const inPlace = (entry: { url?: string; path: string; content?: string }): boolean => {
    const path = normalize(entry.path);
    return entry.content === undefined && filePath(entry.url) === path &&
      sharedDirs.some((dir) => within(path, dir));
  };
  return {
    ...task,
    ...(task.inputs ? { inputs: task.inputs.filter((input) => !inPlace(input)) } : {}),
    ...(task.outputs ? { outputs: task.outputs.filter((output) => !inPlace(output)) } : {}),
  };
}

/**
 * Adds each shared dir to a task pod as a `hostPath` volume mounted read-write at the same path
 * in every executor container (not the transporter's, which reach them through `file://`).
 * Listed before the task's own mounts: the pod runner mounts shallower paths first (so after
 * the private `/tmp`), and a task input or output inside a shared dir still wins there.
 */
function withSharedDirs(objects: TaskPodObjects, sharedDirs: readonly string[]): TaskPodObjects {
  const spec = objects.pod.spec;
  if (!spec) return objects;
  const mounts = sharedDirs.map((dir, i) => ({
    name: `${SHARED_VOLUME_PREFIX}${i}`,
    mountPath: dir,
  }));
  const executor = (name: string): boolean =>
    name !== INPUTS_CONTAINER && name !== OUTPUTS_CONTAINER;
  const addMounts = <C extends { name: string; volumeMounts?: unknown[] }>(c: C): C =>
    executor(c.name) ? { ...c, volumeMounts: [...mounts, ...(c.volumeMounts ?? [])] } : c;
  return {
    ...objects,
    pod: {
      ...objects.pod,
      spec: {
        ...spec,
        volumes: [
          ...(spec.volumes ?? []),
          ...sharedDirs.map((path, i) => ({
            name: `${SHARED_VOLUME_PREFIX}${i}`,
            hostPath: { path, type: "Directory" },
          })),
        ],
        ...(spec.initContainers ? { initContainers: spec.initContainers.map(addMounts) } : {}),
        containers: spec.containers.map(addMounts),
      },
    },
  };
}
