/**
 * Runs one container's program the way its pod spec asks, without a container engine: in a
 * private mount namespace (`unshare --mount`, needs root) whose root is an overlay of this
 * machine's `/` (the "image": the host's programs) mounted READ-ONLY when the container has
 * `readOnlyRootFilesystem`, with the pod's volumes bound at their mount paths (the only writable
 * places), as the given user and groups (`setpriv`), with `no_new_privs` and an empty
 * capability bounding set when asked. It shares the host's network (ports must differ) and PID
 * space, and seccomp profiles are not applied.
 *
 * Before the program starts, the setup proves the read-only root: as root inside the sandbox it
 * tries to create a file at `/`; when that succeeds the sandbox refuses to start (exit
 * {@linkcode ROOT_WRITABLE_EXIT}).
 *
 * The setup is a constant POSIX `sh` script; every path, value and argument reaches it as a
 * positional argument.
 *
 * ```ts ignore
 * const proc = startSandboxed({ name: "api", argv: ["/usr/bin/deno", "run", …], … });
 * await proc.waitForLog("listening");
 * await proc.kill();
 * ```
 *
 * @module
 */

import { killWithGrace } from "./process.ts";
import { BIND_MOUNTS_SCRIPT } from "../../src/orchestrator/backends/local/host_runtime.ts";

/** The exit code of a sandbox whose root should be read-only but took a write. */
export const ROOT_WRITABLE_EXIT = 125;

/** PATH of a container whose environment has none (the OCI default). */
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** One mount of the sandbox. */
export interface SandboxMount {
  /** The path on this machine. */
  source: string;
  /** Where the program sees it. */
  target: string;
  /** Bind it read-only. */
  readOnly: boolean;
  /** A directory or a single file. */
  kind: "dir" | "file";
}

/** The user a sandboxed program runs as. */
export interface SandboxUser {
  /** User id. */
  uid: number;
  /** Primary group id. */
  gid: number;
  /** Supplementary groups (`fsGroup`, `supplementalGroups`). */
  groups: number[];
}

/** What to run and how. */
export interface SandboxSpec {
  /** Short name (log file name). */
  name: string;
  /** The program and its arguments (`argv[0]` must not contain `=`). */
  argv: string[];
  /** The complete environment. */
  env: [string, string][];
  /** Mounts; parents before children (sorted here by depth). */
  mounts: SandboxMount[];
  /** Mount `/` read-only (`readOnlyRootFilesystem`). */
  readOnlyRoot: boolean;
  /** Run as this user; undefined = root. */
  user: SandboxUser | undefined;
  /** Set `no_new_privs` (`allowPrivilegeEscalation: false`). */
  noNewPrivileges: boolean;
  /** Empty the capability bounding and inheritable sets (`capabilities.drop: [ALL]`). */
  dropAllCapabilities: boolean;
  /** Working directory inside the sandbox. */
  workingDir: string;
  /** A fresh directory for the overlay's scratch files (removed after the exit). */
  scratchDir: string;
  /** File receiving stdout and stderr. */
  logPath: string;
}

const SETUP_SCRIPT = `set -eu
scratch=$1 ro=$2 uid=$3 gid=$4 groups=$5 nnp=$6 nocaps=$7 wd=$8 n=$9
shift 9
root=$scratch/root
nl='
'
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
${BIND_MOUNTS_SCRIPT}
if [ "$ro" = 1 ]; then
  mount -o remount,bind,ro "$root"
  if chroot "$root" /bin/sh -c ': > /.sandbox-write-probe' 2>/dev/null; then
    echo "sandbox: readOnlyRootFilesystem is set but / took a write" >&2
    exit ${ROOT_WRITABLE_EXIT}
  fi
fi
set -- env -i -C "$wd" -- "$@"
opts=0
if [ "$nocaps" = 1 ]; then set -- --bounding-set=-all --inh-caps=-all "$@"; opts=1; fi
if [ "$nnp" = 1 ]; then set -- --no-new-privs "$@"; opts=1; fi
if [ -n "$uid" ]; then
  if [ -n "$groups" ]; then set -- --groups="$groups" "$@"; else set -- --clear-groups "$@"; fi
  set -- --reuid="$uid" --regid="$gid" "$@"
  opts=1
fi
if [ "$opts" = 1 ]; then set -- setpriv "$@"; fi
exec chroot "$root" "$@"
`;

/** A sandboxed program whose stdout and stderr go to a log file. */
export class SandboxedProcess {
  /** Short name. */
  readonly name: string;
  /** Its log file. */
  readonly logPath: string;
  /** Process id (the program itself once the setup has exec'd it). */
  readonly pid: number;
  /** Resolves with the exit status, once the output is flushed and the scratch removed. */
  readonly status: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #exited = false;

  /**
   * Starts the sandbox.
   *
   * @param spec What to run and how.
   * @throws {TypeError} When `argv[0]` holds `=` or an env name is invalid.
   */
  constructor(spec: SandboxSpec) {
    const { name, argv, env, readOnlyRoot, user, workingDir, scratchDir, logPath } = spec;
    if (argv.length === 0 || argv[0]!.includes("=")) {
      throw new TypeError(`sandbox ${name}: argv[0] must be set and hold no "="`);
    }
    const environment = new Map(env);
    if (!environment.has("PATH")) environment.set("PATH", DEFAULT_PATH);
    for (const key of environment.keys()) {
      if (!/^[^=\0]+$/.test(key)) throw new TypeError(`sandbox ${name}: bad env name "${key}"`);
    }
    const mounts = [...spec.mounts].sort((a, b) =>
      a.target.split("/").length - b.target.split("/").length
    );
    for (const sub of ["root", "upper", "work"]) {
      Deno.mkdirSync(`${scratchDir}/${sub}`, { recursive: true });
    }
    this.name = name;
    this.logPath = logPath;
    const log = Deno.openSync(logPath, { write: true, create: true, append: true });
    this.#child = new Deno.Command("unshare", {
      args: [
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        SETUP_SCRIPT,
        "planetary-sandbox",
        scratchDir,
        readOnlyRoot ? "1" : "0",
        user ? String(user.uid) : "",
        user ? String(user.gid) : "",
        user ? user.groups.join(",") : "",
        spec.noNewPrivileges ? "1" : "0",
        spec.dropAllCapabilities ? "1" : "0",
        workingDir || "/",
        String(mounts.length),
        ...mounts.flatMap((m) => [m.kind, m.readOnly ? "1" : "0", m.source, m.target]),
        ...[...environment].map(([key, value]) => `${key}=${value}`),
        ...argv,
      ],
      clearEnv: true,
      env: { PATH: DEFAULT_PATH },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    const sink = (): WritableStream<Uint8Array> =>
      new WritableStream({ write: (chunk) => void log.writeSync(chunk) });
    const piping = Promise.allSettled([
      this.#child.stdout.pipeTo(sink()),
      this.#child.stderr.pipeTo(sink()),
    ]).finally(() => log.close());
    this.status = this.#child.status.then(async (status) => {
      this.#exited = true;
      await piping;
      await Deno.remove(scratchDir, { recursive: true }).catch(() => {});
      return status;
    });
  }

  /** Whether the program ended. */
  get exited(): boolean {
    return this.#exited;
  }

  /**
   * What the program wrote so far.
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
   * Sends `signal`, then SIGKILL after `graceMs`; waits for the exit.
   *
   * @param signal The first signal.
   * @param graceMs How long to wait before SIGKILL.
   * @returns The exit status.
   */
  async kill(signal: Deno.Signal = "SIGTERM", graceMs = 15_000): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      await killWithGrace(this.#child, this.status, signal, graceMs);
    }
    return await this.status;
  }

  /**
   * Waits until the log contains a line matching `pattern`.
   *
   * @param pattern What to find (a string is searched for literally).
   * @param timeoutMs Deadline.
   * @returns The first matching line.
   * @throws {Error} When the program exits first or the deadline passes (with the log).
   */
  async waitForLog(pattern: string | RegExp, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const matches = (line: string): boolean =>
      typeof pattern === "string" ? line.includes(pattern) : pattern.test(line);
    for (;;) {
      const line = this.log().split("\n").find(matches);
      if (line !== undefined) return line;
      if (this.#exited) {
        await this.status;
        throw new Error(`${this.name} exited before logging ${pattern}:\n${this.log()}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`${this.name} did not log ${pattern} in ${timeoutMs} ms:\n${this.log()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/**
 * Starts a program in a sandbox.
 *
 * @param spec What to run and how.
 * @returns The running program.
 */
export function startSandboxed(spec: SandboxSpec): SandboxedProcess {
  return new SandboxedProcess(spec);
}

/**
 * Runs a program in a sandbox to its end.
 *
 * @param spec What to run and how.
 * @returns The exit status and everything it wrote.
 */
export async function runSandboxed(
  spec: SandboxSpec,
): Promise<{ status: Deno.CommandStatus; log: string }> {
  const proc = new SandboxedProcess(spec);
  const status = await proc.status;
  return { status, log: proc.log() };
}
