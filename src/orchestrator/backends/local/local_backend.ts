/**
 * The `local` backend: runs task pods on this machine, with a container engine when one works
 * or with the host runtime otherwise, and reports their status in the shape of Kubernetes pod
 * status.
 *
 * @module
 */
import type { V1ConfigMap, V1ContainerStatus, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import type { Backend, PodEvent, ReadLogOptions, TaskPodObjects } from "../../backend.ts";
import type { ContainerRuntime } from "./container_runtime.ts";
import { containerLimits, DockerRuntime, engineWorks } from "./docker_runtime.ts";
import {
  type ContainerUser,
  HostRuntime,
  type SharedHostPath,
  UNPRIVILEGED_USER,
} from "./host_runtime.ts";
import { readLogTail } from "./container_log.ts";
import { LocalBackendError } from "./local_backend_error.ts";
export type { Backend, PodEvent, TaskPodObjects } from "../../backend.ts";
export type {
  ContainerExit,
  ContainerRunSpec,
  ContainerRuntime,
  ResolvedMount,
} from "./container_runtime.ts";
import {
  containerLogPath,
  pendingPodStatus,
  runPod,
  STORAGE_CHECK_INTERVAL_MS,
  STORAGE_CHECK_MAX_ENTRIES,
  type WritableLayerRuntime,
} from "./pod_runner.ts";

/** Options of {@linkcode LocalBackend}. */
export interface LocalBackendOptions {
  /** Directory for per-pod volumes, logs and scratch files (created when missing). */
  workDir: string;
  /**
   * What runs containers: `host` (processes in a private mount namespace; see
   * {@linkcode HostRuntime}: no isolation, image ignored), `docker`, `podman`, `auto` (docker,
   * then podman, when `<engine> info` works; else host), or a runtime object.
   *
   * @default {"auto"}
   */
  runtime?: "host" | "docker" | "podman" | "auto" | ContainerRuntime;
  /**
   * Pods running at once; later pods stay Pending (PodScheduled False) until a slot frees.
   *
   * @default {4}
   */
  maxConcurrentPods?: number;
  /**
   * Host runtime only: names of server environment variables passed to every container.
   *
   * @default {["PATH", "HOME", "DENO_DIR"]}
   */
  hostEnv?: string[];
  /**
   * Host runtime only: host directories bound read-write in every container (for example the
   * root of `file://` storage), at the same path or at a `containerPath`.
   *
   * @default {the Deno cache directory}
   */
  sharedHostPaths?: SharedHostPath[];
  /**
   * Host runtime only: the user and group that executor containers run as (with no
   * capabilities). Give the user who owns the `--shared-dir` folders when tasks must write
   * there as the workflow engine does; `"server"` keeps the server's own user and
   * capabilities (trusted tasks only).
   *
   * @default {UNPRIVILEGED_USER: 65534:65534, `nobody`}
   */
  hostUser?: ContainerUser | "server";
  /**
   * Secrets that pods may read, by name: each is its keys and values (as `stringData`), kept in
   * memory only. Containers reach them the way a kubelet resolves them, through `envFrom`
   * (`secretRef`, with `prefix` and `optional`) and `env[].valueFrom.secretKeyRef`; a pod that
   * names a missing Secret (not `optional`) fails with `CreateContainerConfigError`. The values
   * never enter a pod, its status or an event.
   *
   * @default {{}}
   */
  secrets?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /**
   * Time between two passes that measure each pod's local storage against its limits (the
   * data volume's `sizeLimit`, from the task's `disk_gb`; containers' `ephemeral-storage`
   * limits). A pod over a limit is evicted as by a kubelet: its container is killed and it
   * ends Failed with reason `Evicted`. A pass also runs whenever a container ends.
   *
   * @default {10000}
   */
  storageCheckIntervalMs?: number;
  /**
   * Most files and folders one measuring pass looks at (a bigger pod is measured over several
   * passes), which bounds the cost of a pass (about 10 µs per entry).
   *
   * @default {20000}
   */
  storageCheckMaxEntries?: number;
  /**
   * The clock.
   *
   * @default {() => new Date()}
   */
  now?: () => Date;
}

interface PodEntry {
  pod: V1Pod;
  configMapName: string | undefined;
  dir: string;
  controller: AbortController;
  done: Promise<void>;
  deleting?: Promise<void>;
}

const POD_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** Most bytes {@linkcode LocalBackend.readLog} returns of one container log (1 MiB). */
export const LOCAL_LOG_LIMIT_BYTES = 1024 * 1024;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * Runs task pods on this machine. Init containers run one after the other, then the main
 * containers; the pod status follows a kubelet's (Pending → Running → Succeeded/Failed, with
 * init and main container statuses). Local storage limits (`emptyDir.sizeLimit`, containers'
 * `ephemeral-storage` limits) are enforced on every runtime by eviction, as a kubelet does (see
 * {@linkcode LocalBackendOptions.storageCheckIntervalMs}); other `resources` and
 * `securityContext` are recorded in the pod but not enforced by the host runtime. Restart
 * policy is always treated as `Never`.
 *
 * @example
 * ```ts ignore
 * import { LocalBackend } from "./local_backend.ts";
 * const backend = new LocalBackend({ workDir: "/var/lib/planetary", runtime: "host" });
 * await backend.createPod({ pod, configMap });
 * console.log((await backend.getPod(pod.metadata!.name!))?.status?.phase);
 * await backend.close();
 * ```
 */
export class LocalBackend implements Backend {
  /** Always `local`. */
  readonly name = "local";
  #workDir: string;
  #runtimeChoice: NonNullable<LocalBackendOptions["runtime"]>;
  #runtime: Promise<ContainerRuntime> | undefined;
  #hostEnv: string[] | undefined;
  #sharedHostPaths: SharedHostPath[] | undefined;
  #hostUser: ContainerUser | undefined;
  #maxConcurrent: number;
  #storageCheck: { intervalMs: number; maxEntries: number };
  #now: () => Date;
  #pods = new Map<string, PodEntry>();
  #configMaps = new Map<string, V1ConfigMap>();
  #secrets: ReadonlyMap<string, Readonly<Record<string, string>>>;
  #listeners = new Set<(event: PodEvent) => void>();
  #running = 0;
  #queue: (() => void)[] = [];
  #version = 0;
  #closed = false;

  /**
   * Creates the backend; nothing runs until the first pod.
   *
   * @param options See {@linkcode LocalBackendOptions}.
   * @throws {RangeError} When `maxConcurrentPods` is not a positive integer.
   */
  constructor(options: LocalBackendOptions) {
    const {
      workDir,
      runtime = "auto",
      maxConcurrentPods = 4,
      hostEnv,
      sharedHostPaths,
      secrets = {},
      storageCheckIntervalMs = STORAGE_CHECK_INTERVAL_MS,
      storageCheckMaxEntries = STORAGE_CHECK_MAX_ENTRIES,
      now = () => new Date(),
    } = options;
    if (!Number.isInteger(maxConcurrentPods) || maxConcurrentPods < 1) {
      throw new RangeError(`maxConcurrentPods must be a positive integer: ${maxConcurrentPods}`);
    }
    if (
      !(storageCheckIntervalMs > 0) || !Number.isInteger(storageCheckMaxEntries) ||
      storageCheckMaxEntries < 1
    ) {
      throw new RangeError(
        `storageCheckIntervalMs must be positive and storageCheckMaxEntries a positive ` +
          `integer: ${storageCheckIntervalMs}, ${storageCheckMaxEntries}`,
      );
    }
    this.#storageCheck = { intervalMs: storageCheckIntervalMs, maxEntries: storageCheckMaxEntries };
    this.#workDir = workDir;
    this.#runtimeChoice = runtime;
    this.#hostEnv = hostEnv;
    this.#sharedHostPaths = sharedHostPaths;
    this.#hostUser = options.hostUser === "server"
      ? undefined
      : options.hostUser ?? UNPRIVILEGED_USER;
    this.#secrets = new Map(
      Object.entries(secrets).map(([name, data]) => [name, Object.freeze({ ...data })]),
    );
    this.#maxConcurrent = maxConcurrentPods;
    this.#now = now;
    // With a container engine, start it now: the engine runtime removes at start the
    // containers that an earlier run of this server left (one that died).
    if (runtime === "docker" || runtime === "podman" || runtime === "auto") {
      this.runtime().catch(() => {}); // the error resurfaces at the first createPod()
    }
  }

  /**
   * The runtime in use (chosen on first use for `auto`).
   *
   * @returns The runtime, checked to work here.
   * @throws {LocalBackendError} `RUNTIME_UNAVAILABLE` when it cannot work here.
   */
  runtime(): Promise<ContainerRuntime> {
    this.#runtime ??= this.#chooseRuntime();
    return this.#runtime;
  }

  async #chooseRuntime(): Promise<ContainerRuntime> {
    const choice = this.#runtimeChoice;
    let engine: "docker" | "podman" | undefined;
    if (typeof choice === "object") {
      await choice.ensureAvailable();
      return choice;
    }
    if (choice === "docker" || choice === "podman") engine = choice;
    else if (choice === "auto" && await engineWorks("docker")) engine = "docker";
    else if (choice === "auto" && await engineWorks("podman")) engine = "podman";
    await Deno.mkdir(this.#workDir, { recursive: true });
    // The host runtime runs every container without an engine, and the transporter (this
    // program, which no registry has an image of) with one: see docker_runtime.ts.
    const host = new HostRuntime({
      probeDir: this.#workDir,
      ...(this.#hostEnv ? { hostEnv: this.#hostEnv } : {}),
      ...(this.#sharedHostPaths ? { sharedHostPaths: this.#sharedHostPaths } : {}),
      ...(this.#hostUser ? { user: this.#hostUser } : {}),
    });
    const runtime = engine
      ? new DockerRuntime({
        engine,
        transporter: host,
        serverId: await serverIdOf(this.#workDir),
      })
      : host;
    await runtime.ensureAvailable();
    return runtime;
  }

  /**
   * Records the pod and its ConfigMap and starts running it in the background. A pod whose
   * name exists already is left alone.
   *
   * @param objects The pod and its ConfigMap.
   * @returns Resolves once the pod is recorded (not when it ends).
   * @throws {LocalBackendError} `INVALID_POD` for a pod without a valid name,
   *   `RUNTIME_UNAVAILABLE` when no runtime works, `CLOSED` after {@linkcode LocalBackend.close}.
   */
  async createPod(objects: TaskPodObjects): Promise<void> {
    this.#assertOpen();
    const name = objects.pod.metadata?.name ?? "";
    if (!POD_NAME.test(name) || name.includes("..")) {
      throw new LocalBackendError("INVALID_POD", `Cannot create pod "${name}": bad name`);
    }
    if (this.#pods.has(name)) return;
    const runtime = await this.runtime();
    this.#assertOpen();
    if (this.#pods.has(name)) return;

    const now = this.#now();
    const pod = structuredClone(objects.pod);
    pod.apiVersion ??= "v1";
    pod.kind ??= "Pod";
    pod.metadata = {
      ...pod.metadata,
      namespace: pod.metadata?.namespace ?? "default",
      uid: crypto.randomUUID(),
      creationTimestamp: now,
      resourceVersion: String(++this.#version),
    };
    pod.status = pendingPodStatus(now);
    const configMapName = objects.configMap.metadata?.name;
    if (configMapName) this.#configMaps.set(configMapName, structuredClone(objects.configMap));
    const entry: PodEntry = {
      pod,
      configMapName,
      dir: `${this.#workDir}/pods/${name}`,
      controller: new AbortController(),
      done: Promise.resolve(),
    };
    this.#pods.set(name, entry);
    this.#emit("ADDED", pod);
    entry.done = this.#run(entry, runtime);
  }

  async #run(entry: PodEntry, runtime: ContainerRuntime): Promise<void> {
    const signal = entry.controller.signal;
    if (!await this.#acquire(entry, signal)) return;
    // activeDeadlineSeconds, as the kubelet: counted from the pod's start (once it has a slot),
    // init containers included; when it passes, the containers are killed and the pod fails.
    const deadline = activeDeadline(entry.pod);
    const expired = new AbortController();
    const timer = deadline === undefined
      ? undefined
      : setTimeout(() => expired.abort(), deadline * 1000);
    try {
      await Deno.remove(entry.dir, { recursive: true }).catch(() => {});
      await Deno.mkdir(entry.dir, { recursive: true });
      const last = await runPod({
        pod: entry.pod,
        configMaps: this.#configMaps,
        secrets: this.#secrets,
        podDir: entry.dir,
        runtime: withPodLimits(runtime, entry.pod),
        signal: deadline === undefined ? signal : AbortSignal.any([signal, expired.signal]),
        now: this.#now,
        onStatus: (status) => this.#setStatus(entry, status),
        storageCheckIntervalMs: this.#storageCheck.intervalMs,
        storageCheckMaxEntries: this.#storageCheck.maxEntries,
      });
      if (expired.signal.aborted && !signal.aborted && !podEnded(last)) {
        this.#setStatus(entry, deadlineExceededStatus(last, deadline ?? 0, this.#now()));
      }
    } catch (error) {
      if (!signal.aborted) {
        this.#setStatus(entry, {
          ...entry.pod.status,
          phase: "Failed",
          reason: "LocalBackendError",
          message: error instanceof Error ? error.message : String(error),
        });
      }
    } finally {
      clearTimeout(timer);
      this.#release();
    }
  }

  /** Waits for a free slot; false when aborted first. */
  #acquire(entry: PodEntry, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (this.#running < this.#maxConcurrent) {
      this.#running++;
      return Promise.resolve(true);
    }
    this.#setStatus(
      entry,
      pendingPodStatus(
        this.#now(),
        `waiting for a free slot: ${this.#maxConcurrent} pods are running (maxConcurrentPods)`,
      ),
    );
    return new Promise((resolve) => {
      const grant = (): void => {
        signal.removeEventListener("abort", cancel);
        resolve(true);
      };
      const cancel = (): void => {
        this.#queue = this.#queue.filter((g) => g !== grant);
        resolve(false);
      };
      this.#queue.push(grant);
      signal.addEventListener("abort", cancel, { once: true });
    });
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#running--;
  }

  #setStatus(entry: PodEntry, status: V1PodStatus): void {
    if (entry.deleting || this.#pods.get(entry.pod.metadata?.name ?? "") !== entry) return;
    entry.pod.status = status;
    entry.pod.metadata = { ...entry.pod.metadata, resourceVersion: String(++this.#version) };
    this.#emit("MODIFIED", entry.pod);
  }

  #emit(type: PodEvent["type"], pod: V1Pod): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener({ type, pod: structuredClone(pod) });
      } catch (error) {
        console.error("local backend: pod watcher threw:", error);
      }
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new LocalBackendError("CLOSED", "The local backend is closed");
  }

  /**
   * Kills the pod's running container and every process it started, removes the pod's
   * directory and ConfigMap, then reports DELETED. A missing pod is no error.
   *
   * @param name Pod name.
   * @returns Resolves when the pod and its processes are gone.
   */
  deletePod(name: string): Promise<void> {
    const entry = this.#pods.get(name);
    if (!entry) return Promise.resolve();
    entry.deleting ??= (async () => {
      entry.pod.metadata = { ...entry.pod.metadata, deletionTimestamp: this.#now() };
      entry.controller.abort();
      await entry.done;
      await Deno.remove(entry.dir, { recursive: true }).catch(() => {});
      if (entry.configMapName) this.#configMaps.delete(entry.configMapName);
      this.#pods.delete(name);
      entry.pod.metadata = { ...entry.pod.metadata, resourceVersion: String(++this.#version) };
      this.#emit("DELETED", entry.pod);
    })();
    return entry.deleting;
  }

  /**
   * The pod as it is now.
   *
   * @param name Pod name.
   * @returns A copy of the pod, or undefined when there is none.
   */
  getPod(name: string): Promise<V1Pod | undefined> {
    const entry = this.#pods.get(name);
    return Promise.resolve(entry ? structuredClone(entry.pod) : undefined);
  }

  /**
   * Every pod of this backend.
   *
   * @returns Copies of the pods, in creation order.
   */
  listPods(): Promise<V1Pod[]> {
    return Promise.resolve([...this.#pods.values()].map((e) => structuredClone(e.pod)));
  }

  /**
   * Calls `onEvent` with ADDED for every current pod, then for every change, until `signal`
   * aborts.
   *
   * @param onEvent Receives each event (a copy of the pod).
   * @param signal Ends the watch.
   * @returns Resolves when `signal` aborts.
   */
  watchPods(onEvent: (event: PodEvent) => void, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    for (const entry of this.#pods.values()) {
      onEvent({ type: "ADDED", pod: structuredClone(entry.pod) });
    }
    this.#listeners.add(onEvent);
    return new Promise((resolve) => {
      signal.addEventListener("abort", () => {
        this.#listeners.delete(onEvent);
        resolve();
      }, { once: true });
    });
  }

  /**
   * The log of one container (stdout and stderr interleaved, as `kubectl logs` shows them):
   * its first {@linkcode LOCAL_LOG_LIMIT_BYTES} bytes, or with `tailLines` its last lines within
   * that many bytes. A task's log is read in bounded time and memory, however large it grew.
   *
   * @param podName Pod name.
   * @param container Container name.
   * @param options `tailLines`: read only the end of the log.
   * @returns The log, or "" when there is none.
   */
  async readLog(podName: string, container: string, options: ReadLogOptions = {}): Promise<string> {
    const entry = this.#pods.get(podName);
    if (!entry || !DNS_LABEL.test(container)) return "";
    const file = containerLogPath(entry.dir, container);
    if (options.tailLines !== undefined) {
      return await readLogTail(file, {
        maxBytes: LOCAL_LOG_LIMIT_BYTES,
        maxLines: options.tailLines,
      });
    }
    try {
      using handle = await Deno.open(file);
      const bytes = new Uint8Array(LOCAL_LOG_LIMIT_BYTES);
      let length = 0;
      while (length < bytes.length) {
        const n = await handle.read(bytes.subarray(length));
        if (n === null) break;
        length += n;
      }
      return new TextDecoder().decode(bytes.subarray(0, length));
    } catch {
      return "";
    }
  }

  /**
   * Kills every container this backend runs and refuses new pods. Pod directories stay.
   *
   * @returns Resolves when every process is gone.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#runtime?.catch(() => {});
    const entries = [...this.#pods.values()];
    for (const entry of entries) entry.controller.abort();
    await Promise.all(entries.map((e) => e.done));
    this.#listeners.clear();
  }
}

/** The pod's `activeDeadlineSeconds` when it sets a usable one (a positive integer). */
function activeDeadline(pod: V1Pod): number | undefined {
  const seconds = pod.spec?.activeDeadlineSeconds;
  return typeof seconds === "number" && Number.isInteger(seconds) && seconds > 0
    ? seconds
    : undefined;
}

function podEnded(status: V1PodStatus): boolean {
  return status.phase === "Succeeded" || status.phase === "Failed";
}

/**
 * The status of a pod stopped by its deadline, as the kubelet reports it: phase Failed, reason
 * `DeadlineExceeded`; every container that was running is terminated (killed, 137) and every
 * one still waiting stays so.
 */
function deadlineExceededStatus(status: V1PodStatus, seconds: number, now: Date): V1PodStatus {
  const stop = (statuses: V1ContainerStatus[] | undefined): V1ContainerStatus[] | undefined =>
    statuses?.map((s) =>
      s.state?.running
        ? {
          ...s,
          ready: false,
          started: false,
          state: {
            terminated: {
              exitCode: 137,
              signal: 9,
              reason: "Error",
              message: `killed: the pod ran longer than its activeDeadlineSeconds (${seconds})`,
              startedAt: s.state.running.startedAt ?? now,
              finishedAt: now,
            },
          },
        }
        : s
    );
  const init = stop(status.initContainerStatuses);
  const main = stop(status.containerStatuses);
  return {
    ...status,
    phase: "Failed",
    reason: "DeadlineExceeded",
    message: `Pod was active on the node longer than the specified deadline (${seconds} s)`,
    ...(init ? { initContainerStatuses: init } : {}),
    ...(main ? { containerStatuses: main } : {}),
  };
}

/**
 * The engine's server id of a backend: derived from its work folder, so that a restarted server
 * finds (and removes) the containers its previous run left.
 */
async function serverIdOf(workDir: string): Promise<string> {
  const path = await Deno.realPath(workDir).catch(() => workDir);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(path));
  return [...new Uint8Array(digest).subarray(0, 8)]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * `runtime`, with each container's `resources.limits` of `pod` added to its run spec (and the
 * runtime's writable layers, when it tells them).
 */
function withPodLimits(runtime: ContainerRuntime, pod: V1Pod): ContainerRuntime {
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  const layers = runtime as Partial<WritableLayerRuntime>;
  return {
    name: runtime.name,
    ensureAvailable: () => runtime.ensureAvailable(),
    ...(typeof layers.writableLayer === "function"
      ? {
        writableLayer: (podName: string, containerName: string) =>
          layers.writableLayer!(podName, containerName),
      }
      : {}),
    run(spec, signal, onStarted) {
      const limits = containers.find((c) => c.name === spec.containerName)?.resources?.limits;
      const parsed = containerLimits(limits);
      return runtime.run(
        spec.limits || Object.keys(parsed).length === 0 ? spec : { ...spec, limits: parsed },
        signal,
        onStarted,
      );
    },
  };
}
