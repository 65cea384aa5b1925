/**
 * Test harness: runs `planetary serve` as a SUBPROCESS, exactly as a user would (the real CLI,
 * with exactly the permissions it documents in `SERVE_PERMISSIONS`), on a free loopback port,
 * with a temporary data folder and a temporary `file://` allow-list folder.
 *
 * @module
 */
import { SERVE_PERMISSIONS } from "../../cli/commands/serve.ts";
import { TesClient } from "../../src/client/mod.ts";

const CLI = new URL("../../cli/planetary.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** Options of {@linkcode startServe}. */
export interface StartServeOptions {
  /** `--max-tasks`. @default undefined (the server's default) */
  maxTasks?: number;
  /** More `planetary serve` arguments. @default [] */
  args?: string[];
  /** How long the server may take to answer `/readyz`, in ms. @default 120000 */
  startupMs?: number;
  /**
   * A data folder to copy as the starting database (see {@linkcode prepareDataTemplate}):
   * creating an embedded database takes ~20 s of CPU, copying a fresh one takes none.
   * @default undefined (a new database)
   */
  dataTemplate?: string;
  /** More environment variables of the server (on top of this process's). @default {} */
  env?: Record<string, string>;
  /**
   * `--runtime` of the local backend. The host runtime by default, so that a docker or podman
   * found on the machine does not change what a test runs on; `auto` lets the server choose.
   * @default "host"
   */
  runtime?: "auto" | "host" | "docker" | "podman";
}

/** A running `planetary serve` subprocess. */
export interface ServeHarness {
  /** Base URL of the current process (changes on {@linkcode ServeHarness.restart}). */
  readonly url: string;
  /** A client of the current process. */
  readonly client: TesClient;
  /** The temporary data folder (`--data-dir`). */
  readonly dataDir: string;
  /** The temporary folder `file://` URLs may use (`--file-allow`). */
  readonly storageDir: string;
  /** PID of the current serve process. */
  readonly pid: number;
  /** Everything the server processes wrote to stderr and stdout so far. */
  log(): string;
  /**
   * Sends `signal` to the server and waits until the process is gone.
   *
   * @param signal The signal. @default "SIGTERM"
   * @returns The exit status.
   */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Starts the server again on the same data folder (a new port), once stopped. */
  restart(): Promise<void>;
  /**
   * Stops the server (SIGKILL when SIGTERM is not enough), kills every process left from it
   * (task processes of a killed server), and removes the temporary folders.
   */
  close(): Promise<void>;
}

/** Picks a free loopback port (listen on port 0, read it back, close). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

interface Process {
  child: Deno.ChildProcess;
  url: string;
  drained: Promise<void>;
  exited: boolean;
}

/**
 * Starts `planetary serve` and waits until `/readyz` answers 200.
 *
 * @param options Server flags.
 * @returns The running server.
 * @throws {Error} When the server exits or does not become ready in time (with its log).
 */
export async function startServe(options: StartServeOptions = {}): Promise<ServeHarness> {
  const { maxTasks, args = [], startupMs = 120_000, dataTemplate, env = {}, runtime = "host" } =
    options;
  const root = await Deno.makeTempDir({ prefix: "planetary-e2e-" });
  const dataDir = `${root}/data`;
  const storageDir = `${root}/storage`;
  await Deno.mkdir(storageDir, { recursive: true });
  if (dataTemplate !== undefined) await copyDir(dataTemplate, dataDir);
  let text = "";
  let current: Process | undefined;
  let client: TesClient | undefined;

  async function spawn(): Promise<void> {
    const port = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--config",
        CONFIG,
        ...SERVE_PERMISSIONS,
        CLI,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--data-dir",
        dataDir,
        "--file-allow",
        storageDir,
        "--log-requests=false",
        ...(maxTasks === undefined ? [] : ["--max-tasks", String(maxTasks)]),
        "--runtime",
        runtime,
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { ...env, NO_COLOR: "1" },
    }).spawn();
    const process: Process = {
      child,
      url: `http://127.0.0.1:${port}`,
      exited: false,
      drained: Promise.all([child.stderr, child.stdout].map(async (stream) => {
        const decoder = new TextDecoder();
        for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
      })).then(() => {}),
    };
    void child.status.then(() => process.exited = true);
    current = process;
    client = new TesClient(process.url, { retries: 0 });
    const deadline = Date.now() + startupMs;
    for (;;) {
      if (process.exited) {
        await process.drained;
        throw new Error(`planetary serve exited before it was ready:\n${text}`);
      }
      try {
        const response = await fetch(`${process.url}/readyz`);
        await response.body?.cancel();
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        throw new Error(`planetary serve not ready after ${startupMs} ms:\n${text}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    const process = current;
    if (!process) throw new Error("planetary serve is not running");
    try {
      process.child.kill(signal);
    } catch {
      // already gone
    }
    const status = await process.child.status;
    await process.drained;
    current = undefined;
    return status;
  }

  try {
    await spawn();
  } catch (error) {
    await closeAll();
    throw error;
  }

  async function closeAll(): Promise<void> {
    const process = current;
    if (process) {
      const forced = setTimeout(() => {
        try {
          process.child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, 15_000);
      await stop("SIGTERM").catch(() => {});
      clearTimeout(forced);
    }
    await killProcessesMentioning(root);
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }

  return {
    get url() {
      if (!current) throw new Error("planetary serve is not running");
      return current.url;
    },
    get client() {
      if (!current || !client) throw new Error("planetary serve is not running");
      return client;
    },
    get pid() {
      if (!current) throw new Error("planetary serve is not running");
      return current.child.pid;
    },
    dataDir,
    storageDir,
    log: () => text,
    stop,
    async restart() {
      if (current) throw new Error("planetary serve is still running: stop() it first");
      await spawn();
    },
    close: closeAll,
  };
}

/** A fresh, empty data folder made once and copied by every server of a test run. */
export interface DataTemplate extends AsyncDisposable {
  /** The folder, for {@linkcode StartServeOptions.dataTemplate}. */
  path: string;
}

/**
 * Creates an empty database once (`planetary serve --backend none`, stopped with SIGTERM), to
 * be copied as the data folder of several servers.
 *
 * @returns The template; dispose of it to remove it.
 */
export async function prepareDataTemplate(): Promise<DataTemplate> {
  const server = await startServe({ args: ["--backend", "none"] });
  const path = await Deno.makeTempDir({ prefix: "planetary-e2e-template-" });
  try {
    const status = await server.stop("SIGTERM");
    if (!status.success) throw new Error(`the template server failed:\n${server.log()}`);
    await Deno.remove(path);
    await copyDir(server.dataDir, path);
  } catch (error) {
    await Deno.remove(path, { recursive: true }).catch(() => {});
    throw error;
  } finally {
    await server.close();
  }
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = `${from}/${entry.name}`;
    const target = `${to}/${entry.name}`;
    if (entry.isDirectory) await copyDir(source, target);
    else if (entry.isFile) await Deno.copyFile(source, target);
  }
}

/**
 * Kills every process whose command line mentions `marker` (a unique temporary folder), for
 * the task processes a SIGKILLed server leaves behind, and waits until they are gone.
 *
 * @param marker Text to find in `/proc/<pid>/cmdline`.
 * @returns The pids that were killed.
 */
export async function killProcessesMentioning(marker: string): Promise<number[]> {
  const killed: number[] = [];
  for (const pid of await findProcesses((info) => info.cmdline.includes(marker))) {
    try {
      Deno.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && killed.some((pid) => processAlive(pid))) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return killed;
}

/** What {@linkcode findProcesses} shows of a process. */
export interface ProcessInfo {
  /** Host pid. */
  pid: number;
  /** Arguments joined with spaces. */
  cmdline: string;
  /** Environment, `NAME=value` joined with newlines ("" when unreadable). */
  environ: string;
}

/**
 * Lists live (non-zombie) processes of this machine that match.
 *
 * @param match Filter.
 * @returns Their host pids.
 */
export async function findProcesses(match: (info: ProcessInfo) => boolean): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    if (pid === Deno.pid) continue;
    const read = (file: string) =>
      Deno.readFile(`/proc/${pid}/${file}`).then(
        (bytes) => new TextDecoder().decode(bytes),
        () => "",
      );
    const cmdline = (await read("cmdline")).replaceAll("\0", " ");
    const environ = (await read("environ")).replaceAll("\0", "\n");
    if (match({ pid, cmdline, environ }) && processAlive(pid)) found.push(pid);
  }
  return found;
}

/**
 * Whether a process exists and is not a zombie.
 *
 * @param pid Host pid.
 * @returns True while it runs.
 */
export function processAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) [ZX] /s.test(stat);
  } catch {
    return false;
  }
}
