/**
 * Execution benchmark: `N` trivial tasks (`true`) submitted at once to a real `planetary serve`
 * subprocess running the local backend with `--max-tasks M`, then timed until every task is
 * finished. `--runtime` picks the local backend's runtime: `host` (no engine: the server's
 * `DOCKER_HOST` names a socket nobody listens on and its `CONTAINERS_CONF` a missing file, so
 * runtime `auto` finds neither docker nor podman), `docker` (a private `dockerd` that the bench
 * starts itself, tests/_harness/docker.ts, with the busybox image of
 * tests/_harness/docker_images.ts tagged `debian:12`; executors run in the engine, the
 * transporter on the host runtime), or `both` (one after the other, same settings).
 *
 * Printed figures, with their definitions:
 * - **submit**: time to POST all tasks (concurrency 64).
 * - **wall**: from the first POST until the last task is seen in a final state (the list is
 *   polled every 100 ms, so up to 100 ms late).
 * - **tasks/s**: tasks / wall.
 * - **slot time per task**: wall × max-tasks / tasks: how long one of the `M` execution slots
 *   was busy per task, if the slots were always full.
 * - **command time per task**: mean of the executor's own `end_time − start_time` (what `true`
 *   took, as measured inside the pod by the executor wrapper).
 * - **orchestrator overhead per task**: slot time − command time: what running a task costs
 *   beyond the command itself (claim, pod build, namespaces and overlay, the inputs and outputs
 *   transporter steps, status write-back, state transitions).
 * - **in-pod overhead**: per task, (task `end_time` − task `start_time`) − command time, p50
 *   and p99: the pod's own setup and teardown (the part of the overhead that the pod's
 *   timestamps show).
 * - **queue wait**: per task, task `start_time` − `creation_time`, p50 and p99.
 * - **server memory**: VmRSS at the end and VmHWM (peak) of the server process (the pod
 *   processes it starts are not counted).
 *
 * ```sh
 * deno task bench:tasks
 * deno run -A bench/tasks.ts --tasks 1000 --max-tasks 32 --db embedded
 * deno run -A bench/tasks.ts --tasks 100 --max-tasks 8 --runtime both
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { migrate } from "../src/store/migrate.ts";
import { openPostgresDriver } from "../src/store/postgres/postgres_driver.ts";
import type { TesTask } from "../src/tes/model.ts";
import { dockerMissing, startDockerd } from "../tests/_harness/docker.ts";
import { importBusyboxImages } from "../tests/_harness/docker_images.ts";
import {
  type BenchPostgres,
  fetchJson,
  fixed,
  formatTable,
  percentile,
  readCpuMs,
  readLoadAverage,
  readMemory,
  runLoad,
  spawnServe,
  startBenchPostgres,
} from "./_load.ts";

const USAGE = `Usage: deno run -A bench/tasks.ts [--tasks N] [--max-tasks M] [--db embedded|pg]
                                      [--runtime host|docker|both]

  --tasks N       tasks to run (default 500)
  --max-tasks M   planetary serve --max-tasks (default 16)
  --db D          embedded (SQLite, the default) or pg (a throwaway PostgreSQL 15, fsync=off)
  --runtime R     host (default), docker (a private dockerd started by the bench), or both
`;

/** The image of the tasks (on docker: the busybox rootfs tagged with this name). */
const IMAGE = "debian:12";

const FINAL_STATES = new Set(["COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"]);
const DEADLINE_MS = 30 * 60_000;

interface Options {
  tasks: number;
  maxTasks: number;
  db: "embedded" | "pg";
  runtimes: ("host" | "docker")[];
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      tasks: { type: "string" },
      "max-tasks": { type: "string" },
      db: { type: "string" },
      runtime: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const count = (text: string | undefined, fallback: number, flag: string): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: positive integer, got ${text}`);
    return n;
  };
  const db = values.db ?? "embedded";
  if (db !== "embedded" && db !== "pg") throw new Error(`--db: embedded or pg, got ${db}`);
  const runtime = values.runtime ?? "host";
  if (runtime !== "host" && runtime !== "docker" && runtime !== "both") {
    throw new Error(`--runtime: host, docker or both, got ${runtime}`);
  }
  return {
    runtimes: runtime === "both" ? ["host", "docker"] : [runtime],
    tasks: count(values.tasks, 500, "--tasks"),
    maxTasks: count(values["max-tasks"], 16, "--max-tasks"),
    db,
  };
}

function ms(a: string | undefined, b: string | undefined): number | undefined {
  if (a === undefined || b === undefined) return undefined;
  return Date.parse(b) - Date.parse(a);
}

function sorted(values: (number | undefined)[]): Float64Array {
  return Float64Array.from(values.filter((v): v is number => v !== undefined)).sort();
}

function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return values.length === 0 ? NaN : sum / values.length;
}

/** Lists every task of this run (one tag), all pages. */
async function listRun(base: string, run: string, view: "MINIMAL" | "FULL"): Promise<TesTask[]> {
  const tasks: TesTask[] = [];
  let token: string | undefined;
  do {
    const page = await fetchJson<{ tasks: TesTask[]; next_page_token?: string }>(
      `${base}/tasks?tag_key=bench_run&tag_value=${run}&page_size=2047&view=${view}${
        token === undefined ? "" : `&page_token=${encodeURIComponent(token)}`
      }`,
    );
    tasks.push(...page.tasks);
    token = page.next_page_token;
  } while (token !== undefined);
  return tasks;
}

/**
 * Points the server's engine clients (spawnServe passes this process's environment on) at
 * `runtime`: a private dockerd, or nothing at all for the host runtime.
 */
async function withRuntime(
  runtime: "host" | "docker",
  dir: string,
  fn: () => Promise<void>,
): Promise<void> {
  const saved = ["DOCKER_HOST", "CONTAINERS_CONF"].map((name) =>
    [name, Deno.env.get(name)] as const
  );
  try {
    if (runtime === "host") {
      Deno.env.set("DOCKER_HOST", `unix://${dir}/no-docker.sock`);
      Deno.env.set("CONTAINERS_CONF", `${dir}/no-podman.conf`);
      await fn();
      return;
    }
    const missing = dockerMissing();
    if (missing) throw new Error(`--runtime docker: ${missing}`);
    await using engine = await startDockerd();
    await importBusyboxImages(engine);
    const tagged = await engine.docker(["tag", "busybox:latest", IMAGE]);
    if (tagged.code !== 0) throw new Error(`docker tag ${IMAGE} failed: ${tagged.stderr}`);
    Deno.env.set("DOCKER_HOST", engine.host);
    await fn();
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  }
}

async function bench(options: Options, runtime: "host" | "docker"): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "planetary-bench-tasks-" });
  let cluster: BenchPostgres | undefined;
  try {
    const dbArgs = ["--data-dir", `${dir}/data`];
    if (options.db === "pg") {
      cluster = await startBenchPostgres({ durable: false });
      const driver = openPostgresDriver(cluster.url, { poolSize: 1 });
      try {
        await migrate(driver);
      } finally {
        await driver.close();
      }
      dbArgs.push("--database-url", cluster.url);
    }
    await withRuntime(runtime, dir, async () => {
      const server = await spawnServe([
        "--backend",
        "local",
        "--max-tasks",
        String(options.maxTasks),
        "--work-dir",
        `${dir}/work`,
        ...dbArgs,
      ]);
      try {
        const onHost = /tasks run on the host runtime/.test(server.log());
        if (onHost !== (runtime === "host")) {
          throw new Error(`asked for the ${runtime} runtime, the server said:\n${server.log()}`);
        }
        await run(server.url, server.pid, options, runtime);
      } finally {
        await server.stop();
      }
    });
  } finally {
    await cluster?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function run(
  url: string,
  pid: number,
  options: Options,
  runtime: "host" | "docker",
): Promise<void> {
  const base = `${url}/ga4gh/tes/v1`;
  const run = crypto.randomUUID().slice(0, 8);
  const idle = await readMemory(pid);
  const loadBefore = readLoadAverage();
  const cpu0 = await readCpuMs(pid);
  const body = (i: number): string =>
    JSON.stringify({
      name: `bench-true-${i}`,
      executors: [{ image: IMAGE, command: ["true"] }],
      tags: { bench_run: run },
    });

  const started = performance.now();
  const submit = await runLoad(async (i) => {
    await fetchJson(`${base}/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: body(i),
    });
  }, { count: options.tasks, concurrency: 64 });
  if (submit.errors > 0) throw new Error(`${submit.errors} creates failed: ${submit.firstError}`);
  console.error(`submitted ${options.tasks} tasks in ${fixed(submit.wallMs, 0)} ms`);

  let finished = 0;
  let lastReport = 0;
  while (finished < options.tasks) {
    if (performance.now() - started > DEADLINE_MS) {
      throw new Error(`only ${finished} of ${options.tasks} tasks finished in time`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const tasks = await listRun(base, run, "MINIMAL");
    finished = tasks.filter((task) => FINAL_STATES.has(task.state ?? "")).length;
    if (performance.now() - lastReport > 5_000) {
      lastReport = performance.now();
      console.error(`  ${finished} / ${options.tasks} finished`);
    }
  }
  const wallMs = performance.now() - started;
  const serverCpuMs = (await readCpuMs(pid)) - cpu0;
  const memory = await readMemory(pid);

  const tasks = await listRun(base, run, "FULL");
  const states = new Map<string, number>();
  for (const task of tasks) states.set(task.state ?? "?", (states.get(task.state ?? "?") ?? 0) + 1);
  const command = sorted(tasks.map((task) => {
    const log = task.logs?.[0]?.logs?.[0];
    return ms(log?.start_time, log?.end_time);
  }));
  const inPod = sorted(tasks.map((task) => {
    const log = task.logs?.[0];
    const pod = ms(log?.start_time, log?.end_time);
    const exec = ms(log?.logs?.[0]?.start_time, log?.logs?.[0]?.end_time);
    return pod === undefined || exec === undefined ? undefined : pod - exec;
  }));
  const queueWait = sorted(tasks.map((task) => ms(task.creation_time, task.logs?.[0]?.start_time)));
  const slotMs = wallMs * options.maxTasks / options.tasks;
  const commandMs = mean(command);

  console.log(
    `planetary execution benchmark: ${options.tasks} × \`true\`, --max-tasks ${options.maxTasks}, ` +
      `local backend (${
        runtime === "host" ? "host runtime" : "docker runtime: executors in dockerd"
      }), ${
        options.db === "pg" ? "PostgreSQL 15 (fsync=off)" : "embedded SQLite"
      }, ${navigator.hardwareConcurrency} CPUs, Deno ${Deno.version.deno}`,
  );
  console.log(
    `final states: ${[...states].map(([state, n]) => `${state} ${n}`).join(", ")}\n`,
  );
  const p = (values: Float64Array, q: number): string => fixed(percentile(values, q), 0);
  console.log(formatTable(["figure", "value"], [
    ["submit (POST ×" + options.tasks + ", concurrency 64)", `${fixed(submit.wallMs, 0)} ms`],
    ["wall: first POST → all finished", `${fixed(wallMs / 1000, 2)} s`],
    ["throughput", `${fixed(options.tasks / (wallMs / 1000), 1)} tasks/s`],
    [
      `slot time per task (wall × ${options.maxTasks} / ${options.tasks})`,
      `${fixed(slotMs, 0)} ms`,
    ],
    ["command time per task (executor end − start, mean)", `${fixed(commandMs, 1)} ms`],
    ["orchestrator overhead per task (slot − command)", `${fixed(slotMs - commandMs, 0)} ms`],
    [
      "in-pod overhead (task end − start − command) p50 / p99",
      `${p(inPod, 50)} / ${p(inPod, 99)} ms`,
    ],
    ["queue wait (start − creation) p50 / p99", `${p(queueWait, 50)} / ${p(queueWait, 99)} ms`],
    ["server CPU per task", `${fixed(serverCpuMs / options.tasks, 1)} ms`],
    ["server VmRSS idle / end", `${fixed(idle.rssMiB)} / ${fixed(memory.rssMiB)} MiB`],
    ["server VmHWM (peak)", `${fixed(memory.hwmMiB)} MiB`],
    ["load average (1/5/15 min) before / after", `${loadBefore} / ${readLoadAverage()}`],
  ]));
}

if (import.meta.main) {
  let options: Options;
  try {
    options = parseOptions(Deno.args);
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
    Deno.exit(2);
  }
  for (const runtime of options.runtimes) await bench(options, runtime);
}
