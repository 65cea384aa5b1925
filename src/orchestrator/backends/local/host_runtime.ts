/**
 * The host runtime of the local backend: runs each container's `command` + `args` DIRECTLY on
 * this machine, with the host's own programs, inside private Linux mount and PID namespaces.
 *
 * What it gives: the container's volumes appear at their exact container paths (`/data`,
 * `/planetary/spec/transfer.json`, `/dev/termination-log`…) without touching the host's real
 * paths; the container gets its own `/tmp`, `/dev` and `/proc`; killing the container kills
 * every process it started (the PID namespace dies with its first process).
 *
 * What it does NOT give — read before using it:
 * - **Weak isolation.** Executors (every container but the transporter's `inputs` and
 *   `outputs`, see {@linkcode HostRuntimeOptions.trustedContainers}) run as uid/gid 65534 with
 *   no capabilities and `no_new_privs` (util-linux `setpriv`), and their pod's own volumes are
 *   handed to that user first. But they still see the host file system (a copy-on-write
 *   overlay of `/`: writes outside their volumes land in a per-container scratch directory and
 *   are thrown away; they can read whatever is world-readable), share the host network
 *   (loopback services included) and its kernel. The transporter runs as the server's user
 *   (root). {@linkcode HostRuntimeOptions.sharedHostPaths} reach only the containers they name.
 * - **The image is ignored.** `sh`, `cat`, `deno`… are the host's; a task whose image carries
 *   its own tools must find them on the host.
 * - `resources` and `securityContext` (runAsUser…) are recorded in the pod but not enforced.
 * - It needs root, or unprivileged user namespaces (`unshare --user --map-root-user`) with
 *   overlayfs allowed in them (Linux 5.11+). {@linkcode HostRuntime.ensureAvailable} tells.
 *
 * The setup runs as a constant POSIX `sh` script: every path and argument reaches it as a
 * positional argument and every environment value through its environment, never spliced into
 * the script text; environment values (credentials from Secrets) stay out of process lists.
 *
 * @module
 */
import { ENV_WORKDIR } from "../../../pod/executor_wrapper.ts";
import type {
  ContainerExit,
  ContainerRunSpec,
  ContainerRuntime,
  ResolvedMount,
} from "./container_runtime.ts";
export type {
  ContainerExit,
  ContainerRunSpec,
  ContainerRuntime,
  ResolvedMount,
} from "./container_runtime.ts";
import { LocalBackendError } from "./local_backend_error.ts";
import { copyToLog, describeLogWriteError, readLogTail } from "./container_log.ts";

/**
 * A host directory shared with containers: at the same path (read-write), or at
 * `containerPath` (read-write unless `readOnly`).
 */
export type SharedHostPath = string | {
  /** The host directory. */
  hostPath: string;
  /** Where containers see it. */
  containerPath: string;
  /** Bind it read-only. @default false */
  readOnly?: boolean;
  /**
   * Names of the only containers that see it (for example the transporter's `inputs` and
   * `outputs`: executors then do not see Planetary's own files at all).
   * @default {every container}
   */
  containers?: readonly string[];
};

/**
 * A mount as the pod runner makes it: `podOwned` marks a writable folder of the pod's own (an
 * `emptyDir`, never an administrator's `hostPath`), which the host runtime hands to the user
 * of an unprivileged container before it starts, so that it can write what the transporter
 * (root) downloaded. Other runtimes ignore the mark.
 */
export interface PodOwnedMount extends ResolvedMount {
  /** The source belongs to the pod and may change owner. @default false */
  podOwned?: boolean;
}

/** A user and group id that containers run as. */
export interface ContainerUser {
  /** User id. */
  uid: number;
  /** Group id. */
  gid: number;
}

/** The user of unprivileged containers by default: `nobody`/`nogroup` (65534). */
export const UNPRIVILEGED_USER: Readonly<ContainerUser> = Object.freeze({
  uid: 65534,
  gid: 65534,
});

/** Containers that run with the server's user and capabilities by default: the transporter. */
export const TRUSTED_CONTAINERS: readonly string[] = Object.freeze(["inputs", "outputs"]);

/** Options of {@linkcode HostRuntime}. */
export interface HostRuntimeOptions {
  /**
   * Names of variables of the server's environment passed through to every container (a
   * container's own `env` wins).
   *
   * @default {["PATH", "HOME", "DENO_DIR"]}
   */
  hostEnv?: string[];
  /**
   * Host directories bound read-write in every container, so that what the container writes
   * there reaches the host (for example the root of `file://` storage): a path is bound at the
   * same path, a `{ hostPath, containerPath }` pair at another. Missing ones are skipped.
   *
   * @default {the Deno cache: `$DENO_DIR`, else `$HOME/.cache/deno`}
   */
  sharedHostPaths?: SharedHostPath[];
  /**
   * Directory for the availability probe's scratch files.
   *
   * @default {Deno.makeTempDir()}
   */
  probeDir?: string;
  /**
   * Names of the containers that run as the server's own user with its capabilities (the
   * transporter, which writes `file://` storage and reads the Deno cache). Every other
   * container runs as {@linkcode HostRuntimeOptions.user} with no capabilities at all
   * (`setpriv --no-new-privs`, empty bounding set).
   *
   * @default {TRUSTED_CONTAINERS: `inputs` and `outputs`}
   */
  trustedContainers?: readonly string[];
  /**
   * The user and group of the other containers. Their pod-owned volumes are handed to this
   * user before they start (see {@linkcode HostRuntime.volumeOwner}). In a user namespace
   * (the server is not root) no other id is mapped: they then keep the namespace's root, but
   * still without any capability. Without a user, every container runs as the server's user
   * with its capabilities, as the transporter does (`planetary serve --task-user` sets one;
   * {@linkcode UNPRIVILEGED_USER} is the usual choice, and the default of the local backend
   * as `planetary serve` makes it). Killing the container kills all of its processes whatever
   * their user (they die with the PID namespace).
   *
   * @default {undefined (the server's user)}
   */
  user?: ContainerUser;
}

/** PATH of a container whose environment has none (the Kubernetes/OCI default). */
export const DEFAULT_CONTAINER_PATH =
  "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The part of a setup script that bind-mounts `$n` mounts, given as the next `4 × $n`
 * arguments `kind mro source target` (`kind` = `file` or `dir`, `mro` = 1 for read-only), into
 * the new root `$root`. Each target is resolved inside the root first (`realpath -m`), so a
 * symlink in the image cannot send a mount outside it; `$nl` must hold a newline.
 */
const BIND_MOUNTS_SCRIPT = `while [ "$n" -gt 0 ]; do
  kind=$1 mro=$2 src=$3 tgt=$4
  shift 4
  n=$((n - 1))
  t=$(chroot "$root" realpath -m -- "$tgt" && echo .)
  t=\${t%.}
  t=\${t%"$nl"}
  case $t in
  /?*) ;;
  *) echo "planetary: cannot mount at $tgt" >&2; exit 1 ;;
  esac
  if [ "$kind" = file ]; then
    mkdir -p "$root\${t%/*}"
    [ -e "$root$t" ] || : > "$root$t"
  else
    mkdir -p "$root$t"
  fi
  mount --bind "$src" "$root$t"
  if [ "$mro" = 1 ]; then mount -o remount,bind,ro "$root$t"; fi
done`;

/**
 * The setup script, run as PID 1 of the new namespaces. Arguments:
 * `scratch workingDir priv mountCount (kind ro source target)… envCount argv…`, where `priv`
 * is `-` (run the program with the setup's own user and capabilities), `caps` (drop every
 * capability, keep the user) or `uid:gid` (become that user, with no capability; a working
 * directory the setup creates belongs to them); the container's
 * environment comes as `PLANETARY_ENV_NAME_<i>` and `PLANETARY_ENV_VALUE_<i>` variables of the
 * script's own environment (i < envCount), not as arguments, so that values (credentials from Secrets) never show in a
 * process list (`/proc/<pid>/cmdline` is world-readable, `environ` is not). They are moved in
 * front of argv for `env -i` only at the very end. `$scratch` holds `root/`, `upper/`, `work/`,
 * `tmp/` (made beforehand) and receives the `started` marker just before the program is
 * executed.
 */
const SETUP_SCRIPT = `set -eu
scratch=$1 wd=$2 priv=$3 n=$4
shift 4
root=$scratch/root
nl='
'
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$root"
mount -t proc proc "$root/proc"
# Kernel settings stay out of reach (as in docker): /proc/sys, /proc/sysrq-trigger and /sys
# read-only, also for an executor that keeps uid 0 without capabilities.
for p in sys sysrq-trigger; do
  [ -e "$root/proc/$p" ] || continue
  mount --bind "$root/proc/$p" "$root/proc/$p"
  mount -o remount,bind,ro "$root/proc/$p"
done
mount --rbind /sys "$root/sys"
mount -o remount,bind,ro "$root/sys"
mount -t tmpfs -o mode=755,nosuid tmpfs "$root/dev"
for d in null zero full random urandom tty; do
  : > "$root/dev/$d"
  mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir "$root/dev/pts" "$root/dev/shm"
mount --rbind /dev/pts "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount --bind "$scratch/tmp" "$root/tmp"
${BIND_MOUNTS_SCRIPT}
e=$1
shift
c=$#
i=0
while [ "$i" -lt "$e" ]; do
  eval "k=\\\${PLANETARY_ENV_NAME_$i} v=\\\${PLANETARY_ENV_VALUE_$i}"
  set -- "$@" "$k=$v"
  i=$((i + 1))
done
while [ "$c" -gt 0 ]; do
  a=$1
  shift
  set -- "$@" "$a"
  c=$((c - 1))
done
if [ "$priv" = - ]; then
  chroot "$root" mkdir -p -- "$wd"
  : > "$scratch/started"
  exec chroot "$root" env -i -C "$wd" -- "$@"
fi
if ! chroot "$root" test -d "$wd"; then
  # Folders made for the working directory must be traversable by the executor's user,
  # whatever umask the server runs with.
  (umask 022 && chroot "$root" mkdir -p -- "$wd")
  if [ "$priv" != caps ]; then chroot "$root" chown -- "$priv" "$wd"; fi
fi
: > "$scratch/started"
if [ "$priv" = caps ]; then
  exec chroot "$root" setpriv --inh-caps=-all --bounding-set=-all --no-new-privs \\
    -- env -i -C "$wd" -- "$@"
fi
# Changing the user clears the parent-death signal that \`unshare --kill-child\` set: setpriv
# sets it again, so that killing unshare (all the server may kill) still ends the namespace.
exec chroot "$root" setpriv --reuid="\${priv%:*}" --regid="\${priv#*:}" --clear-groups \\
  --inh-caps=-all --bounding-set=-all --no-new-privs --pdeathsig SIGKILL \\
  -- env -i -C "$wd" -- "$@"
`;

const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

/**
 * Runs containers as host processes in private mount + PID namespaces (see the module doc:
 * it does NOT isolate, ignores the image, and needs root or user namespaces).
 *
 * @example
 * ```ts ignore
 * import { HostRuntime } from "./host_runtime.ts";
 * const runtime = new HostRuntime({ sharedHostPaths: ["/srv/storage"] });
 * await runtime.ensureAvailable(); // throws LocalBackendError RUNTIME_UNAVAILABLE otherwise
 * ```
 */
export class HostRuntime implements ContainerRuntime {
  /** Always `host`. */
  readonly name = "host";
  #hostEnv: string[];
  #sharedHostPaths: SharedHostPath[] | undefined;
  #probeDir: string | undefined;
  #trusted: ReadonlySet<string>;
  #user: ContainerUser | undefined;
  #userNamespace = false;
  #available: Promise<void> | undefined;

  /**
   * Creates the runtime (nothing is checked until {@linkcode HostRuntime.ensureAvailable}).
   *
   * @param options See {@linkcode HostRuntimeOptions}.
   */
  constructor(options: HostRuntimeOptions = {}) {
    const {
      hostEnv = ["PATH", "HOME", "DENO_DIR"],
      sharedHostPaths,
      probeDir,
      trustedContainers = TRUSTED_CONTAINERS,
      user,
    } = options;
    // 0 is allowed when asked for (a single trusted user who runs the workflow engine as root):
    // the executors keep root's ids but still have no capability and no new privileges.
    if (
      user !== undefined &&
      ![user.uid, user.gid].every((id) => Number.isInteger(id) && id >= 0 && id < 2 ** 32)
    ) {
      throw new RangeError(
        `Cannot run containers as ${user.uid}:${user.gid}: the ids must be integers from 0`,
      );
    }
    this.#trusted = new Set(trustedContainers);
    this.#user = user === undefined ? undefined : { uid: user.uid, gid: user.gid };
    this.#hostEnv = [...hostEnv];
    this.#sharedHostPaths = sharedHostPaths ? [...sharedHostPaths] : undefined;
    this.#probeDir = probeDir;
  }

  /**
   * Checks once that `unshare` can make mount + PID namespaces and mount an overlay of `/`:
   * as root directly, otherwise inside a user namespace (`--user --map-root-user`).
   *
   * @returns Resolves when the runtime works here.
   * @throws {LocalBackendError} `RUNTIME_UNAVAILABLE` with the reason when it does not.
   */
  ensureAvailable(): Promise<void> {
    this.#available ??= this.#probe();
    return this.#available;
  }

  async #probe(): Promise<void> {
    const isRoot = Deno.uid() === 0;
    const dir = this.#probeDir
      ? await Deno.makeTempDir({ dir: this.#probeDir, prefix: "probe-" })
      : await Deno.makeTempDir({ prefix: "planetary-probe-" });
    try {
      for (const sub of ["upper", "work", "root"]) await Deno.mkdir(`${dir}/${sub}`);
      const attempts = isRoot ? [false] : [true];
      let reason = "";
      for (const userNs of attempts) {
        try {
          const out = await new Deno.Command("unshare", {
            args: [
              ...(userNs ? ["--user", "--map-root-user"] : []),
              ...NAMESPACE_FLAGS,
              "/bin/sh",
              "-c",
              'mount -t overlay overlay -o "lowerdir=/,upperdir=$1/upper,workdir=$1/work" "$1/root" ' +
              "&& setpriv --inh-caps=-all --bounding-set=-all --no-new-privs " +
              "--pdeathsig SIGKILL -- true",
              "planetary-probe",
              dir,
            ],
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          }).output();
          if (out.success) {
            this.#userNamespace = userNs;
            return;
          }
          reason = new TextDecoder().decode(out.stderr).trim();
        } catch (error) {
          reason = error instanceof Error ? error.message : String(error);
        }
      }
      throw new LocalBackendError(
        "RUNTIME_UNAVAILABLE",
        `The host runtime cannot run containers here: it needs root or user namespaces ` +
          `(unshare --user --map-root-user) with overlayfs, and setpriv (util-linux) to drop ` +
          `the executors' privileges; running as uid ${Deno.uid()}: ` +
          (reason || "unshare failed"),
      );
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }

  /**
   * Runs one container: see {@linkcode ContainerRuntime.run}.
   *
   * @param spec What to run.
   * @param signal Aborting it kills the container's whole process tree.
   * @param onStarted Called when the program is about to be executed.
   * @returns How it ended.
   */
  async run(
    spec: ContainerRunSpec,
    signal: AbortSignal,
    onStarted: () => void,
  ): Promise<ContainerExit> {
    await this.ensureAvailable();
    if (spec.command.length === 0) {
      return {
        exitCode: 128,
        startError: `container "${spec.containerName}" has no command: the host runtime ignores ` +
          `the image "${spec.image}" and cannot run its entrypoint`,
      };
    }
    const scratch = spec.scratchDir;
    if (/[,:\\]/.test(scratch)) {
      throw new LocalBackendError(
        "INVALID_POD",
        `Cannot use scratch directory "${scratch}": overlayfs options forbid ',', ':' and '\\'`,
      );
    }
    for (const sub of ["root", "upper", "work", "tmp"]) {
      await Deno.mkdir(`${scratch}/${sub}`, { recursive: true });
    }
    await Deno.chmod(`${scratch}/tmp`, 0o1777);

    const mounts: ResolvedMount[] = [
      ...await this.#sharedMounts(spec.containerName),
      ...spec.mounts,
    ];
    const user = this.#user;
    const priv = this.#trusted.has(spec.containerName) || user === undefined
      ? "-"
      : this.#userNamespace
      ? "caps"
      : `${user.uid}:${user.gid}`;
    if (user !== undefined && priv !== "-" && priv !== "caps") {
      const owned = spec.mounts.filter((m) => (m as PodOwnedMount).podOwned === true);
      await handOver(owned.map((m) => m.source), user);
    }
    const env = this.#environment(spec.env);
    const argv = spec.command[0]?.includes("=")
      ? ["/bin/sh", "-c", 'exec "$0" "$@"', ...spec.command]
      : spec.command;
    const args = [
      ...(this.#userNamespace ? ["--user", "--map-root-user"] : []),
      ...NAMESPACE_FLAGS,
      "/bin/sh",
      "-c",
      SETUP_SCRIPT,
      "planetary-host-runtime",
      scratch,
      // The executor wrapper creates and enters its task's workdir itself, which an
      // unprivileged executor cannot do in the host's root: the script makes it first.
      spec.workingDir || env.find(([name]) => name === ENV_WORKDIR)?.[1] || "/",
      priv,
      String(mounts.length),
      ...mounts.flatMap((m) => [m.kind, m.readOnly ? "1" : "0", m.source, m.target]),
      String(env.length),
      ...argv,
    ];
    const passed: Record<string, string> = { PATH: DEFAULT_CONTAINER_PATH };
    for (const [i, [name, value]] of env.entries()) {
      passed[`PLANETARY_ENV_NAME_${i}`] = name;
      passed[`PLANETARY_ENV_VALUE_${i}`] = value;
    }

    const log = await Deno.open(spec.logFile, { create: true, append: true });
    try {
      if (signal.aborted) return { exitCode: 137, signal: 9 };
      const child = new Deno.Command("unshare", {
        args,
        clearEnv: true,
        env: passed,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let killing: Promise<void> | undefined;
      const onAbort = (): void => {
        killing ??= killTree(child);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const startedWatch = watchStarted(`${scratch}/started`, child.status, onStarted);
      try {
        // A failed log write (a full disk) never rejects: it stops the container, which then
        // fails with the reason; the streams are drained to the end either way.
        const copied = copyToLog([child.stdout, child.stderr], log, onAbort);
        const status = await child.status;
        const writeError = await copied;
        await startedWatch;
        if (killing) await killing;
        if (writeError !== undefined && !signal.aborted) {
          throw new Error(
            `${describeLogWriteError(writeError)} while writing the log of container ` +
              `"${spec.containerName}" (${spec.logFile}): the container was stopped`,
            { cause: writeError },
          );
        }
        const signalNumber = status.signal ? SIGNAL_NUMBERS[status.signal] ?? 9 : undefined;
        const exit: ContainerExit = signalNumber === undefined
          ? { exitCode: status.code }
          : { exitCode: 128 + signalNumber, signal: signalNumber };
        if (!await exists(`${scratch}/started`) && !signal.aborted) {
          const text = await readLogTail(spec.logFile, { maxBytes: 4096, maxLines: 10 });
          exit.startError = text.trim() ||
            `host runtime setup exited with ${exit.exitCode}`;
        }
        return exit;
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    } finally {
      log.close();
    }
  }

  #environment(own: [string, string][]): [string, string][] {
    const merged = new Map<string, string>();
    for (const name of this.#hostEnv) {
      const value = Deno.env.get(name);
      if (value !== undefined) merged.set(name, value);
    }
    for (const [name, value] of own) merged.set(name, value);
    if (!merged.has("PATH")) merged.set("PATH", DEFAULT_CONTAINER_PATH);
    return [...merged];
  }

  async #sharedMounts(containerName: string): Promise<ResolvedMount[]> {
    let paths = this.#sharedHostPaths;
    if (paths === undefined) {
      const home = Deno.env.get("HOME");
      const denoDir = Deno.env.get("DENO_DIR") ?? (home ? `${home}/.cache/deno` : undefined);
      paths = denoDir ? [denoDir] : [];
    }
    const mounts: ResolvedMount[] = [];
    for (const entry of paths) {
      const path = typeof entry === "string" ? entry : entry.hostPath;
      const target = typeof entry === "string" ? undefined : entry.containerPath;
      const readOnly = typeof entry === "string" ? false : entry.readOnly === true;
      const only = typeof entry === "string" ? undefined : entry.containers;
      if (only !== undefined && !only.includes(containerName)) continue;
      if (!path.startsWith("/") || (target !== undefined && !target.startsWith("/"))) continue;
      try {
        const real = await Deno.realPath(path);
        if ((await Deno.stat(real)).isDirectory) {
          mounts.push({ source: real, target: target ?? real, readOnly, kind: "dir" });
        }
      } catch {
        // missing: skipped
      }
    }
    return mounts;
  }
}

const NAMESPACE_FLAGS = [
  "--mount",
  "--propagation",
  "private",
  "--pid",
  "--fork",
  "--kill-child=SIGKILL",
  "--",
];

/**
 * Hands folders of the pod to the user a container runs as: every file and folder in them
 * (a symbolic link is neither followed nor changed). In-process, with `lstat` first: no process
 * of the pod is alive that could swap an entry for a link in between (its containers run one
 * after another, and each one's PID namespace dies with it).
 */
async function handOver(paths: readonly string[], owner: ContainerUser): Promise<void> {
  const visit = async (path: string, info: Deno.FileInfo): Promise<void> => {
    if (info.isSymlink) return;
    if (info.uid !== owner.uid || info.gid !== owner.gid) {
      await Deno.chown(path, owner.uid, owner.gid);
    }
    if (!info.isDirectory) return;
    for await (const entry of Deno.readDir(path)) {
      const child = `${path}/${entry.name}`;
      await visit(child, await Deno.lstat(child));
    }
  };
  const sorted = [...new Set(paths)].sort((a, b) => a.length - b.length);
  const roots = sorted.filter((path, i) =>
    !sorted.slice(0, i).some((other) => path.startsWith(`${other}/`))
  );
  for (const path of roots) {
    try {
      await visit(path, await Deno.lstat(path));
    } catch (error) {
      throw new LocalBackendError(
        "INVALID_POD",
        `Cannot give the folder ${path} to user ${owner.uid}:${owner.gid}: ` +
          (error instanceof Error ? error.message : String(error)),
      );
    }
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

/** Calls `onStarted` once the setup script has created its `started` marker (or never). */
async function watchStarted(
  marker: string,
  done: Promise<Deno.CommandStatus>,
  onStarted: () => void,
): Promise<void> {
  let finished = false;
  void done.finally(() => finished = true);
  let delay = 5;
  while (!finished) {
    if (await exists(marker)) {
      onStarted();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 100);
  }
  if (await exists(marker)) onStarted();
}

/**
 * Kills PID 1 of the container's PID namespace (the kernel then kills every other process in
 * it, including ones that left the process group) and `unshare` itself, then waits until that
 * PID 1 is gone. Under `--allow-run=unshare,…` (how `planetary serve` runs) only `unshare` may
 * be killed: its death then kills PID 1 through the parent-death signal that `unshare
 * --kill-child` and, after a change of user, `setpriv --pdeathsig` set.
 */
async function killTree(child: Deno.ChildProcess): Promise<void> {
  const inits = await Deno.readTextFile(`/proc/${child.pid}/task/${child.pid}/children`)
    .then((text) => text.trim().split(/\s+/).filter(Boolean).map(Number))
    .catch(() => [] as number[]);
  for (const pid of inits) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // already gone, or not allowed (see above)
    }
  }
  try {
    child.kill("SIGKILL");
  } catch {
    // already gone
  }
  await child.status.catch(() => {});
  for (const pid of inits) await waitGone(pid);
}

/** Polls until a process is gone or a zombie (10 s at most). */
async function waitGone(pid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
    if (!stat || /^\d+ \(.*\) Z /s.test(stat)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
