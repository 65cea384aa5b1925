/**
 * Fills a migrated task database with many synthetic tasks, fast (`generate_series`, batches
 * of 100,000 rows in one statement each), for the list benchmark.
 *
 * Shape of task `g` (1-based): state by `g % 20` (1 in 20 QUEUED, 1 in 20 RUNNING, 2 EXECUTOR_ERROR,
 * 1 CANCELED, the rest COMPLETE); tags `batch = b<g % 1000>` (1,000 tasks per value for 1M),
 * `project = p<g % 10>` and, on 1 task in 100, `rare = yes`; name `seed-<g % 100>-<g>`.
 *
 * ```sh
 * deno run -A bench/store_seed.ts postgres://postgres@127.0.0.1:5432/planetary 1000000
 * ```
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import type { SqlDriver } from "../src/store/driver.ts";
import { migrateSqlite } from "../src/store/sqlite/sqlite_schema.ts";
import { openPostgresDriver } from "../src/store/postgres/postgres_driver.ts";
import { migrate } from "../src/store/migrate.ts";

/** Options of {@linkcode seedTasks}. */
export interface SeedTasksOptions {
  /**
   * Rows per statement.
   *
   * @default {100000}
   */
  batchSize?: number;
  /** Called after each batch with the number of rows inserted so far. */
  onProgress?: (done: number) => void;
}

const SEED_SQL = `
WITH t AS (
  INSERT INTO tasks (id, state, name, request, tags, creation_time, updated_at)
  SELECT
    'seed' || lpad(to_hex(g), 22, '0'),
    CASE
      WHEN g % 20 = 0 THEN 'QUEUED'
      WHEN g % 20 = 1 THEN 'RUNNING'
      WHEN g % 20 IN (2, 3) THEN 'EXECUTOR_ERROR'
      WHEN g % 20 = 4 THEN 'CANCELED'
      ELSE 'COMPLETE'
    END,
    'seed-' || (g % 100) || '-' || g,
    jsonb_build_object(
      'executors', jsonb_build_array(jsonb_build_object(
        'image', 'ubuntu:24.04', 'command', jsonb_build_array('sh', '-c', 'echo ' || g))),
      'outputs', jsonb_build_array(jsonb_build_object(
        'url', 's3://bucket/out/' || g, 'path', '/out/result.txt'))),
    jsonb_build_object('batch', 'b' || (g % 1000), 'project', 'p' || (g % 10))
      || CASE WHEN g % 100 = 7 THEN '{"rare": "yes"}'::jsonb ELSE '{}'::jsonb END,
    now() - (($2::bigint - g) * interval '1 millisecond'),
    now()
  FROM generate_series($1::bigint, $2::bigint) AS g
  ORDER BY g
  RETURNING seq, tags
)
INSERT INTO task_tags (task_seq, key, value)
SELECT t.seq, e.key, e.value FROM t CROSS JOIN jsonb_each_text(t.tags) AS e`;

/**
 * Inserts `count` synthetic tasks after the existing ones, then vacuums and analyzes.
 *
 * @param driver A driver on a migrated database.
 * @param count How many tasks.
 * @param options Batch size and progress.
 * @returns The number of tasks inserted.
 * @example
 * ```ts ignore
 * import { openPostgresDriver } from "../src/store/postgres/postgres_driver.ts";
 * import { seedTasks } from "./store_seed.ts";
 * const driver = openPostgresDriver("postgres://postgres@127.0.0.1:5432/planetary");
 * await seedTasks(driver, 1_000_000);
 * await driver.close();
 * ```
 */
export async function seedTasks(
  driver: SqlDriver,
  count: number,
  options: SeedTasksOptions = {},
): Promise<number> {
  const { batchSize = 100_000, onProgress } = options;
  const rows = await driver.query<{ n: string }>(
    "SELECT coalesce(max(seq), 0)::text AS n FROM tasks",
  );
  const offset = Number(rows[0]?.n ?? 0);
  for (let done = 0; done < count; done += batchSize) {
    const first = offset + done + 1;
    const last = offset + Math.min(count, done + batchSize);
    await driver.query(SEED_SQL, [String(first), String(last)]);
    onProgress?.(last - offset);
  }
  // VACUUM sets the visibility map, so index-only scans skip the heap as in a settled
  // database; it cannot run in a transaction, hence one statement each.
  await driver.exec("VACUUM (ANALYZE) tasks");
  await driver.exec("VACUUM (ANALYZE) task_tags");
  return count;
}

/** {@linkcode SEED_SQL} in SQLite's dialect: tasks `$1..$2` (bound twice: first, last). */
const SQLITE_SEED_SQL = `
WITH RECURSIVE s(g) AS (SELECT ?1 UNION ALL SELECT g + 1 FROM s WHERE g < ?2)
INSERT INTO tasks (id, state, name, request, tags, creation_time, updated_at)
SELECT
  'seed' || printf('%022x', g),
  CASE
    WHEN g % 20 = 0 THEN 'QUEUED'
    WHEN g % 20 = 1 THEN 'RUNNING'
    WHEN g % 20 IN (2, 3) THEN 'EXECUTOR_ERROR'
    WHEN g % 20 = 4 THEN 'CANCELED'
    ELSE 'COMPLETE'
  END,
  'seed-' || (g % 100) || '-' || g,
  json_object(
    'executors', json_array(json_object(
      'image', 'ubuntu:24.04', 'command', json_array('sh', '-c', 'echo ' || g))),
    'outputs', json_array(json_object('url', 's3://bucket/out/' || g, 'path', '/out/result.txt'))),
  CASE WHEN g % 100 = 7
    THEN json_object('batch', 'b' || (g % 1000), 'project', 'p' || (g % 10), 'rare', 'yes')
    ELSE json_object('batch', 'b' || (g % 1000), 'project', 'p' || (g % 10)) END,
  ?3 - (?2 - g),
  ?3
FROM s`;

/**
 * Fills the SQLite store file at `path` (made and migrated when new) with the same synthetic
 * tasks as {@linkcode seedTasks}, then analyzes it. Open it with nothing else holding it.
 *
 * @param path The database file (`<data-dir>/planetary.sqlite`).
 * @param count How many tasks.
 * @param options Batch size and progress.
 * @returns The number of tasks inserted.
 */
export function seedSqliteTasks(
  path: string,
  count: number,
  options: SeedTasksOptions = {},
): number {
  const { batchSize = 100_000, onProgress } = options;
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode = WAL");
    migrateSqlite(db);
    const offset = Number(
      (db.prepare("SELECT coalesce(max(seq), 0) AS n FROM tasks").get() as { n: number }).n,
    );
    const insert = db.prepare(SQLITE_SEED_SQL);
    const tags = db.prepare(
      `INSERT INTO task_tags (task_seq, key, value)
       SELECT t.seq, e.key, e.value FROM tasks t, json_each(t.tags) e WHERE t.seq > ?`,
    );
    for (let done = 0; done < count; done += batchSize) {
      const first = offset + done + 1;
      const last = offset + Math.min(count, done + batchSize);
      db.exec("BEGIN");
      const before = Number(
        (db.prepare("SELECT coalesce(max(seq), 0) AS n FROM tasks").get() as { n: number }).n,
      );
      insert.run(first, last, Date.now());
      tags.run(before);
      db.exec("COMMIT");
      onProgress?.(last - offset);
    }
    db.exec("ANALYZE");
  } finally {
    db.close();
  }
  return count;
}

if (import.meta.main) {
  const [url, countText = "1000000"] = Deno.args;
  if (url === undefined) {
    console.error("usage: deno run -A bench/store_seed.ts <postgres-url> [count]");
    Deno.exit(2);
  }
  const driver = openPostgresDriver(url);
  try {
    await migrate(driver);
    const started = performance.now();
    await seedTasks(driver, Number(countText), {
      onProgress: (done) => console.error(`${done} tasks`),
    });
    console.error(`seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await driver.close();
  }
}
