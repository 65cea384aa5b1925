/**
 * The embedded driver of the store, over PGlite (PostgreSQL compiled to WebAssembly): one
 * process, one connection, no server to run. Good for a single-node `planetary serve` and
 * for tests.
 *
 * @module
 */
import { PGlite } from "@electric-sql/pglite";
import type { NotifyHandler, SqlDriver, SqlQueryable } from "../driver.ts";
import { acquireDataDirLock } from "./data_dir_lock.ts";

/** Options of {@linkcode openPgliteDriver}. */
export interface PgliteDriverOptions {
  /**
   * Directory holding the database; created when missing. Without one the database lives in
   * memory and is lost on close.
   */
  dataDir?: string;
}

interface PgliteQueryable {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(sql: string): Promise<unknown>;
}

function queryable(db: PgliteQueryable): SqlQueryable {
  return {
    async query<T>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      const result = await db.query<T>(text, [...params]);
      return result.rows;
    },
    async exec(text: string): Promise<void> {
      await db.exec(text);
    },
  };
}

/**
 * Opens (creating when needed) a PGlite database. PGlite runs one statement at a time and
 * serializes transactions; a data directory is locked against every other opener.
 *
 * @param options Where the data lives.
 * @returns The driver.
 * @throws {DataDirLockedError} When another process or store holds `dataDir`.
 * @example
 * ```ts
 * import { openPgliteDriver } from "./pglite_driver.ts";
 * const driver = await openPgliteDriver();
 * const rows = await driver.query<{ one: number }>("SELECT 1 AS one");
 * await driver.close();
 * ```
 */
export async function openPgliteDriver(options: PgliteDriverOptions = {}): Promise<SqlDriver> {
  const { dataDir } = options;
  const lock = dataDir === undefined ? undefined : acquireDataDirLock(dataDir);
  let db: PGlite;
  try {
    db = await PGlite.create(dataDir);
  } catch (error) {
    lock?.release();
    throw error;
  }
  const base = queryable(db);
  let closed = false;
  return {
    kind: "pglite",
    query: base.query,
    exec: base.exec,
    transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
      return db.transaction((tx) => fn(queryable(tx)));
    },
    listen(channel: string, onNotify: NotifyHandler): Promise<() => Promise<void>> {
      return db.listen(channel, onNotify);
    },
    async notify(channel: string, payload: string): Promise<void> {
      await db.query("SELECT pg_notify($1, $2)", [channel, payload]);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      try {
        await db.close();
      } finally {
        lock?.release();
      }
    },
  };
}
