/**
 * Claim latency with and without a per-owner limit (`claim()` with `maxRunningPerOwner`), on a
 * table of many QUEUED tasks of many owners, against PostgreSQL 15 (throwaway cluster, fsync
 * off like the test harness) and PGlite (in memory). Prints figures; checks no time limit.
 *
 * ```sh
 * deno run -A bench/claim.ts                        # 100,000 queued tasks, 100 owners, both dbs
 * deno run -A bench/claim.ts --db pg --tasks 1000000 --owners 1000 --claims 500 --size 16
 * ```
 *
 * Rows (each a fresh table of `--tasks` QUEUED tasks, owners `user000`… round-robin by age):
 * - `no limit`: claim `--size` tasks, the plain one-statement claim;
 * - `limit 2, room`: with `maxRunningPerOwner: 2`, every owner has room (claimed tasks are
 *   finished between claims, outside the timing);
 * - `limit 2, all full`: every owner already has 2 live tasks: the claim finds nothing (the cost
 *   of skipping every queued task);
 * - `limit 2, skewed`: 90% of the queue (the oldest) belongs to one owner who is full; the
 *   claim must reach the other owners' tasks behind hers;
 * - `limit 2, 4 at once` (PostgreSQL): four claimers with their own connections claim in
 *   parallel (latency per claim as each sees it).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { SqlDriver } from "../src/store/driver.ts";
import { migrate } from "../src/store/migrate.ts";
import { openPgliteDriver } from "../src/store/pglite/pglite_driver.ts";
import { openPostgresDriver } from "../src/store/postgres/postgres_driver.ts";
import { SqlTaskStore } from "../src/store/sql_task_store.ts";
import { fixed, formatTable, percentile, readLoadAverage, startBenchPostgres } from "./_load.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    db: { type: "string", default: "both" },
    tasks: { type: "string", default: "100000" },
    owners: { type: "string", default: "100" },
    claims: { type: "string", default: "300" },
    size: { type: "string", default: "16" },
  },
  strict: true,
});
const TASKS = Number(values.tasks);
const OWNERS = Number(values.owners);
const CLAIMS = Number(values.claims);
const SIZE = Number(values.size);
const LIMIT = 2;
const LEASE = 60_000;

const SEED_SQL = `
INSERT INTO tasks (id, state, request, owner)
SELECT 'bench' || lpad(to_hex(g), 21, '0'), 'QUEUED',
  '{"executors": [{"image": "alpine", "command": ["true"]}]}'::jsonb,
  CASE WHEN g <= $2::int THEN 'alice'
       ELSE 'user' || lpad((g % $3::int)::text, 4, '0') END
FROM generate_series(1, $1::int) AS g ORDER BY g`;

/** A fresh table of `TASKS` queued tasks; the first `skewed` of them all alice's. */
async function reseed(driver: SqlDriver, skewed = 0): Promise<void> {
  await driver.exec("TRUNCATE tasks, task_tags");
  await driver.query(SEED_SQL, [TASKS, skewed, OWNERS]);
  await driver.exec("VACUUM (ANALYZE) tasks");
}

async function finish(driver: SqlDriver, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await driver.query("UPDATE tasks SET state = 'COMPLETE' WHERE id = ANY($1::text[])", [[
    ...ids,
  ]]);
}

interface Row {
  name: string;
  ms: number[];
  claimed: number;
}

/** Times `CLAIMS` claims; `after` runs untimed after each. */
async function timeClaims(
  name: string,
  store: SqlTaskStore,
  maxRunningPerOwner: number,
  after: (ids: string[]) => Promise<void>,
): Promise<Row> {
  const ms: number[] = [];
  let claimed = 0;
  for (let i = 0; i < 10; i++) {
    await after(
      (await store.claim("warm", SIZE, LEASE, { maxRunningPerOwner })).map((c) => c.task.id),
    );
  }
  for (let i = 0; i < CLAIMS; i++) {
    const started = performance.now();
    const batch = await store.claim("bench", SIZE, LEASE, { maxRunningPerOwner });
    ms.push(performance.now() - started);
    claimed += batch.length;
    await after(batch.map((c) => c.task.id));
  }
  return { name, ms, claimed };
}

async function scenarios(
  label: string,
  driver: SqlDriver,
  extraStores: () => Promise<SqlTaskStore[]>,
): Promise<Row[]> {
  const store = new SqlTaskStore(driver, { ownsDriver: false });
  const rows: Row[] = [];
  const done = (ids: string[]) => finish(driver, ids);
  const step = (what: string) => console.error(`${label}: ${what}`);

  step("no limit");
  await reseed(driver);
  rows.push(await timeClaims("no limit", store, 0, done));

  step("limit 2, room");
  await reseed(driver);
  rows.push(await timeClaims(`limit ${LIMIT}, room`, store, LIMIT, done));

  step("limit 2, all full");
  await reseed(driver);
  while ((await store.claim("fill", 256, LEASE, { maxRunningPerOwner: LIMIT })).length > 0);
  rows.push(await timeClaims(`limit ${LIMIT}, all full`, store, LIMIT, async () => {}));

  step("limit 2, skewed");
  await reseed(driver, Math.floor(TASKS * 0.9));
  await store.claim("fill", LIMIT, LEASE); // alice's two oldest: she is full
  rows.push(await timeClaims(`limit ${LIMIT}, skewed`, store, LIMIT, done));

  const others = await extraStores();
  if (others.length > 0) {
    step(`limit 2, ${others.length} at once`);
    await reseed(driver);
    const results = await Promise.all(
      others.map((other) => timeClaims("", other, LIMIT, done)),
    );
    rows.push({
      name: `limit ${LIMIT}, ${others.length} at once`,
      ms: results.flatMap((r) => r.ms),
      claimed: results.reduce((n, r) => n + r.claimed, 0),
    });
    await Promise.all(others.map((other) => other.close()));
  }
  return rows;
}

function print(label: string, rows: Row[]): void {
  console.log(
    `\n${label}: ${
      TASKS.toLocaleString("en")
    } queued tasks, ${OWNERS} owners, claims of ${SIZE}, ` +
      `${CLAIMS} timed claims per row; load average ${readLoadAverage()}`,
  );
  console.log(formatTable(
    ["scenario", "p50 ms", "p99 ms", "mean ms", "tasks/claim"],
    rows.map((row) => {
      const sorted = Float64Array.from(row.ms).sort();
      const mean = row.ms.reduce((a, b) => a + b, 0) / row.ms.length;
      return [
        row.name,
        fixed(percentile(sorted, 50), 2),
        fixed(percentile(sorted, 99), 2),
        fixed(mean, 2),
        fixed(row.claimed / row.ms.length, 1),
      ];
    }),
  ));
}

if (values.db === "pg" || values.db === "both") {
  const cluster = await startBenchPostgres();
  const driver = openPostgresDriver(cluster.url, { poolSize: 2 });
  try {
    await migrate(driver);
    const rows = await scenarios(
      "PostgreSQL",
      driver,
      () =>
        Promise.resolve(
          Array.from({ length: 4 }, () =>
            new SqlTaskStore(openPostgresDriver(cluster.url, { poolSize: 1 }))),
        ),
    );
    print(`PostgreSQL 15 (${cluster.settings})`, rows);
  } finally {
    await driver.close();
    await cluster.stop();
  }
}
if (values.db === "pglite" || values.db === "both") {
  const driver = await openPgliteDriver();
  try {
    await migrate(driver);
    print("PGlite (in memory)", await scenarios("PGlite", driver, () => Promise.resolve([])));
  } finally {
    await driver.close();
  }
}
