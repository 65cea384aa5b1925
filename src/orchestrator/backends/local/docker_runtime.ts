/**
 * The container-engine runtime of the local backend: runs each EXECUTOR container of a task pod
 * in its `image` with `docker` (or `podman`), and hands the transporter containers (`inputs`,
 * `outputs`) to the host runtime.
 *
 * Why the transporter does not run in the engine: it is this program (`deno run
 * transporter/main.ts`, or a compiled `planetary transporter`), and no registry has an image of
 * it (`planetary-transporter:latest` does not exist anywhere a laptop can pull from). Building one
 * on first use would need a base image with glibc, which cannot be pulled either where there is
 * no registry. Mounting the host's `deno` and source tree into an image still needs that image.
 * The host runtime runs it from what the machine already has, exactly as without an engine, in
 * private mount and PID namespaces, with the pod's volume folders at their container paths; the
 * executors then get the very same folders as bind mounts. The trusted code (the transporter,
 * which holds the storage credentials) runs on the host; the untrusted code (executors) runs in
 * the engine and sees neither the Deno cache, nor the source tree, nor the credentials.
 *
 * What an executor container gets (`docker create` + `docker start --attach`):
 * - its image, pulled once when missing (`IfNotPresent`; progress lines go to the server log);
 *   an image that cannot be had throws a {@linkcode LocalBackendError} (`IMAGE_PULL_FAILED`,
 *   `INVALID_IMAGE_NAME`) with the engine's reason, `image "x" not found: pull failed: …`,
 *   which the pod runner shows as the container waiting with `ErrImagePull` /
 *   `InvalidImageName`, as a kubelet would (the task ends SYSTEM_ERROR, as on Kubernetes);
 * - `resources.limits` as `--cpus` and `--memory` (with `--memory-swap` equal to it, so the
 *   limit is not doubled by swap); a container the kernel killed for memory reports
 *   `OOMKilled`;
 * - its output copied to its log file as on the host runtime: a failed write (a full disk)
 *   kills the container, which fails with the reason (`no space left on device while writing
 *   the log of container …`), never the server;
 * - its writable layer (the engine's overlay upper directory) reported through
 *   {@linkcode DockerRuntime.writableLayer}, so that the pod runner's storage measuring counts
 *   it (no `--storage-opt size=`, which only overlay2 on xfs with `pquota` and a few other
 *   drivers support);
 * - its environment through an `--env-file` of mode 0600 that is removed right after
 *   `create`, and values holding a line break (which an env file cannot carry) as a bare
 *   `--env NAME` whose value is in the client's own environment (readable by its owner only):
 *   no value ever appears on a command line;
 * - labels `io.planetary.pod=<pod>` and `io.planetary.server=<id>`: at start the runtime
 *   removes every container left with its server id (a server that died), and cancelling a pod
 *   removes its container (`rm --force`, which kills it at once).
 *
 * podman (Debian's 4.3) takes the same command lines, except: its `info` has no
 * `ServerVersion`; its `rm --force` waits a 10 s grace period unless `--time 0`; and a container
 * it could not start stays "created" with exit code 0 (the reason is on `start`'s stderr). Its
 * settings (storage, `cgroup_manager`, …) come from `CONTAINERS_CONF` and
 * `CONTAINERS_STORAGE_CONF` of the server's environment. Seen with podman 4.3.1 + conmon 2.1.6
 * on cgroup v1: the kernel's memory-cgroup OOM kill is not reported (`OOMKilled` stays false)
 * because conmon writes its OOM marker file `oom` into its working directory, which podman
 * never reads; `start` runs in the container's scratch folder, and that marker then reports
 * `OOMKilled`.
 *
 * The engine client (`docker`/`podman`) runs with an environment of its own, built from the
 * server's (never from a task's: a task's `DOCKER_HOST` only reaches its container).
 *
 * @module
 */
import type {
  ContainerExit,
  ContainerLimits,
  ContainerRunSpec,
  ContainerRuntime,
} from "./container_runtime.ts";
export type {
  ContainerExit,
  ContainerLimits,
  ContainerRunSpec,
  ContainerRuntime,
  ResolvedMount,
} from "./container_runtime.ts";
import { LocalBackendError } from "./local_backend_error.ts";
import { copyToLog, describeLogWriteError } from "./container_log.ts";

/** Label on every container: the pod it belongs to. */
export const LABEL_POD = "io.planetary.pod";
/** Label on every container: the id of the server (runtime) that made it. */
export const LABEL_SERVER = "io.planetary.server";

/** Variables of the server's environment that the engine client may see. */
const CLIENT_ENV = [
  "PATH",
  "HOME",
  "USER",
  "XDG_RUNTIME_DIR",
  "XDG_CONFIG_HOME",
  "XDG_DATA_HOME",
  "DOCKER_HOST",
  "DOCKER_CONTEXT",
  "DOCKER_CONFIG",
  "DOCKER_CERT_PATH",
  "DOCKER_TLS_VERIFY",
  "CONTAINER_HOST",
  "CONTAINERS_CONF",
  "CONTAINERS_STORAGE_CONF",
  "CONTAINERS_REGISTRIES_CONF",
];

/** A valid environment variable name for an env file. */
const ENV_NAME = /^[^=\s\0]+$/;

/**
 * The environment of the engine client: the listed variables of the server's own environment.
 *
 * @returns Name → value.
 */
function clientEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of CLIENT_ENV) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * Whether `<engine> info` succeeds on this machine (with the server's own engine settings).
 *
 * @param engine `docker` or `podman`.
 * @returns True when the engine answers.
 * @example
 * ```ts ignore
 * if (await engineWorks("docker")) console.log("docker is there");
 * ```
 */
export async function engineWorks(engine: "docker" | "podman"): Promise<boolean> {
  try {
    const out = await new Deno.Command(engine, {
      args: ["info"],
      clearEnv: true,
      env: clientEnv(),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** Extra settings of {@linkcode engineCreateArgs}. */
export interface EngineCreateOptions {
  /** The env file holding the container's environment. */
  envFile: string;
  /** Names passed as bare `--env NAME` (the value comes from the client's environment). @default [] */
  inheritedEnv?: readonly string[];
  /** Labels of the container. @default {{}} */
  labels?: Readonly<Record<string, string>>;
}

/**
 * The arguments of `docker create` / `podman create` for one container. The environment is
 * only named by its env file, never spelled out.
 *
 * @param spec What to run.
 * @param containerName The engine-side container name.
 * @param options The env file and labels.
 * @returns The argv after the engine's name.
 * @example
 * ```ts
 * import { engineCreateArgs } from "./docker_runtime.ts";
 * const args = engineCreateArgs({
 *   podName: "p", containerName: "c", image: "alpine", command: ["true"], args: [], env: [],
 *   workingDir: "", mounts: [], scratchDir: "/s", logFile: "/l",
 * }, "planetary-p-c", { envFile: "/s/env" });
 * console.assert(args[0] === "create");
 * ```
 */
export function engineCreateArgs(
  spec: ContainerRunSpec,
  containerName: string,
  options: EngineCreateOptions,
): string[] {
  const { envFile, inheritedEnv = [], labels = {} } = options;
  const args = ["create", "--name", containerName, "--hostname", spec.podName];
  for (const [name, value] of Object.entries(labels)) args.push("--label", `${name}=${value}`);
  args.push("--security-opt", "no-new-privileges");
  for (const m of spec.mounts) {
    args.push("--mount", mountOption(m.source, m.target, m.readOnly));
  }
  args.push("--env-file", envFile);
  for (const name of inheritedEnv) args.push("--env", name);
  if (spec.workingDir) args.push("--workdir", spec.workingDir);
  if (spec.runAsUser !== undefined) args.push("--user", String(spec.runAsUser));
  args.push(...limitArgs(spec.limits));
  const [entrypoint, ...rest] = spec.command;
  if (entrypoint !== undefined) args.push("--entrypoint", entrypoint);
  args.push("--", spec.image, ...(entrypoint !== undefined ? rest : spec.args));
  return args;
}

function limitArgs(limits: ContainerLimits | undefined): string[] {
  const args: string[] = [];
  if (limits?.cpus !== undefined && limits.cpus > 0) {
    args.push("--cpus", String(Math.max(0.01, Math.round(limits.cpus * 1000) / 1000)));
  }
  if (limits?.memoryBytes !== undefined && limits.memoryBytes > 0) {
    // The engines refuse less than 6 MiB.
    const bytes = String(Math.max(6 * 1024 * 1024, Math.floor(limits.memoryBytes)));
    args.push("--memory", bytes, "--memory-swap", bytes);
  }
  return args;
}

function mountOption(source: string, target: string, readOnly: boolean): string {
  // --mount is CSV: quote fields that hold a comma or a quote.
  const field = (value: string): string =>
    /[",]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
  return [
    "type=bind",
    field(`source=${source}`),
    field(`target=${target}`),
    ...(readOnly ? ["readonly"] : []),
  ].join(",");
}

/** How a container's environment reaches the engine without a value on a command line. */
export interface EngineEnv {
  /** Text of the env file (mode 0600, removed after `create`): one `NAME=value` line each. */
  fileText: string;
  /**
   * Variables whose value holds a line break, which an env file cannot carry: passed as a bare
   * `--env NAME`, the value in the client's own environment (`/proc/<pid>/environ` is readable
   * by its owner only, unlike `cmdline`).
   */
  inherited: Record<string, string>;
}

/**
 * Splits a container's environment between the env file and the client's environment.
 *
 * @param env The environment, in order (a later duplicate wins).
 * @returns The env file's text and the variables the client passes on from its environment.
 * @throws {RangeError} Naming (never showing) a variable that cannot be passed: a bad name, a
 *   NUL in its value, or a value with a line break under a name the engine client itself
 *   reads (`DOCKER_HOST`, `PATH`…: it would steer the client).
 * @example
 * ```ts
 * import { engineEnv } from "./docker_runtime.ts";
 * const { fileText, inherited } = engineEnv([["A", "1 2"], ["B", "x\ny"]]);
 * console.assert(fileText === "A=1 2\n" && inherited.B === "x\ny");
 * ```
 */
export function engineEnv(env: readonly (readonly [string, string])[]): EngineEnv {
  const file = new Map<string, string>();
  const inherited: Record<string, string> = {};
  for (const [name, value] of env) {
    if (!ENV_NAME.test(name)) {
      throw new RangeError(`Cannot pass environment variable "${name}": bad name`);
    }
    if (value.includes("\0")) {
      throw new RangeError(`Cannot pass environment variable "${name}": its value holds a NUL`);
    }
    file.delete(name);
    delete inherited[name];
    if (!/[\n\r]/.test(value)) {
      file.set(name, value);
    } else if (steersClient(name)) {
      throw new RangeError(
        `Cannot pass environment variable "${name}" to the container engine: its value holds ` +
          "a line break, which an env file cannot carry, and the engine client reads that name",
      );
    } else {
      inherited[name] = value;
    }
  }
  let fileText = "";
  for (const [name, value] of file) fileText += `${name}=${value}\n`;
  return { fileText, inherited };
}

/** Whether the engine client would read variable `name` of its own environment. */
function steersClient(name: string): boolean {
  return CLIENT_ENV.includes(name) || /^(DOCKER|CONTAINER|CONTAINERS|BUILDX|XDG|LD)_/.test(name) ||
    name === "HTTP_PROXY" || name === "HTTPS_PROXY" || name === "NO_PROXY" ||
    /^(http|https|no)_proxy$/.test(name);
}

const CPU_QUANTITY = /^(\d+(?:\.\d+)?)(m?)$/;
const MEMORY_QUANTITY = /^(\d+(?:\.\d+)?)(?:e(\d+))?(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E|m)?$/;
const MEMORY_FACTORS: Record<string, number> = {
  "": 1,
  m: 1e-3,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * The limits of a container's `resources.limits`, in engine units.
 *
 * @param limits `resources.limits` of a Kubernetes container (`cpu: "500m"`, `memory: "1Gi"`).
 * @returns CPU cores and memory bytes; a field that is missing or not a quantity is left out.
 * @example
 * ```ts
 * import { containerLimits } from "./docker_runtime.ts";
 * const l = containerLimits({ cpu: "1500m", memory: "1Gi" });
 * console.assert(l.cpus === 1.5 && l.memoryBytes === 2 ** 30);
 * ```
 */
export function containerLimits(
  limits: Readonly<Record<string, string | number>> | undefined,
): ContainerLimits {
  const result: ContainerLimits = {};
  const cpu = CPU_QUANTITY.exec(String(limits?.cpu ?? "").trim());
  if (cpu) result.cpus = Number(cpu[1]) / (cpu[2] === "m" ? 1000 : 1);
  const memory = quantityBytes(String(limits?.memory ?? ""));
  if (memory !== undefined) result.memoryBytes = memory;
  return result;
}

/**
 * A Kubernetes byte quantity (`"1Gi"`, `"10M"`, `"12e6"`, `"2000000000"`) as a number of bytes,
 * rounded up.
 *
 * @param quantity The quantity as written in a pod spec.
 * @returns Bytes, or undefined when it is not a quantity.
 * @example
 * ```ts
 * import { quantityBytes } from "./docker_runtime.ts";
 * console.assert(quantityBytes("1Ki") === 1024 && quantityBytes("10M") === 1e7);
 * ```
 */
export function quantityBytes(quantity: string): number | undefined {
  const match = MEMORY_QUANTITY.exec(quantity.trim());
  if (!match) return undefined;
  const exponent = match[2] === undefined ? 1 : 10 ** Number(match[2]);
  return Math.ceil(Number(match[1]) * exponent * (MEMORY_FACTORS[match[3] ?? ""] ?? 1));
}

/** Options of {@linkcode DockerRuntime}. */
export interface DockerRuntimeOptions {
  /**
   * Which engine's command line to use.
   *
   * @default {"docker"}
   */
  engine?: "docker" | "podman";
  /**
   * What runs the containers named in {@linkcode DockerRuntimeOptions.hostContainers} (the
   * transporter): the host runtime in the local backend. Without it they run in the engine too
   * (their image must then exist).
   *
   * @default {undefined}
   */
  transporter?: ContainerRuntime;
  /**
   * Names of the containers handed to {@linkcode DockerRuntimeOptions.transporter}.
   *
   * @default {["inputs", "outputs"]}
   */
  hostContainers?: readonly string[];
  /**
   * Value of the `io.planetary.server` label on this runtime's containers. At start, every
   * container with this label is removed (what a server that died left). Give the same id to
   * the same server across restarts (the local backend derives it from its work folder).
   *
   * @default {a random id}
   */
  serverId?: string;
  /**
   * Receives the server-log lines of the runtime (image pulls and their progress, clean-ups).
   *
   * @default {console.error}
   */
  log?: (line: string) => void;
}

/** The part of `docker inspect` that tells how a container ended. */
interface EngineState {
  Status?: string;
  ExitCode?: number;
  OOMKilled?: boolean;
  Error?: string;
}

/**
 * Runs executor containers with docker or podman in their image, and the transporter
 * containers with the given host runtime (see the module doc for why).
 *
 * @example
 * ```ts ignore
 * import { DockerRuntime } from "./docker_runtime.ts";
 * import { HostRuntime } from "./host_runtime.ts";
 * const runtime = new DockerRuntime({ engine: "docker", transporter: new HostRuntime() });
 * await runtime.ensureAvailable(); // throws LocalBackendError RUNTIME_UNAVAILABLE otherwise
 * ```
 */
export class DockerRuntime implements ContainerRuntime {
  /** `docker` or `podman`. */
  readonly name: "docker" | "podman";
  /** Value of the `io.planetary.server` label of this runtime's containers. */
  readonly serverId: string;
  #transporter: ContainerRuntime | undefined;
  #hostContainers: readonly string[];
  #log: (line: string) => void;
  #available: Promise<void> | undefined;
  #images = new Map<string, Promise<PullError | undefined>>();
  /** Engine name → id of the containers this runtime runs now. */
  #running = new Map<string, string>();
  /** Engine name → its writable layer (asked once). */
  #layers = new Map<string, Promise<string | undefined>>();

  /**
   * Creates the runtime (nothing is checked until {@linkcode DockerRuntime.ensureAvailable}).
   *
   * @param options See {@linkcode DockerRuntimeOptions}; a bare engine name is accepted too.
   */
  constructor(options: DockerRuntimeOptions | "docker" | "podman" = {}) {
    const {
      engine = "docker",
      transporter,
      hostContainers = ["inputs", "outputs"],
      serverId = crypto.randomUUID().replaceAll("-", "").slice(0, 16),
      log = (line: string) => console.error(line),
    } = typeof options === "string" ? { engine: options } : options;
    this.name = engine;
    this.serverId = serverId;
    this.#transporter = transporter;
    this.#hostContainers = hostContainers;
    this.#log = log;
  }

  /**
   * Checks that `<engine> info` works (and the transporter's runtime, when there is one), then
   * removes every container left with this runtime's server id.
   *
   * @returns Resolves when the runtime can run containers.
   * @throws {LocalBackendError} `RUNTIME_UNAVAILABLE` when the engine does not answer or the
   *   transporter's runtime cannot work here.
   */
  ensureAvailable(): Promise<void> {
    this.#available ??= (async () => {
      // podman's `info` has no ServerVersion field (its template fails on it).
      const version = this.name === "podman" ? "{{.Version.Version}}" : "{{.ServerVersion}}";
      const info = await this.#engine(["info", "--format", version]);
      if (!info.success) {
        throw new LocalBackendError(
          "RUNTIME_UNAVAILABLE",
          `Cannot use ${this.name}: "${this.name} info" failed: ${lastLine(info.stderr)}`,
        );
      }
      await this.removeLeftovers();
      if (this.#transporter) {
        try {
          await this.#transporter.ensureAvailable();
        } catch (error) {
          throw new LocalBackendError(
            "RUNTIME_UNAVAILABLE",
            `Cannot use ${this.name}: the transporter runs on the ${this.#transporter.name} ` +
              `runtime, which cannot work here: ${
                error instanceof Error ? error.message : String(error)
              }`,
            { cause: error },
          );
        }
      }
    })();
    this.#available.catch(() => {
      this.#available = undefined;
    });
    return this.#available;
  }

  /**
   * Removes (killing first) every container of the engine labelled with this runtime's server
   * id.
   *
   * @returns How many were removed.
   */
  async removeLeftovers(): Promise<number> {
    const list = await this.#engine([
      "ps",
      "--all",
      "--quiet",
      "--filter",
      `label=${LABEL_SERVER}=${this.serverId}`,
    ]);
    const ids = list.success ? list.stdout.split(/\s+/).filter((id) => id) : [];
    if (ids.length === 0) return 0;
    this.#log(`${this.name}: removing ${ids.length} container(s) left by an earlier run`);
    await this.#engine([...this.#rmForce(), ...ids]);
    return ids.length;
  }

  /**
   * Runs one container: a transporter container on the transporter's runtime, any other in the
   * engine. Aborting `signal` removes the engine's container at once (`rm --force`).
   *
   * @param spec What to run.
   * @param signal Kills the container.
   * @param onStarted Called when the container is about to start.
   * @returns How it ended (`startError` holds the engine's reason when it could not start).
   */
  async run(
    spec: ContainerRunSpec,
    signal: AbortSignal,
    onStarted: () => void,
  ): Promise<ContainerExit> {
    if (this.#transporter && this.#hostContainers.includes(spec.containerName)) {
      return await this.#transporter.run(spec, signal, onStarted);
    }
    await this.ensureAvailable();
    const killed: ContainerExit = { exitCode: 137, signal: 9 };
    if (signal.aborted) return killed;
    const pullError = await this.#ensureImage(spec.image);
    if (signal.aborted) return killed;
    // The pod runner shows the container waiting with ErrImagePull / InvalidImageName, as a
    // kubelet does (a task then ends SYSTEM_ERROR with this reason, as on Kubernetes).
    if (pullError !== undefined) throw new LocalBackendError(pullError.code, pullError.message);

    let env: EngineEnv;
    try {
      env = engineEnv(spec.env);
    } catch (error) {
      return { exitCode: 125, startError: error instanceof Error ? error.message : String(error) };
    }
    const engineName = `planetary-${spec.podName}-${spec.containerName}`;
    await Deno.mkdir(spec.scratchDir, { recursive: true, mode: 0o700 });
    const envFile = `${spec.scratchDir}/env`;
    await Deno.writeTextFile(envFile, "", { mode: 0o600 });
    await Deno.chmod(envFile, 0o600);
    await Deno.writeTextFile(envFile, env.fileText);
    let created;
    try {
      // A leftover of the same name (a crash between create and rm) is ours to replace.
      await this.#engine([...this.#rmForce(), engineName]);
      created = await this.#engine(
        engineCreateArgs(spec, engineName, {
          envFile,
          inheritedEnv: Object.keys(env.inherited),
          labels: { [LABEL_POD]: spec.podName, [LABEL_SERVER]: this.serverId },
        }),
        env.inherited,
      );
    } finally {
      await Deno.remove(envFile).catch(() => {});
    }
    if (!created.success) {
      return {
        exitCode: 125,
        startError: `${this.name} create failed: ${lastLine(created.stderr)}`,
      };
    }
    this.#running.set(engineName, created.stdout.trim());
    const remove = (): void => {
      void this.#engine([...this.#rmForce(), engineName]).catch(() => {});
    };
    signal.addEventListener("abort", remove, { once: true });
    // podman 4.3's conmon (2.1.6) writes its OOM marker, a file named `oom`, into its working
    // directory (the one of `podman start`), and podman never reads it there: `OOMKilled`
    // stays false on cgroup v1. Started in the container's own scratch folder, the marker
    // tells this container's OOM kill apart (and none lands in the server's folder).
    const oomMarker = `${spec.scratchDir}/oom`;
    await Deno.remove(oomMarker).catch(() => {});
    try {
      if (signal.aborted) return killed;
      const log = await Deno.open(spec.logFile, { create: true, append: true });
      let startStderr = "";
      let writeError: unknown;
      try {
        const child = new Deno.Command(this.name, {
          args: ["start", "--attach", engineName],
          clearEnv: true,
          env: clientEnv(),
          cwd: spec.scratchDir,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        onStarted();
        // A failed log write (a full disk) never rejects: it kills the container, which then
        // fails with the reason (as on the host runtime); the streams are drained either way.
        let stopping: Promise<unknown> | undefined;
        const stop = (): void => {
          stopping ??= this.#engine(["kill", engineName]);
        };
        const tail = new StreamTail(4096);
        const [, copied] = await Promise.all([
          child.status,
          copyToLog([child.stdout, child.stderr.pipeThrough(tail.stream())], log, stop),
        ]);
        await stopping;
        writeError = copied;
        startStderr = lastLine(tail.text());
      } finally {
        log.close();
      }
      if (signal.aborted) return killed;
      if (writeError !== undefined) {
        throw new Error(
          `${describeLogWriteError(writeError)} while writing the log of container ` +
            `"${spec.containerName}" (${spec.logFile}): the container was stopped`,
          { cause: writeError },
        );
      }
      const state = await this.#state(engineName);
      if (!state) {
        return {
          exitCode: 125,
          startError: `${this.name} lost the container: ${startStderr || "it is gone"}`,
        };
      }
      // podman leaves a container that could not start in "created" with exit code 0 and no
      // Error (the reason is only on the stderr of `start`); docker sets Error.
      if (state.Status === "created" && !state.Error) {
        return { exitCode: 125, startError: `${this.name} start failed: ${startStderr}` };
      }
      const exitCode = state.ExitCode ?? 0;
      if (state.Error) return { exitCode: Math.max(exitCode, 1), startError: state.Error };
      const oomKilled = state.OOMKilled === true || await exists(oomMarker);
      return {
        exitCode,
        ...(exitCode > 128 && exitCode < 160 ? { signal: exitCode - 128 } : {}),
        ...(oomKilled ? { reason: "OOMKilled" as const } : {}),
      };
    } finally {
      signal.removeEventListener("abort", remove);
      this.#running.delete(engineName);
      this.#layers.delete(engineName);
      await this.#engine([...this.#rmForce(), engineName]).catch(() => {});
      await Deno.remove(oomMarker).catch(() => {});
    }
  }

  /**
   * The writable layer of a running container of the engine (its overlay upper directory,
   * `GraphDriver.Data.UpperDir`): the pod runner counts it against the container's
   * `ephemeral-storage` limit. `--storage-opt size=` is not used: it needs overlay2 on xfs
   * with `pquota` (or devicemapper, btrfs, zfs), and measuring works on every file system.
   *
   * @param podName The pod.
   * @param containerName The container.
   * @returns The directory, or undefined when the container is not running in the engine or
   *   its storage driver has no upper directory.
   */
  writableLayer(podName: string, containerName: string): Promise<string | undefined> {
    const engineName = `planetary-${podName}-${containerName}`;
    const id = this.#running.get(engineName);
    if (id === undefined) return Promise.resolve(undefined);
    let layer = this.#layers.get(engineName);
    if (!layer) {
      layer = this.#engine(["inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", id])
        .then((out) => {
          const path = out.stdout.trim();
          return out.success && path.startsWith("/") ? path : undefined;
        });
      this.#layers.set(engineName, layer);
    }
    return layer;
  }

  /**
   * `rm --force`, killing at once: docker's kills with SIGKILL, podman's stops first with a
   * 10 s grace period unless `--time 0` (a shell PID 1 ignores SIGTERM: cancel would wait).
   */
  #rmForce(): string[] {
    return this.name === "podman" ? ["rm", "--force", "--time", "0"] : ["rm", "--force"];
  }

  /** `undefined` when the image is there (pulled now if needed), else why it is not. */
  #ensureImage(image: string): Promise<PullError | undefined> {
    let pending = this.#images.get(image);
    if (!pending) {
      pending = this.#pull(image);
      this.#images.set(image, pending);
      // A failure is not remembered: the next container tries again.
      void pending.then((error) => {
        if (error !== undefined) this.#images.delete(image);
      });
    }
    return pending;
  }

  async #pull(image: string): Promise<PullError | undefined> {
    if (!image) {
      return {
        code: "INVALID_IMAGE_NAME",
        message: `image "" not found: the container names no image`,
      };
    }
    if ((await this.#engine(["image", "inspect", "--format", "{{.Id}}", image])).success) {
      return undefined;
    }
    this.#log(`${this.name}: pulling image "${image}"`);
    const child = new Deno.Command(this.name, {
      args: ["pull", image],
      clearEnv: true,
      env: clientEnv(),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const progress = async (stream: ReadableStream<Uint8Array>): Promise<string> => {
      let last = "";
      for await (const line of stream.pipeThrough(new TextDecoderStream()).pipeThrough(lines())) {
        const text = line.trim();
        if (!text) continue;
        last = text;
        this.#log(`${this.name}: pull ${image}: ${text}`);
      }
      return last;
    };
    const [status, , lastError] = await Promise.all([
      child.status,
      progress(child.stdout),
      progress(child.stderr),
    ]);
    if (status.success) return undefined;
    const reason = lastError || `exit code ${status.code}`;
    return {
      code: /invalid reference format/i.test(reason) ? "INVALID_IMAGE_NAME" : "IMAGE_PULL_FAILED",
      message: `image "${image}" not found: pull failed: ${reason}`,
    };
  }

  async #state(engineName: string): Promise<EngineState | undefined> {
    const out = await this.#engine(["inspect", "--format", "{{json .State}}", engineName]);
    if (!out.success) return undefined;
    try {
      const parsed: unknown = JSON.parse(out.stdout);
      if (typeof parsed !== "object" || parsed === null) return undefined;
      const state = parsed as Record<string, unknown>;
      return {
        ...(typeof state.Status === "string" ? { Status: state.Status } : {}),
        ...(typeof state.ExitCode === "number" ? { ExitCode: state.ExitCode } : {}),
        ...(typeof state.OOMKilled === "boolean" ? { OOMKilled: state.OOMKilled } : {}),
        ...(typeof state.Error === "string" ? { Error: state.Error } : {}),
      };
    } catch {
      return undefined;
    }
  }

  async #engine(
    args: string[],
    extraEnv: Readonly<Record<string, string>> = {},
  ): Promise<{ success: boolean; stdout: string; stderr: string }> {
    try {
      const out = await new Deno.Command(this.name, {
        args,
        clearEnv: true,
        env: { ...extraEnv, ...clientEnv() },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      return {
        success: out.success,
        stdout: decoder.decode(out.stdout),
        stderr: decoder.decode(out.stderr),
      };
    } catch (error) {
      return {
        success: false,
        stdout: "",
        stderr: `cannot run "${this.name}": ${error instanceof Error ? error.message : error}`,
      };
    }
  }
}

/** The last non-empty line of `text`, or "no reason given". */
function lastLine(text: string): string {
  return text.trim().split("\n").map((l) => l.trim()).filter((l) => l).at(-1) ??
    "no reason given";
}

/** Why an image cannot be had: the code of the error the runtime throws, and its message. */
interface PullError {
  code: "IMAGE_PULL_FAILED" | "INVALID_IMAGE_NAME";
  message: string;
}

/** Keeps the last `size` bytes of a stream that passes through it unchanged. */
class StreamTail {
  #size: number;
  #tail = new Uint8Array(0);

  constructor(size: number) {
    this.#size = size;
  }

  /** A pass-through stream that records what goes by. */
  stream(): TransformStream<Uint8Array, Uint8Array> {
    return new TransformStream({
      transform: (chunk, controller) => {
        const keep = chunk.length >= this.#size ? chunk.slice(chunk.length - this.#size) : (() => {
          const from = this.#tail.subarray(
            Math.max(0, this.#tail.length + chunk.length - this.#size),
          );
          const joined = new Uint8Array(from.length + chunk.length);
          joined.set(from);
          joined.set(chunk, from.length);
          return joined;
        })();
        this.#tail = keep;
        controller.enqueue(chunk);
      },
    });
  }

  /** What was kept, as text. */
  text(): string {
    return new TextDecoder().decode(this.#tail);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Splits a text stream into lines (without their line breaks; `\r` ends a line too). */
function lines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split(/\r\n|\r|\n/);
      rest = parts.pop() ?? "";
      for (const part of parts) controller.enqueue(part);
    },
    flush(controller) {
      if (rest) controller.enqueue(rest);
    },
  });
}
