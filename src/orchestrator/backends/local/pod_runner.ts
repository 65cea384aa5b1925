/**
 * Runs one pod on this machine the way a kubelet would: materializes its volumes, runs each
 * init container to completion in order, then the main containers side by side, and reports a
 * pod-shaped status (phase, conditions, container statuses) after every change. Restart policy
 * is always treated as `Never`.
 *
 * @module
 */
import type {
  V1ConfigMap,
  V1Container,
  V1ContainerStatus,
  V1KeyToPath,
  V1Pod,
  V1PodCondition,
  V1PodStatus,
  V1Volume,
} from "@kubernetes/client-node";
import type {
  ContainerExit,
  ContainerRunSpec,
  ContainerRuntime,
  ResolvedMount,
} from "./container_runtime.ts";
import { readLogTail } from "./container_log.ts";
import { quantityBytes } from "./docker_runtime.ts";
import type { PodOwnedMount } from "./host_runtime.ts";
import { LocalBackendError } from "./local_backend_error.ts";
export type {
  ContainerExit,
  ContainerRunSpec,
  ContainerRuntime,
  ResolvedMount,
} from "./container_runtime.ts";

/** Options of {@linkcode runPod}. */
export interface RunPodOptions {
  /** The pod to run (not modified). */
  pod: V1Pod;
  /** The ConfigMaps the pod may mount or read, by name. */
  configMaps: ReadonlyMap<string, V1ConfigMap>;
  /**
   * The Secrets containers may read through `envFrom` (`secretRef`) and `secretKeyRef`, by
   * name: each is its keys and (decoded) values.
   *
   * @default {new Map()}
   */
  secrets?: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** A directory of this pod only; volumes, logs and scratch files go there. */
  podDir: string;
  /** What starts the containers. */
  runtime: ContainerRuntime;
  /** Aborting it kills the running container and stops the pod where it is. */
  signal: AbortSignal;
  /** Receives the pod status after every change (a copy the receiver may keep). */
  onStatus: (status: V1PodStatus) => void;
  /**
   * The clock.
   *
   * @default {() => new Date()}
   */
  now?: () => Date;
  /**
   * Time between two passes that measure the pod's local storage against its limits
   * (`emptyDir.sizeLimit`, containers' `ephemeral-storage` limits), as the kubelet's eviction
   * manager does. A pass also runs each time a container ends.
   *
   * @default {10000}
   */
  storageCheckIntervalMs?: number;
  /**
   * Most files and folders one measuring pass looks at (`lstat`, links not followed); a larger
   * tree is measured over several passes.
   *
   * @default {20000}
   */
  storageCheckMaxEntries?: number;
}

/**
 * A runtime that can tell where a container's writable layer lives on this machine (a
 * container engine's overlay upper directory), so that the pod runner counts it against the
 * container's `ephemeral-storage` limit.
 */
export interface WritableLayerRuntime extends ContainerRuntime {
  /**
   * The writable layer of a running container.
   *
   * @param podName The pod.
   * @param containerName The container.
   * @returns Its directory, or undefined when it is not running or has none.
   */
  writableLayer(podName: string, containerName: string): Promise<string | undefined>;
}

/** Default of {@linkcode RunPodOptions.storageCheckIntervalMs}. */
export const STORAGE_CHECK_INTERVAL_MS = 10_000;
/** Default of {@linkcode RunPodOptions.storageCheckMaxEntries}. */
export const STORAGE_CHECK_MAX_ENTRIES = 20_000;

/** Largest termination message kept, in bytes (as the kubelet). */
const MAX_MESSAGE_BYTES = 4096;
/** With `FallbackToLogsOnError`: at most this many last log lines… */
const FALLBACK_LINES = 80;
/** …and at most this many bytes of them. */
const FALLBACK_BYTES = 2048;
/** Default `terminationMessagePath`. */
const DEFAULT_TERMINATION_PATH = "/dev/termination-log";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The status of a pod that waits to be started (no free slot yet, or not yet picked up).
 *
 * @param now The current time.
 * @param reason Why it waits, when it is not scheduled yet (then `PodScheduled` is False).
 * @returns A `Pending` status.
 */
export function pendingPodStatus(now: Date, reason?: string): V1PodStatus {
  return {
    phase: "Pending",
    conditions: [
      reason
        ? {
          type: "PodScheduled",
          status: "False",
          reason: "Unschedulable",
          message: reason,
          lastTransitionTime: now,
        }
        : { type: "PodScheduled", status: "True", lastTransitionTime: now },
    ],
    qosClass: "BestEffort",
  };
}

/**
 * The path of a container's log file inside a pod directory.
 *
 * @param podDir The pod's directory.
 * @param container The container name.
 * @returns The log file's path.
 */
export function containerLogPath(podDir: string, container: string): string {
  return `${podDir}/logs/${container}.log`;
}

/**
 * Runs a pod to its end (or until `signal` aborts) and reports its status as a kubelet would.
 * It never throws for a problem of the pod: a volume, env reference or container that cannot
 * be set up fails the pod with a reason and a message.
 *
 * @param options See {@linkcode RunPodOptions}.
 * @returns The last status.
 * @example
 * ```ts ignore
 * const status = await runPod({ pod, configMaps, podDir, runtime, signal, onStatus: console.log });
 * console.log(status.phase); // "Succeeded"
 * ```
 */
export async function runPod(options: RunPodOptions): Promise<V1PodStatus> {
  const {
    pod,
    configMaps,
    secrets = new Map(),
    podDir,
    runtime,
    signal,
    onStatus,
    now = () => new Date(),
    storageCheckIntervalMs = STORAGE_CHECK_INTERVAL_MS,
    storageCheckMaxEntries = STORAGE_CHECK_MAX_ENTRIES,
  } = options;
  const spec = pod.spec;
  const initContainers = spec?.initContainers ?? [];
  const containers = spec?.containers ?? [];
  const started = now();
  const waiting = (c: V1Container): V1ContainerStatus => ({
    name: c.name,
    image: c.image ?? "",
    imageID: "",
    ready: false,
    restartCount: 0,
    started: false,
    state: { waiting: { reason: "PodInitializing" } },
  });
  const status: V1PodStatus = {
    phase: "Pending",
    startTime: started,
    hostIP: "127.0.0.1",
    podIP: "127.0.0.1",
    qosClass: "BestEffort",
    conditions: [
      { type: "PodScheduled", status: "True", lastTransitionTime: started },
      condition("Initialized", initContainers.length === 0, started, "ContainersNotInitialized"),
      condition("ContainersReady", false, started, "ContainersNotReady"),
      condition("Ready", false, started, "ContainersNotReady"),
    ],
    initContainerStatuses: initContainers.map(waiting),
    containerStatuses: containers.map((c) => ({
      ...waiting(c),
      state: {
        waiting: { reason: initContainers.length ? "PodInitializing" : "ContainerCreating" },
      },
    })),
  };
  const publish = (): void => onStatus(structuredClone(status));
  const setCondition = (type: string, ok: boolean, reason?: string, message?: string): void => {
    const at = now();
    status.conditions = (status.conditions ?? []).map((c) =>
      c.type === type && c.status !== (ok ? "True" : "False")
        ? condition(type, ok, at, reason, message)
        : c
    );
  };
  const fail = (reason: string, message: string): V1PodStatus => {
    status.phase = "Failed";
    status.reason = reason;
    status.message = message;
    publish();
    return structuredClone(status);
  };
  publish();

  for (const c of [...initContainers, ...containers]) {
    if (!DNS_LABEL.test(c.name)) return fail("InvalidContainer", `bad container name "${c.name}"`);
  }
  let volumes: Map<string, MaterializedVolume>;
  try {
    volumes = await materializeVolumes(spec?.volumes ?? [], configMaps, podDir);
  } catch (error) {
    return fail("FailedMount", error instanceof Error ? error.message : String(error));
  }
  await Deno.mkdir(`${podDir}/logs`, { recursive: true });

  // Local storage limits, enforced as the kubelet's eviction manager does: the pod's volumes
  // (and containers' scratch) are measured; over a limit, the pod is evicted (killed, Failed).
  const evict = new AbortController();
  const podSignal = AbortSignal.any([signal, evict.signal]);
  let eviction: string | undefined;
  const storage = StorageWatch.of(pod, volumes, {
    runtime,
    intervalMs: storageCheckIntervalMs,
    maxEntries: storageCheckMaxEntries,
    onExceeded: (message) => {
      if (eviction !== undefined || signal.aborted) return;
      eviction = message;
      evict.abort();
    },
  });
  const evicted = (): V1PodStatus => {
    const at = now();
    setCondition("ContainersReady", false, "PodFailed");
    setCondition("Ready", false, "PodFailed");
    status.conditions = [
      ...(status.conditions ?? []).filter((c) => c.type !== "DisruptionTarget"),
      {
        type: "DisruptionTarget",
        status: "True",
        reason: "TerminationByKubelet",
        message: eviction ?? "",
        lastTransitionTime: at,
      },
    ];
    return fail("Evicted", eviction ?? "");
  };
  try {
    const runOne = async (c: V1Container, target: V1ContainerStatus): Promise<number> => {
      if (eviction !== undefined) return -1;
      let prepared: PreparedContainer;
      try {
        prepared = await prepareContainer(c, pod, volumes, { configMaps, secrets }, podDir);
      } catch (error) {
        target.state = {
          waiting: {
            reason: "CreateContainerConfigError",
            message: error instanceof Error ? error.message : String(error),
          },
        };
        publish();
        return -1;
      }
      storage?.track(c.name, prepared.spec);
      let startedAt = now();
      // A runtime that fails while the container runs (a full disk under its log) has stopped
      // it: the container ends in Error with the reason as its message, the pod goes on.
      let runtimeError: string | undefined;
      let waitingReason: string | undefined;
      const exit = await runtime.run(prepared.spec, podSignal, () => {
        startedAt = now();
        target.state = { running: { startedAt } };
        target.started = true;
        target.ready = !status.initContainerStatuses?.includes(target);
        if (target.ready && containers.length > 0) {
          const allReady = (status.containerStatuses ?? []).every((s) => s.ready);
          setCondition("ContainersReady", allReady);
          setCondition("Ready", allReady);
        }
        publish();
      }).catch((error: unknown): ContainerExit => {
        runtimeError = error instanceof Error ? error.message : String(error);
        // An image that cannot be had: the container waits as a kubelet's would.
        if (error instanceof LocalBackendError) waitingReason = WAITING_REASONS[error.code];
        return { exitCode: 137 };
      });
      if (signal.aborted) return exit.exitCode;
      if (waitingReason !== undefined && !podSignal.aborted) {
        target.state = { waiting: { reason: waitingReason, message: runtimeError ?? "" } };
        publish();
        return -2;
      }
      if (podSignal.aborted) {
        // Evicted while it ran: killed, as the kubelet kills the containers of an evicted pod.
        target.ready = false;
        target.started = false;
        target.state = {
          terminated: {
            exitCode: 137,
            signal: 9,
            reason: "Error",
            message: `killed: the pod was evicted: ${eviction ?? ""}`,
            startedAt,
            finishedAt: now(),
          },
        };
        publish();
        return 137;
      }
      let message = exit.startError ?? runtimeError ?? await readMessage(prepared.terminationFile);
      if (
        !message && exit.exitCode !== 0 && c.terminationMessagePolicy === "FallbackToLogsOnError"
      ) {
        message = await logTail(prepared.spec.logFile);
      }
      target.ready = false;
      target.started = false;
      target.state = {
        terminated: {
          exitCode: exit.exitCode,
          reason: exit.startError
            ? "StartError"
            : exit.reason ?? (exit.exitCode === 0 ? "Completed" : "Error"),
          startedAt,
          finishedAt: now(),
          ...(exit.signal !== undefined ? { signal: exit.signal } : {}),
          ...(message ? { message } : {}),
        },
      };
      publish();
      // Measured as each container ends, not only every interval: what a short container wrote
      // is then always seen before the next one starts.
      await storage?.checkNow();
      return exit.startError ? Math.max(exit.exitCode, 1) : exit.exitCode;
    };

    const initStatuses = status.initContainerStatuses ?? [];
    for (const [i, c] of initContainers.entries()) {
      if (signal.aborted) return structuredClone(status);
      if (eviction !== undefined) return evicted();
      const code = await runOne(c, initStatuses[i]!);
      if (signal.aborted) return structuredClone(status);
      if (eviction !== undefined) return evicted();
      if (code !== 0) {
        const incomplete = initContainers.slice(i).map((x) => x.name).join(" ");
        setCondition(
          "Initialized",
          false,
          "ContainersNotInitialized",
          `containers with incomplete status: [${incomplete}]`,
        );
        const waiting = initStatuses[i]?.state?.waiting?.reason;
        return fail(
          code === -2 && waiting
            ? waiting
            : code < 0
            ? "CreateContainerConfigError"
            : "InitContainerFailed",
          `init container "${c.name}" failed` + (code > 0 ? ` with exit code ${code}` : "") +
            (code === -2 && waiting ? `: ${waiting}` : ""),
        );
      }
    }
    if (initContainers.length > 0) setCondition("Initialized", true);
    status.phase = "Running";
    for (const s of status.containerStatuses ?? []) {
      s.state = { waiting: { reason: "ContainerCreating" } };
    }
    publish();
    const mainStatuses = status.containerStatuses ?? [];
    const codes = await Promise.all(containers.map((c, i) => runOne(c, mainStatuses[i]!)));
    if (signal.aborted) return structuredClone(status);
    if (eviction !== undefined) return evicted();
    setCondition("ContainersReady", false, "PodCompleted");
    setCondition("Ready", false, "PodCompleted");
    status.phase = codes.every((code) => code === 0) ? "Succeeded" : "Failed";
    publish();
    return structuredClone(status);
  } finally {
    storage?.stop();
  }
}

/** The container waiting reason of each runtime error that means "the image cannot be had". */
const WAITING_REASONS: Partial<Record<string, string>> = {
  IMAGE_PULL_FAILED: "ErrImagePull",
  INVALID_IMAGE_NAME: "InvalidImageName",
};

function condition(
  type: string,
  ok: boolean,
  at: Date,
  reason?: string,
  message?: string,
): V1PodCondition {
  return {
    type,
    status: ok ? "True" : "False",
    lastTransitionTime: at,
    ...(!ok && reason ? { reason } : {}),
    ...(!ok && message ? { message } : {}),
  };
}

interface MaterializedVolume {
  path: string;
  readOnly: boolean;
  /** An `emptyDir`: the pod's own folder, which the pod runner may hand to a container's user. */
  owned?: boolean;
}

async function materializeVolumes(
  volumes: V1Volume[],
  configMaps: ReadonlyMap<string, V1ConfigMap>,
  podDir: string,
): Promise<Map<string, MaterializedVolume>> {
  const result = new Map<string, MaterializedVolume>();
  // Only the server's user may enter the pod's folder: containers reach their volumes through
  // bind mounts, never through its path (the host runtime shows them the host's file system).
  await Deno.chmod(podDir, 0o700);
  for (const volume of volumes) {
    if (!DNS_LABEL.test(volume.name)) throw new Error(`bad volume name "${volume.name}"`);
    const path = `${podDir}/volumes/${volume.name}`;
    if (volume.emptyDir) {
      await Deno.mkdir(path, { recursive: true });
      await Deno.chmod(path, 0o777);
      result.set(volume.name, { path, readOnly: false, owned: true });
    } else if (volume.configMap) {
      const source = volume.configMap;
      const configMap = configMaps.get(source.name ?? "");
      if (!configMap) {
        if (source.optional) {
          await Deno.mkdir(path, { recursive: true });
          result.set(volume.name, { path, readOnly: true });
          continue;
        }
        throw new Error(
          `MountVolume.SetUp failed for volume "${volume.name}": configmap "${source.name}" not found`,
        );
      }
      const data = new Map<string, Uint8Array>();
      for (const [key, value] of Object.entries(configMap.data ?? {})) {
        data.set(key, new TextEncoder().encode(value));
      }
      for (const [key, value] of Object.entries(configMap.binaryData ?? {})) {
        data.set(key, Uint8Array.from(atob(value), (ch) => ch.charCodeAt(0)));
      }
      const items: V1KeyToPath[] = source.items ??
        [...data.keys()].map((key) => ({ key, path: key }));
      await Deno.mkdir(path, { recursive: true });
      for (const item of items) {
        const bytes = data.get(item.key);
        if (!bytes) {
          if (source.optional) continue;
          throw new Error(`configmap "${source.name}" has no key "${item.key}"`);
        }
        const relative = safeRelative(item.path, `key path of "${item.key}"`);
        const file = `${path}/${relative}`;
        await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
        await Deno.writeFile(file, bytes, { mode: 0o644 });
        await Deno.chmod(file, (item.mode ?? source.defaultMode ?? 0o644) & 0o555);
      }
      result.set(volume.name, { path, readOnly: true });
    } else if (volume.hostPath) {
      // A folder of this machine, used as it is (Planetary's shared dirs): it must exist.
      const hostPath = volume.hostPath.path;
      const type = volume.hostPath.type ?? "";
      if (type !== "" && type !== "Directory") {
        throw new Error(
          `hostPath volume "${volume.name}" has type "${type}": only "Directory" is supported`,
        );
      }
      const info = hostPath.startsWith("/")
        ? await Deno.stat(hostPath).catch(() => undefined)
        : undefined;
      if (!info?.isDirectory) {
        throw new Error(
          `MountVolume.SetUp failed for volume "${volume.name}": hostPath "${hostPath}" is not ` +
            `an existing directory of this machine; create it or remove it from the shared dirs`,
        );
      }
      result.set(volume.name, { path: hostPath, readOnly: false });
    } else {
      const kind = Object.keys(volume).filter((k) => k !== "name").join(",") || "none";
      throw new Error(`volume "${volume.name}" has an unsupported type (${kind})`);
    }
  }
  return result;
}

/** Checks a relative path has no `..`, no empty or absolute part; returns it normalized. */
function safeRelative(path: string, what: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (path.startsWith("/") || parts.length === 0 || parts.includes("..")) {
    throw new Error(`${what} "${path}" must be a relative path without ".."`);
  }
  return parts.join("/");
}

/** Checks an absolute container path has no `..`; returns it normalized. */
function safeAbsolute(path: string, what: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (!path.startsWith("/") || parts.length === 0 || parts.includes("..")) {
    throw new Error(`${what} "${path}" must be an absolute path other than "/" without ".."`);
  }
  return "/" + parts.join("/");
}

interface PreparedContainer {
  spec: ContainerRunSpec;
  terminationFile: string;
}

/**
 * Resolves a mount source inside a volume without following any symbolic link: every
 * component of `relative` (the subPath) is checked with `lstat`, and a symbolic link, a device,
 * a socket or a FIFO is refused. A previous container of the pod may have replaced a folder of
 * the volume with a link to a host folder; binding that would hand the host folder to the next
 * container. Runs right before the container starts, when no process of the pod is left that
 * could swap a component again (containers of a pod run one after another, and each one's PID
 * namespace dies with it), and the path it returns is the one bound.
 *
 * @returns The path and what it is (created as directories when missing and `create`).
 */
async function resolveInVolume(
  root: string,
  relative: string | undefined,
  what: string,
  create: boolean,
): Promise<{ path: string; kind: "dir" | "file" }> {
  const refuse = (path: string, why: string): never => {
    throw new Error(`Cannot mount ${what}: ${path} ${why}; refusing to mount it`);
  };
  let path = root;
  let info = await Deno.lstat(root);
  if (info.isSymlink || !info.isDirectory) refuse("the volume", "is not a plain directory");
  const parts = relative === undefined ? [] : safeRelative(relative, "subPath").split("/");
  for (const [i, part] of parts.entries()) {
    path = `${path}/${part}`;
    const shown = `subPath component "${parts.slice(0, i + 1).join("/")}"`;
    let next: Deno.FileInfo | undefined;
    try {
      next = await Deno.lstat(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (next === undefined) {
      if (!create) throw new Error(`Cannot mount ${what}: subPath "${relative}" does not exist`);
      await Deno.mkdir(path);
      next = await Deno.lstat(path);
    }
    if (next.isSymlink) refuse(shown, "is a symbolic link (made by an earlier container?)");
    if (!next.isDirectory && !(next.isFile && i === parts.length - 1)) {
      refuse(shown, next.isFile ? "is a file, not a folder" : "is not a file or folder");
    }
    info = next;
  }
  return { path, kind: info.isDirectory ? "dir" : "file" };
}

async function prepareContainer(
  c: V1Container,
  pod: V1Pod,
  volumes: Map<string, MaterializedVolume>,
  sources: EnvSources,
  podDir: string,
): Promise<PreparedContainer> {
  const containerDir = `${podDir}/containers/${c.name}`;
  await Deno.mkdir(containerDir, { recursive: true });
  const mounts: ResolvedMount[] = [];
  for (const m of c.volumeMounts ?? []) {
    const volume = volumes.get(m.name);
    if (!volume) throw new Error(`volume mount "${m.name}" names no volume of the pod`);
    if (m.subPathExpr) throw new Error(`subPathExpr of mount "${m.name}" is not supported`);
    const readOnly = volume.readOnly || m.readOnly === true;
    const what = `volume "${m.name}"${m.subPath ? ` (subPath "${m.subPath}")` : ""} at ` +
      `${m.mountPath}`;
    // A hostPath volume (a shared dir) is the administrator's folder, used as it is.
    const source = volume.owned || volume.readOnly
      ? await resolveInVolume(volume.path, m.subPath || undefined, what, !volume.readOnly)
      : await resolveHostPath(volume.path, m.subPath || undefined, what);
    // The pod's own writable folders: the host runtime hands them to an unprivileged
    // container's user (see `PodOwnedMount`).
    const mount: PodOwnedMount = {
      source: source.path,
      target: safeAbsolute(m.mountPath, "mountPath"),
      readOnly,
      kind: source.kind,
      ...(volume.owned && !readOnly ? { podOwned: true } : {}),
    };
    mounts.push(mount);
  }
  const terminationFile = `${containerDir}/termination-log`;
  await Deno.writeFile(terminationFile, new Uint8Array());
  await Deno.chmod(terminationFile, 0o666);
  mounts.push({
    source: terminationFile,
    target: safeAbsolute(
      c.terminationMessagePath ?? DEFAULT_TERMINATION_PATH,
      "terminationMessagePath",
    ),
    readOnly: false,
    kind: "file",
  });
  mounts.sort((a, b) => depth(a.target) - depth(b.target));

  const env = resolveEnv(c, pod, sources);
  const lookup = new Map(env);
  const command = (c.command ?? []).map((s) => expandVariables(s, lookup));
  const args = (c.args ?? []).map((s) => expandVariables(s, lookup));
  await Deno.remove(`${containerDir}/scratch`, { recursive: true }).catch(() => {});
  return {
    terminationFile,
    spec: {
      podName: pod.metadata?.name ?? "",
      containerName: c.name,
      image: c.image ?? "",
      command: command.length > 0 ? [...command, ...args] : [],
      args,
      env,
      workingDir: c.workingDir ? safeAbsoluteOrRoot(c.workingDir) : "",
      mounts,
      scratchDir: `${containerDir}/scratch`,
      logFile: containerLogPath(podDir, c.name),
      ...(c.securityContext?.runAsUser !== undefined
        ? { runAsUser: c.securityContext.runAsUser }
        : {}),
    },
  };
}

/** A subPath of a hostPath volume (none in Planetary's pods): it must exist, links followed. */
async function resolveHostPath(
  root: string,
  relative: string | undefined,
  what: string,
): Promise<{ path: string; kind: "dir" | "file" }> {
  const path = relative === undefined ? root : `${root}/${safeRelative(relative, "subPath")}`;
  const info = await Deno.stat(path).catch(() => undefined);
  if (!info) throw new Error(`Cannot mount ${what}: ${path} does not exist`);
  return { path, kind: info.isDirectory ? "dir" : "file" };
}

function safeAbsoluteOrRoot(path: string): string {
  return path === "/" ? "/" : safeAbsolute(path, "workingDir");
}

function depth(path: string): number {
  return path.split("/").length;
}

/** What env references of a container may read. */
interface EnvSources {
  configMaps: ReadonlyMap<string, V1ConfigMap>;
  secrets: ReadonlyMap<string, Readonly<Record<string, string>>>;
}

/** A valid environment variable name (the kubelet skips `envFrom` keys that are not). */
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/**
 * A container's environment as a kubelet builds it: `HOSTNAME`, then every `envFrom` source in
 * order (a later source wins; keys that are no valid name are skipped), then `env` (which wins
 * over `envFrom`). Messages name the variable, source and key, never a value.
 */
function resolveEnv(c: V1Container, pod: V1Pod, sources: EnvSources): [string, string][] {
  const { configMaps, secrets } = sources;
  const env = new Map<string, string>();
  env.set("HOSTNAME", pod.metadata?.name ?? "");
  for (const from of c.envFrom ?? []) {
    const prefix = from.prefix ?? "";
    let data: Readonly<Record<string, string>> | undefined;
    if (from.configMapRef) {
      const ref = from.configMapRef;
      const configMap = configMaps.get(ref.name ?? "");
      data = configMap ? configMap.data ?? {} : undefined;
      if (data === undefined && !ref.optional) {
        throw new Error(`envFrom: configmap "${ref.name}" not found`);
      }
    } else if (from.secretRef) {
      const ref = from.secretRef;
      data = secrets.get(ref.name ?? "");
      if (data === undefined && !ref.optional) {
        throw new Error(`envFrom: secret "${ref.name}" not found`);
      }
    } else {
      throw new Error("envFrom: a source needs configMapRef or secretRef");
    }
    for (const [key, value] of Object.entries(data ?? {})) {
      if (ENV_NAME.test(prefix + key)) env.set(prefix + key, value);
    }
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined || !e.valueFrom) {
      env.set(e.name, expandVariables(e.value ?? "", env));
      continue;
    }
    const from = e.valueFrom;
    if (from.fieldRef) {
      const value = fieldValue(pod, from.fieldRef.fieldPath);
      if (value === undefined) {
        throw new Error(`env "${e.name}": fieldPath "${from.fieldRef.fieldPath}" not supported`);
      }
      env.set(e.name, value);
    } else if (from.configMapKeyRef) {
      const ref = from.configMapKeyRef;
      const configMap = configMaps.get(ref.name ?? "");
      const value = configMap?.data?.[ref.key];
      if (value !== undefined) env.set(e.name, value);
      else if (!ref.optional) {
        throw new Error(
          configMap
            ? `env "${e.name}": key "${ref.key}" of configmap "${ref.name}" not found`
            : `env "${e.name}": configmap "${ref.name}" not found`,
        );
      }
    } else if (from.secretKeyRef) {
      const ref = from.secretKeyRef;
      const secret = secrets.get(ref.name ?? "");
      const value = secret?.[ref.key];
      if (value !== undefined) env.set(e.name, value);
      else if (!ref.optional) {
        throw new Error(
          secret
            ? `env "${e.name}": key "${ref.key}" of secret "${ref.name}" not found`
            : `env "${e.name}": secret "${ref.name}" not found`,
        );
      }
    } else {
      throw new Error(`env "${e.name}": this valueFrom is not supported`);
    }
  }
  return [...env];
}

function fieldValue(pod: V1Pod, fieldPath: string): string | undefined {
  const meta = pod.metadata ?? {};
  switch (fieldPath) {
    case "metadata.name":
      return meta.name ?? "";
    case "metadata.namespace":
      return meta.namespace ?? "default";
    case "metadata.uid":
      return meta.uid ?? "";
    case "spec.nodeName":
      return pod.spec?.nodeName ?? "localhost";
    case "status.podIP":
    case "status.hostIP":
      return "127.0.0.1";
  }
  const match = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (match) return (match[1] === "labels" ? meta.labels : meta.annotations)?.[match[2]!] ?? "";
  return undefined;
}

/**
 * Kubernetes' `$(VAR)` expansion of env values, command and args: `$(NAME)` becomes the value
 * of NAME when defined (else stays as written), `$$` becomes `$`, any other `$` stays.
 *
 * @param input The string to expand.
 * @param vars The variables defined so far.
 * @returns The expanded string.
 */
export function expandVariables(input: string, vars: ReadonlyMap<string, string>): string {
  let out = "";
  for (let i = 0; i < input.length; i++) {
    const ch = input[i];
    if (ch !== "$" || i + 1 >= input.length) {
      out += ch;
      continue;
    }
    const next = input[i + 1];
    if (next === "$") {
      out += "$";
      i++;
    } else if (next === "(") {
      const end = input.indexOf(")", i + 2);
      if (end < 0) {
        out += input.slice(i);
        break;
      }
      const name = input.slice(i + 2, end);
      const value = vars.get(name);
      out += value !== undefined ? value : input.slice(i, end + 1);
      i = end;
    } else {
      out += "$";
    }
  }
  return out;
}

async function readMessage(file: string): Promise<string> {
  try {
    using handle = await Deno.open(file);
    const buffer = new Uint8Array(MAX_MESSAGE_BYTES);
    let length = 0;
    while (length < buffer.length) {
      const n = await handle.read(buffer.subarray(length));
      if (n === null) break;
      length += n;
    }
    return new TextDecoder().decode(buffer.subarray(0, length));
  } catch {
    return "";
  }
}

/**
 * The `FallbackToLogsOnError` message: the last lines of the log, bounded in bytes. Reads only
 * the end of the file, so a huge log (or one huge line) costs no more than a small one.
 */
function logTail(file: string): Promise<string> {
  return readLogTail(file, { maxBytes: FALLBACK_BYTES, maxLines: FALLBACK_LINES });
}

/** One limit of the pod's local storage, and the kubelet's eviction message when it is passed. */
interface StorageLimit {
  /** Keys of the usage counted against it (`volume/<name>`, `container/<name>`). */
  keys: readonly string[];
  bytes: number;
  message: string;
}

/** Settings of {@linkcode StorageWatch.of}. */
interface StorageWatchOptions {
  runtime: ContainerRuntime;
  intervalMs: number;
  maxEntries: number;
  onExceeded: (message: string) => void;
}

/**
 * Measures a pod's local storage as the kubelet's eviction manager does and reports the first
 * limit it passes, in the kubelet's words, checked in the kubelet's order:
 * - an `emptyDir` over its `sizeLimit`: `Usage of EmptyDir volume "data" exceeds the limit
 *   "10M".`;
 * - when containers have `ephemeral-storage` limits: the pod's emptyDirs and containers
 *   together over the sum of those limits (init containers: the largest of theirs), `Pod
 *   ephemeral local storage usage exceeds the total limit of containers 1Gi.`;
 * - a container's own scratch (writable layer) and log over its limit: `Container x exceeded
 *   its local ephemeral storage limit "1Gi".`.
 *
 * A pass walks at most `maxEntries` entries (see {@linkcode DiskUsageWalk}); passes run every
 * `intervalMs` and when a container ends ({@linkcode StorageWatch.checkNow}), one at a time.
 */
class StorageWatch {
  #limits: readonly StorageLimit[];
  #walk: DiskUsageWalk;
  #options: StorageWatchOptions;
  #containers = new Map<string, ContainerRunSpec>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> = Promise.resolve();
  #stopped = false;

  /** The watch of a pod, or undefined when the pod sets no storage limit. */
  static of(
    pod: V1Pod,
    volumes: ReadonlyMap<string, MaterializedVolume>,
    options: StorageWatchOptions,
  ): StorageWatch | undefined {
    const limits: StorageLimit[] = [];
    const emptyDirs = (pod.spec?.volumes ?? []).filter((v) => v.emptyDir && volumes.has(v.name));
    const measured = new Map<string, string[]>();
    for (const volume of emptyDirs) {
      const text = String(volume.emptyDir?.sizeLimit ?? "");
      const bytes = quantityBytes(text);
      if (bytes === undefined || bytes <= 0) continue;
      measured.set(`volume/${volume.name}`, [volumes.get(volume.name)!.path]);
      limits.push({
        keys: [`volume/${volume.name}`],
        bytes,
        message: `Usage of EmptyDir volume "${volume.name}" exceeds the limit ` +
          `"${formatQuantity(bytes, text)}".`,
      });
    }
    const containerLimit = (c: V1Container): { bytes: number; text: string } | undefined => {
      const text = String(c.resources?.limits?.["ephemeral-storage"] ?? "");
      const bytes = quantityBytes(text);
      return bytes !== undefined && bytes > 0 ? { bytes, text } : undefined;
    };
    const init = pod.spec?.initContainers ?? [];
    const main = pod.spec?.containers ?? [];
    const containerLimits = [...init, ...main].flatMap((c) => {
      const limit = containerLimit(c);
      return limit ? [{ name: c.name, ...limit }] : [];
    });
    const containerKeys = [...init, ...main].map((c) => `container/${c.name}`);
    if (containerLimits.length > 0) {
      // The pod's limit (resourcehelper.PodLimits): the sum over the main containers, at least
      // the largest init container's (they run one at a time).
      const sum = main.reduce((total, c) => total + (containerLimit(c)?.bytes ?? 0), 0);
      const podBytes = Math.max(sum, ...init.map((c) => containerLimit(c)?.bytes ?? 0));
      const volumeKeys = emptyDirs.map((v) => `volume/${v.name}`);
      for (const volume of emptyDirs) {
        measured.set(`volume/${volume.name}`, [volumes.get(volume.name)!.path]);
      }
      for (const key of containerKeys) measured.set(key, []);
      const first = containerLimits.length === 1 ? containerLimits[0]!.text : "";
      limits.push({
        keys: [...volumeKeys, ...containerKeys],
        bytes: podBytes,
        message: `Pod ephemeral local storage usage exceeds the total limit of containers ` +
          `${formatQuantity(podBytes, first)}.`,
      });
      for (const limit of containerLimits) {
        limits.push({
          keys: [`container/${limit.name}`],
          bytes: limit.bytes,
          message: `Container ${limit.name} exceeded its local ephemeral storage limit ` +
            `"${formatQuantity(limit.bytes, limit.text)}".`,
        });
      }
    }
    if (limits.length === 0) return undefined;
    return new StorageWatch(limits, measured, options);
  }

  private constructor(
    limits: readonly StorageLimit[],
    measured: ReadonlyMap<string, readonly string[]>,
    options: StorageWatchOptions,
  ) {
    this.#limits = limits;
    this.#options = options;
    this.#walk = new DiskUsageWalk(async () => {
      const roots = new Map<string, string[]>();
      for (const [key, paths] of measured) {
        const list = [...paths];
        const name = key.startsWith("container/") ? key.slice("container/".length) : undefined;
        const spec = name === undefined ? undefined : this.#containers.get(name);
        if (spec) {
          // The container's own files: its scratch (the host runtime's writable layer and
          // /tmp), its log, and an engine's writable layer.
          list.push(spec.scratchDir, spec.logFile);
          const layer = await writableLayerOf(options.runtime, spec);
          if (layer) list.push(layer);
        }
        roots.set(key, list);
      }
      return roots;
    });
    this.#schedule();
  }

  /** Counts `spec`'s files as the container `name`'s from the next pass on. */
  track(name: string, spec: ContainerRunSpec): void {
    this.#containers.set(name, spec);
  }

  /** Runs a pass that starts a fresh measurement (after the one running, if any). */
  checkNow(): Promise<void> {
    return this.#pass(true);
  }

  /** Stops the passes. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.#pass(false).finally(() => this.#schedule());
    }, this.#options.intervalMs);
  }

  #pass(fresh: boolean): Promise<void> {
    this.#running = this.#running.then(async () => {
      if (this.#stopped) return;
      try {
        if (fresh) this.#walk.restart();
        await this.#walk.step(this.#options.maxEntries);
      } catch (error) {
        console.error("local backend: measuring a pod's storage failed:", error);
        return;
      }
      for (const limit of this.#limits) {
        const used = limit.keys.reduce((total, key) => total + this.#walk.usage(key), 0);
        if (used > limit.bytes) {
          this.#options.onExceeded(limit.message);
          return;
        }
      }
    });
    return this.#running;
  }
}

/** The writable layer of a container when its runtime tells (see {@linkcode WritableLayerRuntime}). */
async function writableLayerOf(
  runtime: ContainerRuntime,
  spec: ContainerRunSpec,
): Promise<string | undefined> {
  const candidate = runtime as Partial<WritableLayerRuntime>;
  if (typeof candidate.writableLayer !== "function") return undefined;
  return await candidate.writableLayer(spec.podName, spec.containerName).catch(() => undefined);
}

/** A directory being listed by {@linkcode DiskUsageWalk}. */
interface WalkFrame {
  key: string;
  path: string;
  /** Its entries (undefined: a root, not yet looked at). */
  entries?: Deno.DirEntry[];
  next: number;
}

/**
 * Measures the disk usage of sets of files and folders (`du`-style: allocated blocks, each
 * hard-linked file once, symbolic links counted but never followed, other file systems not
 * skipped) in bounded passes: {@linkcode DiskUsageWalk.step} looks at most at `maxEntries`
 * entries with `lstat`, and the next step goes on where it stopped. When a walk of every root
 * ends, its totals replace the previous ones; until then, the usage of a key is the larger of
 * the last complete total and the running one (what was counted so far is used, whatever is
 * left). `lstat` is called synchronously in batches of 256 between which the event loop runs
 * (an asynchronous `lstat` costs about 80 µs here, a synchronous one about 10 µs).
 *
 * @example
 * ```ts
 * import { DiskUsageWalk } from "./pod_runner.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/a`, new Uint8Array(10_000));
 * const walk = new DiskUsageWalk(() => Promise.resolve(new Map([["dir", [dir]]])));
 * while (!await walk.step(1000));
 * console.assert(walk.usage("dir") >= 10_000);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class DiskUsageWalk {
  #roots: () => Promise<ReadonlyMap<string, readonly string[]>>;
  #stack: WalkFrame[] = [];
  #walking = false;
  #partial = new Map<string, number>();
  #complete = new Map<string, number>();
  #links = new Set<string>();

  /**
   * Creates the walk; nothing is read until {@linkcode DiskUsageWalk.step}.
   *
   * @param roots What to measure, asked at the start of every walk: key → paths (a path may
   *   be a file or a folder; a missing one counts 0).
   */
  constructor(roots: () => Promise<ReadonlyMap<string, readonly string[]>>) {
    this.#roots = roots;
  }

  /**
   * Looks at up to `maxEntries` more entries.
   *
   * @param maxEntries Most entries to `lstat` in this step.
   * @returns True when a walk of every root ended in this step.
   */
  async step(maxEntries: number): Promise<boolean> {
    if (!this.#walking) {
      this.#walking = true;
      this.#partial = new Map();
      this.#links.clear();
      const roots = await this.#roots();
      for (const [key, paths] of roots) {
        this.#partial.set(key, 0);
        for (const path of paths) this.#stack.push({ key, path, next: 0 });
      }
    }
    let budget = Math.max(1, maxEntries);
    let batch = 0;
    while (budget > 0 && this.#stack.length > 0) {
      if (++batch % 256 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      const frame = this.#stack.at(-1)!;
      if (frame.entries === undefined) {
        // A root: counted itself, then listed when it is a folder.
        budget--;
        const info = lstatOrUndefined(frame.path);
        if (!info) {
          this.#stack.pop();
          continue;
        }
        this.#count(frame.key, info);
        if (!info.isDirectory) {
          this.#stack.pop();
          continue;
        }
        frame.entries = await listOrEmpty(frame.path);
        continue;
      }
      const entry = frame.entries[frame.next++];
      if (entry === undefined) {
        this.#stack.pop();
        continue;
      }
      budget--;
      const path = `${frame.path}/${entry.name}`;
      const info = lstatOrUndefined(path);
      if (!info) continue;
      this.#count(frame.key, info);
      if (info.isDirectory) {
        this.#stack.push({ key: frame.key, path, entries: await listOrEmpty(path), next: 0 });
      }
    }
    if (this.#stack.length > 0) return false;
    this.#walking = false;
    this.#complete = this.#partial;
    this.#links.clear();
    return true;
  }

  /** Drops the walk in progress (its partial totals too): the next step starts a new one. */
  restart(): void {
    this.#stack = [];
    this.#walking = false;
  }

  /**
   * Bytes used under `key`.
   *
   * @param key A key of the roots.
   * @returns The larger of the last complete total and the running one; 0 before any.
   */
  usage(key: string): number {
    return Math.max(this.#complete.get(key) ?? 0, this.#walking ? this.#partial.get(key) ?? 0 : 0);
  }

  #count(key: string, info: Deno.FileInfo): void {
    if (!info.isDirectory && (info.nlink ?? 1) > 1) {
      const id = `${info.dev}:${info.ino}`;
      if (this.#links.has(id)) return;
      if (this.#links.size < 100_000) this.#links.add(id);
    }
    const bytes = info.blocks !== null ? info.blocks * 512 : info.size;
    this.#partial.set(key, (this.#partial.get(key) ?? 0) + bytes);
  }
}

function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch {
    return undefined;
  }
}

async function listOrEmpty(path: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(path));
  } catch {
    return [];
  }
}

/**
 * A quantity of bytes as Kubernetes' `Quantity.String()` writes it (canonical form): binary
 * suffixes when the limit was written with one (`1Gi`), else decimal ones (`10M`).
 */
function formatQuantity(bytes: number, written: string): string {
  if (/i$/.test(written)) {
    for (
      const [suffix, factor] of [
        ["Ei", 2 ** 60],
        ["Pi", 2 ** 50],
        ["Ti", 2 ** 40],
        [
          "Gi",
          2 ** 30,
        ],
        ["Mi", 2 ** 20],
        ["Ki", 2 ** 10],
      ] as const
    ) {
      if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${suffix}`;
    }
    return String(bytes);
  }
  for (
    const [suffix, factor] of [["E", 1e18], ["P", 1e15], ["T", 1e12], ["G", 1e9], [
      "M",
      1e6,
    ], ["k", 1e3]] as const
  ) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${suffix}`;
  }
  return String(bytes);
}
