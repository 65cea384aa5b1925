/**
 * Create throughput with durable commits (issue 13): `POST /tasks` at concurrency 64 and 16,
 * cancels of the created tasks and `POST /tasks:batch`, on PostgreSQL with `fsync=on`, for this checkout and for another
 * revision (the previous main) in the same run, alternating, each on a fresh database of the
 * same cluster. Prints medians over the runs; asserts nothing.
 *
 * ```sh
 * deno run -A bench/create.ts                          # against HEAD~1, 3 runs
 * deno run -A bench/create.ts --baseline 7903822 --runs 5 --creates 10000
 * deno run -A bench/create.ts --baseline none          # this checkout only
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { openPostgresDriver } from "../src/store/mod.ts";
import {
  fetchJson,
  fixed,
  formatTable,
  type LoadResult,
  readCpuMs,
  readLoadAverage,
  runLoad,
  spawnServe,
  startBenchPostgres,
} from "./_load.ts";
import { taskBody } from "./_task_body.ts";

const USAGE = `Usage: deno run -A bench/create.ts [--baseline REV|none] [--runs N] [--creates N]
  [--batch-size N]`;

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const WARMUP = 500;

interface Measure {
  label: string;
  /** Tasks per second (a batch request counts each of its tasks). */
  tasksPerSecond: number;
  /** Requests per second. */
  perSecond: number;
  p50: number;
  p99: number;
  errors: number;
  firstError?: string;
  serverCpuMsPerTask: number;
}

async function git(args: string[]): Promise<string> {
  const out = await new Deno.Command("git", { args, cwd: ROOT, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** A detached worktree of `rev` in a temp dir; removed by the returned function. */
async function worktree(
  rev: string,
): Promise<{ root: string; commit: string; remove(): Promise<void> }> {
  const commit = await git(["rev-parse", "--short", rev]);
  const root = await Deno.makeTempDir({ prefix: "planetary-bench-baseline-" });
  await git(["worktree", "add", "--detach", root, commit]);
  return {
    root,
    commit,
    remove: async () => {
      await git(["worktree", "remove", "--force", root]).catch(() => {});
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

async function measure(
  label: string,
  pid: number,
  perRequest: number,
  load: () => Promise<LoadResult>,
): Promise<Measure> {
  const cpu0 = await readCpuMs(pid);
  const result = await load();
  const cpu = (await readCpuMs(pid)) - cpu0;
  return {
    label,
    tasksPerSecond: result.perSecond * perRequest,
    perSecond: result.perSecond,
    p50: result.p50,
    p99: result.p99,
    errors: result.errors,
    ...(result.firstError === undefined ? {} : { firstError: result.firstError }),
    serverCpuMsPerTask: cpu / (result.count * perRequest),
  };
}

/** One server on a fresh database: the create rows. */
async function runServer(
  root: string | undefined,
  databaseUrl: string,
  creates: number,
  batchSize: number,
): Promise<Measure[]> {
  const server = await spawnServe(
    ["--backend", "none", "--database-url", databaseUrl],
    root === undefined ? {} : { root },
  );
  try {
    const base = `${server.url}/ga4gh/tes/v1`;
    const ids: string[] = [];
    const post = (i: number) =>
      fetchJson<{ id: string }>(`${base}/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: taskBody(i < 0 ? 1_000_000 - i : i),
      }).then((body) => {
        if (i >= 0) ids.push(body.id);
      });
    const rows: Measure[] = [];
    for (const concurrency of [64, 16]) {
      rows.push(
        await measure(
          `POST /tasks c=${concurrency}`,
          server.pid,
          1,
          () => runLoad(post, { count: creates, concurrency, warmup: WARMUP }),
        ),
      );
    }
    // cancels of QUEUED tasks: one single-row UPDATE each (group-committed on this checkout)
    const cancel = (i: number) =>
      fetchJson(`${base}/tasks/${ids[i < 0 ? ids.length + i : i]}:cancel`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      }).then(() => {});
    const cancels = Math.min(creates, ids.length - 200);
    rows.push(
      await measure(
        "POST /tasks/{id}:cancel c=64",
        server.pid,
        1,
        () => runLoad(cancel, { count: cancels, concurrency: 64, warmup: 200 }),
      ),
    );
    const batchBody = (i: number) =>
      `{"tasks":[${
        Array.from({ length: batchSize }, (_, j) => taskBody(2_000_000 + i * batchSize + j))
          .join(",")
      }]}`;
    const postBatch = async (i: number) => {
      const response = await fetch(`${base}/tasks:batch`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: batchBody(i < 0 ? 100_000 - i : i),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`);
    };
    const batches = Math.max(1, Math.round(creates / batchSize));
    rows.push(
      await measure(
        `POST /tasks:batch (${batchSize}/req) c=4`,
        server.pid,
        batchSize,
        () => runLoad(postBatch, { count: batches, concurrency: 4, warmup: 4 }),
      ),
    );
    return rows;
  } finally {
    await server.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      baseline: { type: "string", default: "HEAD~1" },
      runs: { type: "string", default: "3" },
      creates: { type: "string", default: "10000" },
      "batch-size": { type: "string", default: "100" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const runs = Number(values.runs);
  const creates = Number(values.creates);
  const batchSize = Number(values["batch-size"]);
  const baseline = values.baseline === "none" ? undefined : await worktree(values.baseline!);
  const head = await git(["rev-parse", "--short", "HEAD"]);
  const dirty = (await git(["status", "--porcelain", "--untracked-files=no"])) !== "";
  const servers: { name: string; root: string | undefined }[] = [
    { name: `this checkout (${head}${dirty ? "+changes" : ""})`, root: undefined },
    ...(baseline ? [{ name: `baseline ${baseline.commit}`, root: baseline.root }] : []),
  ];
  const cluster = await startBenchPostgres({ durable: true });
  const results = new Map<string, Measure[][]>(servers.map((s) => [s.name, []]));
  const load0 = readLoadAverage();
  try {
    const admin = openPostgresDriver(cluster.url, { poolSize: 1 });
    let databases = 0;
    try {
      for (let run = 0; run < runs; run++) {
        // alternate the order, so that neither server always runs on a warmer machine
        const order = run % 2 === 0 ? servers : [...servers].reverse();
        for (const server of order) {
          const db = `bench_${++databases}`;
          await admin.exec(`CREATE DATABASE ${db}`);
          console.error(`run ${run + 1}/${runs}: ${server.name}…`);
          const url = cluster.url.replace(/\/postgres$/, `/${db}`);
          results.get(server.name)!.push(await runServer(server.root, url, creates, batchSize));
        }
      }
    } finally {
      await admin.close();
    }
  } finally {
    await cluster.stop();
    await baseline?.remove();
  }
  console.log(
    `\nCreates on PostgreSQL 15 (${cluster.settings}), ${creates} tasks per row after ` +
      `${WARMUP} warm-up, medians of ${runs} runs (load ${load0} -> ${readLoadAverage()})\n`,
  );
  const rows: string[][] = [];
  for (const server of servers) {
    const perRun = results.get(server.name)!;
    for (let r = 0; r < perRun[0]!.length; r++) {
      const cells = perRun.map((run) => run[r]!);
      const errors = cells.reduce((n, c) => n + c.errors, 0);
      rows.push([
        server.name,
        cells[0]!.label,
        fixed(median(cells.map((c) => c.tasksPerSecond)), 0),
        fixed(median(cells.map((c) => c.perSecond)), 0),
        fixed(median(cells.map((c) => c.p50))),
        fixed(median(cells.map((c) => c.p99))),
        fixed(median(cells.map((c) => c.serverCpuMsPerTask)), 3),
        errors === 0 ? "0" : `${errors} (${cells.find((c) => c.firstError)?.firstError})`,
      ]);
    }
  }
  console.log(formatTable(
    ["server", "row", "tasks/s", "req/s", "p50 ms", "p99 ms", "server CPU ms/task", "errors"],
    rows,
  ));
}

if (import.meta.main) await main();
