/**
 * API benchmark: `planetary serve --backend none` in a subprocess, this process as the load
 * generator, against PostgreSQL 15 and against the embedded databases: SQLite (`node:sqlite`, the
 * default) and PGlite (the default before it, still used for its old data folders).
 *
 * Per database: the server's memory idle; create-task throughput and latency at concurrency
 * 64; `GET /tasks/{id}?view=FULL` at concurrency 16, 8 and 1, MINIMAL at 16; the database filled to `--tasks`
 * tasks (synthetic rows from `bench/store_seed.ts`, seeded before the server starts); list
 * MINIMAL page_size 256 filtered by one tag (≈0.1% and ≈10% of the tasks) and by state, and
 * BASIC unfiltered, at concurrency 1 and 8; the server's memory after each phase. With
 * PostgreSQL, the create benchmark runs a second time on a cluster with `fsync=on` (the
 * default cluster runs with `fsync=off`, like the test harness).
 *
 * ```sh
 * deno task bench                                  # 1,000,000 tasks, every database
 * deno run -A bench/api.ts --quick --db pg         # 100,000 tasks, PostgreSQL only
 * deno run -A bench/api.ts --tasks 250000 --db embedded --creates 5000  # SQLite and PGlite
 * ```
 *
 * It prints figures and asserts nothing.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { taskBody } from "./_task_body.ts";
import { migrate } from "../src/store/migrate.ts";
import { openPgliteDriver } from "../src/store/pglite/pglite_driver.ts";
import { openPostgresDriver } from "../src/store/postgres/postgres_driver.ts";
import type { SqlDriver } from "../src/store/driver.ts";
import { SQLITE_FILE } from "../src/store/open_store.ts";
import { seedSqliteTasks, seedTasks } from "./store_seed.ts";
import {
  fetchJson,
  fixed,
  formatTable,
  type LoadResult,
  type ProcessMemory,
  readCpuMs,
  readLoadAverage,
  readMemory,
  runLoad,
  spawnServe,
  startBenchPostgres,
} from "./_load.ts";

const USAGE = `Usage: deno run -A bench/api.ts [--tasks N | --quick]
  [--db all|pg|embedded|sqlite|pglite]
  [--creates N] [--requests N]

  --tasks N      tasks in the database for the list benchmark (default 1000000)
  --quick        same as --tasks 100000
  --db D         all (default), pg, embedded (sqlite and pglite), sqlite or pglite
  --creates N    measured creates at concurrency 64 (default 10000)
  --requests N   measured requests per GET/list row (default 400)
`;

const CREATE_CONCURRENCY = 64;
const CREATE_WARMUP = 500;

const DBS = ["all", "pg", "embedded", "sqlite", "pglite"] as const;
type Db = typeof DBS[number];

interface Options {
  tasks: number;
  db: Db;
  creates: number;
  requests: number;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      tasks: { type: "string" },
      quick: { type: "boolean" },
      db: { type: "string" },
      creates: { type: "string" },
      requests: { type: "string" },
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
    const n = Number(text.replaceAll("_", ""));
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: positive integer, got ${text}`);
    return n;
  };
  const db = values.db ?? "all";
  if (!(DBS as readonly string[]).includes(db)) {
    throw new Error(`--db: one of ${DBS.join(", ")}, got ${db}`);
  }
  return {
    tasks: count(values.tasks, values.quick ? 100_000 : 1_000_000, "--tasks"),
    db: db as Db,
    creates: count(values.creates, 10_000, "--creates"),
    requests: count(values.requests, 400, "--requests"),
  };
}

interface Row {
  label: string;
  concurrency: number;
  result: LoadResult;
  /** CPU the server process used per measured request (warm-up included), ms. */
  serverCpuMs: number;
  /** CPU this process (the load generator) used per measured request, ms. */
  clientCpuMs: number;
}

/** Runs `load` and measures the server's CPU around it. */
async function phase(
  pid: number,
  label: string,
  concurrency: number,
  load: () => Promise<LoadResult>,
): Promise<Row> {
  console.error(`  ${label} at concurrency ${concurrency}…`);
  const [server0, client0] = [await readCpuMs(pid), await readCpuMs("self")];
  const result = await load();
  const server = (await readCpuMs(pid)) - server0;
  const client = (await readCpuMs("self")) - client0;
  return {
    label,
    concurrency,
    result,
    serverCpuMs: server / result.count,
    clientCpuMs: client / result.count,
  };
}

interface DbReport {
  title: string;
  seedSeconds: number;
  seeded: number;
  rows: Row[];
  memory: [string, ProcessMemory][];
  durableCreate?: { settings: string; row: Row };
  /** Load averages before and after the measurements. */
  load: [string, string];
}

const random = (n: number): number => Math.floor(Math.random() * n);

async function createLoad(
  pid: number,
  base: string,
  count: number,
): Promise<{ row: Row; ids: string[] }> {
  const ids: string[] = [];
  const post = async (i: number): Promise<void> => {
    const body = await fetchJson<{ id: string }>(`${base}/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: taskBody(i < 0 ? 1_000_000 + i : i),
    });
    if (i >= 0) ids.push(body.id);
  };
  const row = await phase(
    pid,
    "POST /tasks (create)",
    CREATE_CONCURRENCY,
    () => runLoad(post, { count, concurrency: CREATE_CONCURRENCY, warmup: CREATE_WARMUP }),
  );
  return { row, ids };
}

/** The API phases against a running server (the database is already seeded). */
async function measure(
  url: string,
  pid: number,
  options: Options,
  report: DbReport,
): Promise<void> {
  const base = `${url}/ga4gh/tes/v1`;
  const { rows, memory } = report;
  report.load[0] = readLoadAverage();
  memory.push(["idle", await readMemory(pid)]);

  const { row: created, ids } = await createLoad(pid, base, options.creates);
  rows.push(created);
  if (ids.length === 0) throw new Error(`every create failed: ${created.result.firstError}`);
  memory.push(["after creates", await readMemory(pid)]);

  const get = (view: string) => async (): Promise<void> => {
    await fetchJson(`${base}/tasks/${ids[random(ids.length)]}?view=${view}`);
  };
  for (
    const [view, concurrency] of [["FULL", 16], ["FULL", 8], ["FULL", 1], ["MINIMAL", 16]] as const
  ) {
    rows.push(
      await phase(
        pid,
        `GET /tasks/{id} ${view}`,
        concurrency,
        () => runLoad(get(view), { count: options.requests * 4, concurrency, warmup: 100 }),
      ),
    );
  }

  const total = options.tasks;
  const lists: [string, () => string][] = [
    [
      `list MINIMAL tag batch (≈${fmtInt(total / 1000)} match)`,
      () => `tag_key=batch&tag_value=b${random(1000)}`,
    ],
    [
      `list MINIMAL tag project (≈${fmtInt(total / 10)} match)`,
      () => `tag_key=project&tag_value=p${random(10)}`,
    ],
    [
      `list MINIMAL state=QUEUED (≈${fmtInt(total / 20)})`,
      () => "state=QUEUED",
    ],
    [
      `list MINIMAL state=COMPLETE (≈${fmtInt(total * 0.75)})`,
      () => "state=COMPLETE",
    ],
    [
      `list MINIMAL tag batch + state=RUNNING`,
      () => `tag_key=batch&tag_value=b${random(1000)}&state=RUNNING`,
    ],
    ["list BASIC unfiltered", () => "view=BASIC"],
  ];
  for (const [label, query] of lists) {
    for (const concurrency of [1, 8]) {
      rows.push(
        await phase(pid, `${label} p256`, concurrency, () =>
          runLoad(async () => {
            await fetchJson(`${base}/tasks?page_size=256&${query()}`);
          }, { count: options.requests, concurrency, warmup: 20 })),
      );
    }
  }
  memory.push(["after lists", await readMemory(pid)]);
  report.load[1] = readLoadAverage();
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

async function seed(driver: SqlDriver, count: number): Promise<number> {
  await migrate(driver);
  const started = performance.now();
  if (count > 0) {
    await seedTasks(driver, count, {
      onProgress: (done) => console.error(`  seeded ${fmtInt(done)} / ${fmtInt(count)}`),
    });
  }
  return (performance.now() - started) / 1000;
}

async function benchPostgres(options: Options): Promise<DbReport> {
  const seedCount = Math.max(0, options.tasks - options.creates - CREATE_WARMUP);
  const cluster = await startBenchPostgres({ durable: false });
  const report: DbReport = {
    title: `PostgreSQL 15 (${cluster.settings}), server pool 10`,
    seedSeconds: 0,
    seeded: seedCount,
    rows: [],
    memory: [],
    load: ["?", "?"],
  };
  try {
    console.error(`PostgreSQL: seeding ${fmtInt(seedCount)} tasks…`);
    const driver = openPostgresDriver(cluster.url, { poolSize: 2 });
    try {
      report.seedSeconds = await seed(driver, seedCount);
    } finally {
      await driver.close();
    }
    const server = await spawnServe(["--backend", "none", "--database-url", cluster.url]);
    try {
      await measure(server.url, server.pid, options, report);
    } finally {
      await server.stop();
    }
  } finally {
    await cluster.stop();
  }

  console.error("PostgreSQL fsync=on: creates…");
  const durable = await startBenchPostgres({ durable: true });
  try {
    const driver = openPostgresDriver(durable.url, { poolSize: 1 });
    try {
      await migrate(driver);
    } finally {
      await driver.close();
    }
    const server = await spawnServe(["--backend", "none", "--database-url", durable.url]);
    try {
      const { row } = await createLoad(server.pid, `${server.url}/ga4gh/tes/v1`, options.creates);
      report.durableCreate = { settings: durable.settings, row };
    } finally {
      await server.stop();
    }
  } finally {
    await durable.stop();
  }
  return report;
}

/**
 * One embedded database: `seed` fills a new data folder (the server locks its folder, so the
 * rows go in before it starts), then the API phases run against a server on it.
 */
async function benchEmbedded(
  options: Options,
  name: string,
  title: string,
  seed: (dir: string, count: number) => Promise<number>,
): Promise<DbReport> {
  const seedCount = Math.max(0, options.tasks - options.creates - CREATE_WARMUP);
  const dir = await Deno.makeTempDir({ prefix: `planetary-bench-${name.toLowerCase()}-` });
  const report: DbReport = {
    title,
    seedSeconds: 0,
    seeded: seedCount,
    rows: [],
    memory: [],
    load: ["?", "?"],
  };
  try {
    console.error(`${name}: seeding ${fmtInt(seedCount)} tasks…`);
    report.seedSeconds = await seed(dir, seedCount);
    const server = await spawnServe(["--backend", "none", "--data-dir", dir]);
    try {
      await measure(server.url, server.pid, options, report);
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    // The data folder's lock file sits beside it.
    await Deno.remove(`${dir}.lock`).catch(() => {});
  }
  return report;
}

function benchSqlite(options: Options): Promise<DbReport> {
  return benchEmbedded(
    options,
    "SQLite",
    "SQLite (node:sqlite, the embedded default; WAL, synchronous=FULL, data dir on disk)",
    (dir, count) => {
      const started = performance.now();
      seedSqliteTasks(`${dir}/${SQLITE_FILE}`, count, {
        onProgress: (done) => console.error(`  seeded ${fmtInt(done)} / ${fmtInt(count)}`),
      });
      return Promise.resolve((performance.now() - started) / 1000);
    },
  );
}

function benchPglite(options: Options): Promise<DbReport> {
  return benchEmbedded(
    options,
    "PGlite",
    "PGlite 0.3 (embedded default before SQLite; data dir on disk)",
    async (dir, count) => {
      const driver = await openPgliteDriver({ dataDir: dir });
      try {
        return await seed(driver, count);
      } finally {
        await driver.close();
      }
    },
  );
}

function printReport(report: DbReport, options: Options): void {
  console.log(`\n== ${report.title} ==`);
  console.log(
    `tasks in the database: ${fmtInt(report.seeded)} seeded (in ${fixed(report.seedSeconds)} s) + ${
      fmtInt(options.creates + CREATE_WARMUP)
    } created through the API`,
  );
  const header = [
    "operation",
    "conc",
    "requests",
    "req/s",
    "p50 ms",
    "p99 ms",
    "mean ms",
    "server CPU ms/req",
    "loadgen CPU ms/req",
    "errors",
  ];
  const line = (label: string, row: Row): string[] => [
    label,
    String(row.concurrency),
    ...stats(row.result),
    fixed(row.serverCpuMs, 2),
    fixed(row.clientCpuMs, 2),
    row.result.errors === 0 ? "0" : `${row.result.errors} (${row.result.firstError})`,
  ];
  const stats = (r: LoadResult): string[] => [
    String(r.count),
    fixed(r.perSecond, 0),
    fixed(r.p50, 2),
    fixed(r.p99, 2),
    fixed(r.mean, 2),
  ];
  const rows = report.rows.map((row) => line(row.label, row));
  if (report.durableCreate) {
    rows.push(
      line(`POST /tasks (create), ${report.durableCreate.settings}`, report.durableCreate.row),
    );
  }
  console.log(`load average (1/5/15 min) before: ${report.load[0]}, after: ${report.load[1]}`);
  console.log(formatTable(header, rows));
  console.log("\nserver memory (MiB)");
  console.log(
    formatTable(
      ["when", "VmRSS", "VmHWM"],
      report.memory.map(([when, m]) => [when, fixed(m.rssMiB), fixed(m.hwmMiB)]),
    ),
  );
}

if (import.meta.main) {
  let options: Options;
  try {
    options = parseOptions(Deno.args);
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
    Deno.exit(2);
  }
  console.log(
    `planetary API benchmark: ${fmtInt(options.tasks)} tasks, ${options.creates} creates, ` +
      `${options.requests} requests per row, ${navigator.hardwareConcurrency} CPUs, ` +
      `Deno ${Deno.version.deno}`,
  );
  const { db } = options;
  if (db === "all" || db === "pg") printReport(await benchPostgres(options), options);
  if (db === "all" || db === "embedded" || db === "sqlite") {
    printReport(await benchSqlite(options), options);
  }
  if (db === "all" || db === "embedded" || db === "pglite") {
    printReport(await benchPglite(options), options);
  }
}
