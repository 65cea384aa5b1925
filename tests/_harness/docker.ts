/**
 * A private Docker engine for tests: starts Debian's `dockerd` (package `docker.io`, installed
 * by .ci/run; this module installs nothing) with its own socket, data root, exec root and pid
 * file in a temporary folder, without a bridge and without iptables rules, so the machine's
 * docker state (and its network) stay as they were. Stopping it ends the daemon (and its
 * containerd), unmounts whatever it left mounted in its folder, and removes the folder.
 *
 * @module
 */
import { which } from "./component.ts";

/** Where Debian's `docker.io` puts the daemon. */
const DOCKERD = "/usr/sbin/dockerd";
/** Longest wait for `docker info` to answer after the start. */
const READY_MS = 60_000;

/** A running private engine. */
export interface DockerEngine extends AsyncDisposable {
  /** `DOCKER_HOST` value of the engine (`unix://…/docker.sock`). */
  readonly host: string;
  /** The engine's folder (socket, data root, exec root, log). */
  readonly dir: string;
  /**
   * Runs the docker client against this engine.
   *
   * @param args The client's arguments.
   * @param stdin Bytes for its stdin. @default none
   * @returns Exit code and output.
   */
  docker(args: string[], stdin?: Uint8Array): Promise<DockerResult>;
  /** The daemon's log so far. */
  log(): Promise<string>;
  /** Stops the daemon and removes every trace of it. */
  stop(): Promise<void>;
}

/** What a client command gave. */
export interface DockerResult {
  /** Exit code. */
  code: number;
  /** Its stdout. */
  stdout: string;
  /** Its stderr. */
  stderr: string;
}

/**
 * Whether a private engine can start here: `dockerd` from Debian's `docker.io`, a `docker`
 * client on PATH, and root.
 *
 * @returns A reason when it cannot, else undefined.
 */
export function dockerMissing(): string | undefined {
  try {
    Deno.statSync(DOCKERD);
  } catch {
    return `docker: ${DOCKERD} is missing (apt-get install docker.io)`;
  }
  if (!which("docker")) return "docker: no docker client on PATH (apt-get install docker.io)";
  if (Deno.uid() !== 0) return "docker: a private dockerd needs root";
  return undefined;
}

/**
 * Starts a private `dockerd` and waits until `docker info` answers.
 *
 * @returns The engine; stop it (or `await using` it) at the end.
 * @throws {Error} With the daemon's log when it does not become ready.
 */
export async function startDockerd(): Promise<DockerEngine> {
  const dir = await Deno.makeTempDir({ prefix: "planetary-dockerd-" });
  const host = `unix://${dir}/docker.sock`;
  const daemon = new Deno.Command(DOCKERD, {
    args: [
      "-H",
      host,
      "--data-root",
      `${dir}/root`,
      "--exec-root",
      `${dir}/exec`,
      "--pidfile",
      `${dir}/dockerd.pid`,
      "--bridge=none",
      "--iptables=false",
      "--ip6tables=false",
      "--ip-masq=false",
      "--userland-proxy=false",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const child = daemon.spawn();
  const logFile = await Deno.open(`${dir}/dockerd.log`, { create: true, append: true });
  const copy = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    for await (const chunk of stream) await logFile.write(chunk).catch(() => 0);
  };
  const stderrDone = Promise.all([copy(child.stdout), copy(child.stderr)])
    .catch(() => {}).finally(() => logFile.close());
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });

  const docker = async (args: string[], stdin?: Uint8Array): Promise<DockerResult> => {
    const proc = new Deno.Command("docker", {
      args,
      env: { DOCKER_HOST: host },
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (stdin) {
      const writer = proc.stdin.getWriter();
      await writer.write(stdin);
      await writer.close();
    }
    const out = await proc.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  };
  const log = (): Promise<string> => Deno.readTextFile(`${dir}/dockerd.log`).catch(() => "");

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      const running = await docker(["ps", "--all", "--quiet"]).catch(() => undefined);
      const ids = running?.stdout.split(/\s+/).filter((id) => id) ?? [];
      if (ids.length > 0) await docker(["rm", "--force", ...ids]).catch(() => {});
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch {
          // gone already
        }
      }
      const timer = setTimeout(() => {
        if (!exited) {
          try {
            child.kill("SIGKILL");
          } catch {
            // gone already
          }
        }
      }, 20_000);
      await status;
      clearTimeout(timer);
      await stderrDone;
      await unmountUnder(dir);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
    return stopped;
  };

  const deadline = Date.now() + READY_MS;
  for (;;) {
    if (exited) {
      const text = await log();
      await stop();
      throw new Error(`dockerd exited before it was ready:\n${text}`);
    }
    const info = await docker(["info", "--format", "{{.ServerVersion}}"]);
    if (info.code === 0) break;
    if (Date.now() > deadline) {
      const text = await log();
      await stop();
      throw new Error(`dockerd did not answer "docker info" within ${READY_MS} ms:\n${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { host, dir, docker, log, stop, [Symbol.asyncDispose]: stop };
}

/** Unmounts every mount point under `dir`, deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  const text = await Deno.readTextFile("/proc/self/mountinfo").catch(() => "");
  const points = text.split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .map((p) => p.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of points) {
    await new Deno.Command("umount", { args: ["-l", point], stdout: "null", stderr: "null" })
      .output().catch(() => {});
  }
}
