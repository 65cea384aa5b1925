/**
 * The port between the local backend's pod runner and what actually starts a container on
 * this machine: the host runtime (plain processes in a private mount namespace) or a container
 * engine (docker/podman).
 *
 * @module
 */

/** One mount of a container, resolved to a path on this machine. */
export interface ResolvedMount {
  /** Absolute path on this machine (a directory, or a file for `kind: "file"`). */
  source: string;
  /** Absolute path inside the container. */
  target: string;
  /** Whether the container may not write through this mount. */
  readOnly: boolean;
  /** Whether the source is a directory or a single file. */
  kind: "dir" | "file";
}

/** Everything a runtime needs to start one container. */
export interface ContainerRunSpec {
  /** Name of the pod (a DNS label). */
  podName: string;
  /** Name of the container within the pod. */
  containerName: string;
  /** Image reference (ignored by the host runtime). */
  image: string;
  /**
   * The container's `command` followed by its `args`. Empty means "the image's entrypoint"
   * (only a container engine can honour that).
   */
  command: string[];
  /** The container's `args` when `command` is empty (the image entrypoint's arguments). */
  args: string[];
  /** The complete environment of the program, in order. */
  env: [string, string][];
  /** Working directory inside the container ("" = the image's default, `/` on the host). */
  workingDir: string;
  /** Mounts, parents before children. */
  mounts: ResolvedMount[];
  /** A private, empty directory of this container for its scratch data (rootfs, /tmp). */
  scratchDir: string;
  /** File that receives the container's stdout and stderr, interleaved as they come. */
  logFile: string;
  /** `securityContext.runAsUser`, when set (honoured by container engines only). */
  runAsUser?: number;
  /**
   * The container's `resources.limits`, when set (honoured by container engines only; the
   * local backend fills them in from the pod spec).
   */
  limits?: ContainerLimits;
}

/** Resource limits of one container, in engine units. */
export interface ContainerLimits {
  /** CPU cores (`docker run --cpus`), from `resources.limits.cpu`. */
  cpus?: number;
  /** Memory in bytes (`docker run --memory`), from `resources.limits.memory`. */
  memoryBytes?: number;
}

/** How a container ended. */
export interface ContainerExit {
  /** Exit code (128 + signal number when it was killed by a signal). */
  exitCode: number;
  /** The signal that killed it, when one did. */
  signal?: number;
  /**
   * Set when the container never started its program (the runtime's setup failed); holds
   * why. The pod runner reports such a container as terminated with reason `StartError`.
   */
  startError?: string;
  /**
   * Why it ended, when the runtime knows more than the exit code: `OOMKilled` when the
   * engine killed it for memory (then its status shows that reason, as a kubelet's).
   */
  reason?: "OOMKilled";
}

/** Starts containers on this machine. */
export interface ContainerRuntime {
  /** Short name (`host`, `docker`, `podman`). */
  readonly name: string;
  /**
   * Checks that the runtime can work here.
   *
   * @throws {LocalBackendError} With code `RUNTIME_UNAVAILABLE` when it cannot.
   */
  ensureAvailable(): Promise<void>;
  /**
   * Runs one container to completion. Aborting `signal` kills the container and every process
   * it started; the promise then resolves once they are gone.
   *
   * @param spec What to run.
   * @param signal Aborts (kills) the container.
   * @param onStarted Called once the program itself is about to start.
   * @returns How it ended.
   * @throws {LocalBackendError} `IMAGE_PULL_FAILED` or `INVALID_IMAGE_NAME` (with the engine's
   * reason) when the container's image cannot be had; the container then waits with
   * `ErrImagePull` / `InvalidImageName`, as on Kubernetes.
   */
  run(
    spec: ContainerRunSpec,
    signal: AbortSignal,
    onStarted: () => void,
  ): Promise<ContainerExit>;
}
