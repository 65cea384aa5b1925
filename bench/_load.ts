/**
 * Shared helpers of the benchmarks: a `planetary serve` subprocess, a throwaway PostgreSQL
 * cluster with a choice of durability, a closed-loop load generator with latency percentiles,
 * the memory of a process from `/proc`, and a plain-text table.
 *
 * The benchmarks print figures; nothing here asserts a time.
 *
 * @module
 */
import { SERVE_PERMISSIONS } from "../cli/commands/serve.ts";
import { PG_BIN } from "../tests/_harness/postgres.ts";

const CLI = new URL("../cli/planetary.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const STARTUP_DEADLINE_MS = 180_000;

/** A running `planetary serve` subprocess. */
export interface ServeProcess {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Process id of the server (the `deno` process itself). */
  pid: number;
  /** Everything the server wrote to stderr so far. */
  log(): string;
  /** Sends SIGTERM, waits for a graceful exit (SIGKILL after 30 s). */
  stop(): Promise<void>;
}

/** Options of {@linkcode spawnServe}. */
export interface SpawnServeOptions {
  /** Root of the checkout whose `cli/planetary.ts` runs. @default {this checkout} */
  root?: string;
}

/**
 * Starts `planetary serve --port 0` with exactly the permissions the CLI documents
 * ({@linkcode SERVE_PERMISSIONS}) and waits for its "listening" line.
 *
 * @param args Extra flags of `planetary serve` (`--backend none`, `--database-url …`).
 * @param options Which checkout to run (another revision, for a comparison).
 * @returns The running server.
 * @throws {Error} When the server exits or does not listen within 3 minutes.
 */
export async function spawnServe(
  args: string[],
  options: SpawnServeOptions = {},
): Promise<ServeProcess> {
  const cli = options.root === undefined ? CLI : `${options.root}/cli/planetary.ts`;
  const config = options.root === undefined ? CONFIG : `${options.root}/deno.json`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      config,
      ...SERVE_PERMISSIONS,
      cli,
      "serve",
      "--port",
      "0",
      "--log-requests=false",
      ...args,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let text = "";
  const listening = Promise.withResolvers<string>();
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      // Keep the head (startup) and a bounded tail: a long run must not grow this forever.
      text += decoder.decode(chunk, { stream: true });
      if (text.length > 1_000_000) text = text.slice(0, 10_000) + text.slice(-500_000);
      const match = /Planetary listening on (http:\/\/\S+)/.exec(text);
      if (match) listening.resolve(match[1]!);
    }
    listening.reject(new Error(`planetary serve exited before listening:\n${text}`));
  })();
  const timer = setTimeout(
    () => listening.reject(new Error(`planetary serve not listening in time:\n${text}`)),
    STARTUP_DEADLINE_MS,
  );
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 30_000);
      await child.status;
      clearTimeout(killer);
      await drained;
    })();
    return stopping;
  };
  try {
    const url = await listening.promise;
    return { url, pid: child.pid, log: () => text, stop };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Memory of a process, from `/proc/<pid>/status`. */
export interface ProcessMemory {
  /** Resident set size now (VmRSS), MiB. */
  rssMiB: number;
  /** Peak resident set size (VmHWM), MiB. */
  hwmMiB: number;
}

/**
 * Reads the resident and peak resident memory of a process.
 *
 * @param pid The process.
 * @returns VmRSS and VmHWM in MiB.
 * @throws {Error} When the process is gone or `/proc` lacks the fields.
 */
export async function readMemory(pid: number): Promise<ProcessMemory> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(match[1]) / 1024;
  };
  return { rssMiB: field("VmRSS"), hwmMiB: field("VmHWM") };
}

/**
 * Reads the CPU time a process has used so far (user + system), from `/proc/<pid>/stat`.
 *
 * @param pid The process (`"self"` for this one).
 * @returns Milliseconds of CPU.
 * @throws {Error} When the process is gone.
 */
export async function readCpuMs(pid: number | "self"): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) start at field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 10; // USER_HZ is 100 on Linux
}

/**
 * Reads the system load averages (1, 5 and 15 minutes), to show how busy the machine was
 * while a figure was measured.
 *
 * @returns For example `"0.52 0.61 0.70"`, or `"?"` without `/proc/loadavg`.
 */
export function readLoadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

/** A throwaway PostgreSQL cluster. */
export interface BenchPostgres {
  /** URL of the `postgres` database as superuser `postgres`. */
  url: string;
  /** The durability settings it runs with, for the report. */
  settings: string;
  /** Stops the server and deletes its files. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startBenchPostgres}. */
export interface BenchPostgresOptions {
  /**
   * `true`: PostgreSQL's defaults (`fsync`, `synchronous_commit`, `full_page_writes` on), as
   * in production. `false`: all three off, as in the test harness.
   *
   * @default {false}
   */
  durable?: boolean;
}

async function runMaybeAsPostgres(root: boolean, program: string, args: string[]): Promise<void> {
  const [cmd, argv] = root
    ? ["runuser", ["-u", "postgres", "--", program, ...args]]
    : [program, args];
  const out = await new Deno.Command(cmd, { args: argv, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const decoder = new TextDecoder();
    throw new Error(
      `${program} failed (${out.code}): ${decoder.decode(out.stderr)}${decoder.decode(out.stdout)}`,
    );
  }
}

async function userIds(user: string): Promise<[number, number]> {
  const id = async (flag: string): Promise<number> => {
    const out = await new Deno.Command("id", { args: [flag, user], stdout: "piped" }).output();
    if (!out.success) throw new Error(`id ${flag} ${user} failed`);
    return Number(new TextDecoder().decode(out.stdout).trim());
  };
  return [await id("-u"), await id("-g")];
}

/**
 * Starts a PostgreSQL 15 cluster in a temp dir on a free loopback port (like the test harness,
 * but with a choice of durability: the harness always runs with `fsync=off`).
 *
 * @param options Durability.
 * @returns The cluster; `stop()` it.
 * @throws {Error} When the server binaries are missing or the server does not start.
 */
export async function startBenchPostgres(
  options: BenchPostgresOptions = {},
): Promise<BenchPostgres> {
  const { durable = false } = options;
  const root = Deno.uid() === 0;
  const dir = await Deno.makeTempDir({ prefix: "planetary-bench-pg-" });
  const data = `${dir}/data`;
  try {
    if (root) await Deno.chown(dir, ...(await userIds("postgres")));
    await runMaybeAsPostgres(root, `${PG_BIN}/initdb`, [
      "-D",
      data,
      "-U",
      "postgres",
      "--auth=trust",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
    ]);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const durability = durable
      ? ["fsync=on", "synchronous_commit=on", "full_page_writes=on"]
      : ["fsync=off", "synchronous_commit=off", "full_page_writes=off"];
    const settings = [
      ...durability,
      "max_connections=200",
      "shared_buffers=256MB",
    ];
    await runMaybeAsPostgres(root, `${PG_BIN}/pg_ctl`, [
      "-D",
      data,
      "-o",
      [
        `-p ${port}`,
        `-k ${dir}`,
        "-c listen_addresses=127.0.0.1",
        ...settings.map((s) => `-c ${s}`),
      ]
        .join(" "),
      "-l",
      `${dir}/server.log`,
      "-w",
      "-t",
      "60",
      "start",
    ]);
    let stopped = false;
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      settings: durability.join(" "),
      async stop(): Promise<void> {
        if (stopped) return;
        stopped = true;
        try {
          await runMaybeAsPostgres(root, `${PG_BIN}/pg_ctl`, [
            "-D",
            data,
            "-m",
            "fast",
            "-w",
            "stop",
          ]);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

/** What a load run measured. */
export interface LoadResult {
  /** Requests made. */
  count: number;
  /** Requests that failed (non-2xx or network error). */
  errors: number;
  /** First error message, if any. */
  firstError?: string;
  /** Wall time of the whole run, ms. */
  wallMs: number;
  /** Requests per second over the run. */
  perSecond: number;
  /** Latency percentiles, ms. */
  p50: number;
  /** 99th percentile latency, ms. */
  p99: number;
  /** Mean latency, ms. */
  mean: number;
}

/** Options of {@linkcode runLoad}. */
export interface RunLoadOptions {
  /** Total requests. */
  count: number;
  /** Requests in flight at once (a closed loop: each worker waits for its answer). */
  concurrency: number;
  /**
   * Requests made first and not measured (connection setup, JIT, plan caches).
   *
   * @default {0}
   */
  warmup?: number;
}

/**
 * Runs `request(i)` `count` times with `concurrency` workers and measures each call.
 *
 * @param request Makes request number `i`; throws on failure.
 * @param options Count, concurrency and warm-up.
 * @returns Throughput and latency percentiles.
 */
export async function runLoad(
  request: (i: number) => Promise<void>,
  options: RunLoadOptions,
): Promise<LoadResult> {
  const { count, concurrency, warmup = 0 } = options;
  if (warmup > 0) {
    let w = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, warmup) }, async () => {
        while (w < warmup) await request(-1 - w++).catch(() => {});
      }),
    );
  }
  const latencies = new Float64Array(count);
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = performance.now();
        try {
          await request(i);
        } catch (error) {
          errors += 1;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
        latencies[i] = performance.now() - t0;
      }
    }),
  );
  const wallMs = performance.now() - started;
  latencies.sort();
  let sum = 0;
  for (const l of latencies) sum += l;
  return {
    count,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    wallMs,
    perSecond: count / (wallMs / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    mean: count === 0 ? 0 : sum / count,
  };
}

/**
 * The `p`th percentile (nearest rank) of sorted values.
 *
 * @param sorted Ascending values.
 * @param p From 0 to 100.
 * @returns The value, or NaN for no values.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/**
 * Fetches and fails on a non-2xx answer; the body is read (so the connection is reused).
 *
 * @param url The URL.
 * @param init Fetch options.
 * @returns The parsed JSON body.
 * @throws {Error} On a network error or a non-2xx status.
 */
export async function fetchJson<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, init);
  const text = await response.text();
  if (!response.ok) throw new Error(`${response.status} ${text.slice(0, 200)}`);
  return JSON.parse(text) as T;
}

/**
 * Formats rows as an aligned plain-text table (first column left, others right).
 *
 * @param header Column titles.
 * @param rows Cells.
 * @returns The table, lines joined with newlines.
 */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]): string =>
    cells.map((cell, c) => c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))
      .join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join(
    "\n",
  );
}

/**
 * Formats a number with a fixed count of decimals.
 *
 * @param value The number.
 * @param digits Decimals.
 * @returns The text.
 */
export function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "-";
}
