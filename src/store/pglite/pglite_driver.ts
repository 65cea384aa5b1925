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
import { DataDirNotUsableError } from "./data_dir_errors.ts";

/** Options of {@linkcode openPgliteDriver}. */
export interface PgliteDriverOptions {
  /**
   * Directory holding the database; created when missing. Without one the database lives in
   * memory and is lost on close.
   */
  dataDir?: string;
}

export { DataDirNotUsableError } from "./data_dir_errors.ts";

/** What is wrong with a data folder for the embedded database, or undefined when it is fine. */
export type DataDirProblem = "not-a-folder" | "not-empty";

/**
 * Checks that PGlite can open `dataDir`: it is missing (PGlite creates it), an empty folder
 * (PGlite initializes it), or a folder that holds a database (`PG_VERSION`, which `initdb`
 * writes into every PostgreSQL data directory).
 *
 * @param dataDir The data directory.
 * @returns What is wrong, or undefined when PGlite can use it.
 * @throws {Deno.errors.PermissionDenied} When the folder cannot be read.
 * @example
 * ```ts
 * import { dataDirProblem } from "./pglite_driver.ts";
 * await dataDirProblem(await Deno.makeTempDir()); // undefined
 * ```
 */
export async function dataDirProblem(dataDir: string): Promise<DataDirProblem | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dataDir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  if (!info.isDirectory) return "not-a-folder";
  try {
    if ((await Deno.stat(`${dataDir}/PG_VERSION`)).isFile) return undefined;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for await (const _ of Deno.readDir(dataDir)) return "not-empty";
  return undefined;
}

const DATA_DIR_PROBLEMS: Readonly<Record<DataDirProblem, string>> = Object.freeze({
  "not-a-folder": "is not a folder: choose a folder",
  "not-empty": "is not empty and holds no Planetary database: choose another folder or empty it",
});

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
 * @throws {DataDirNotUsableError} When `dataDir` is a file, or a folder that is not empty and
 * holds no database.
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
    const problem = dataDir === undefined ? undefined : await dataDirProblem(dataDir);
    if (dataDir !== undefined && problem !== undefined) {
      throw new DataDirNotUsableError(dataDir, DATA_DIR_PROBLEMS[problem]);
    }
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
