/**
 * Opens the task store a deployment asks for: PostgreSQL when a database URL is given,
 * otherwise the embedded store: SQLite (`node:sqlite`, in `<dataDir>/planetary.sqlite`, or in
 * memory), or PGlite for a data folder that an earlier Planetary made with it. Migrated and
 * ready.
 *
 * @module
 */
import type { SqlDriver } from "./driver.ts";
import { migrate } from "./migrate.ts";
import { SqlTaskStore } from "./sql_task_store.ts";
import type { TaskStore } from "./task_store.ts";
import { DataDirNotUsableError } from "./pglite/data_dir_errors.ts";
import { acquireDataDirLock } from "./pglite/data_dir_lock.ts";

/** The file of the SQLite store in a data folder. */
export const SQLITE_FILE = "planetary.sqlite";

/** The embedded engines: SQLite (the default) and PGlite (PostgreSQL in WebAssembly). */
export type EmbeddedEngine = "sqlite" | "pglite";

/** What a data folder holds, for the embedded store. */
export type DataDirContents = EmbeddedEngine | "nothing" | "not-a-folder" | "other";

/**
 * Tells what a data folder holds: a SQLite store, a PGlite database (`PG_VERSION`, which
 * `initdb` writes into every PostgreSQL data directory), nothing (missing or empty), or
 * something else.
 *
 * @param dataDir The data folder.
 * @returns What it holds.
 * @throws {Deno.errors.PermissionDenied} When the folder cannot be read.
 * @example
 * ```ts
 * import { dataDirContents } from "./open_store.ts";
 * await dataDirContents(await Deno.makeTempDir()); // "nothing"
 * ```
 */
export async function dataDirContents(dataDir: string): Promise<DataDirContents> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dataDir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "nothing";
    throw error;
  }
  if (!info.isDirectory) return "not-a-folder";
  const isFile = async (name: string): Promise<boolean> => {
    try {
      return (await Deno.lstat(`${dataDir}/${name}`)).isFile;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  };
  if (await isFile(SQLITE_FILE)) return "sqlite";
  if (await isFile("PG_VERSION")) return "pglite";
  for await (const _ of Deno.readDir(dataDir)) return "other";
  return "nothing";
}

/** Options of {@linkcode openTaskStore}. */
export interface OpenTaskStoreOptions {
  /** PostgreSQL URL (`postgres://…`); takes precedence over `dataDir`. */
  databaseUrl?: string;
  /**
   * Data folder of the embedded store, used when there is no `databaseUrl`; in memory when
   * neither. A folder that holds a PGlite database of an earlier Planetary is opened with
   * PGlite (and `onNotice` says so); otherwise the store is SQLite.
   */
  dataDir?: string;
  /**
   * The embedded engine, whatever the data folder holds (for comparisons and tests).
   *
   * @default "sqlite", or "pglite" for a folder that holds a PGlite database
   */
  engine?: EmbeddedEngine;
  /** Told what the operator should know (a data folder kept on PGlite). */
  onNotice?: (message: string) => void;
  /**
   * Connections of the PostgreSQL pool.
   *
   * @default {10}
   */
  poolSize?: number;
  /**
   * Whether to apply pending migrations on open.
   *
   * @default {true}
   */
  migrate?: boolean;
}

/**
 * Opens and migrates the task store.
 *
 * @param options Where the tasks live.
 * @returns The store; close it when done.
 * @throws {DataDirLockedError} When another process holds the data folder.
 * @throws {DataDirNotUsableError} When the data folder is a file, or holds something else.
 * @throws {Error} When the database cannot be reached or migrated.
 * @example
 * ```ts
 * import { openTaskStore } from "./open_store.ts";
 * const store = await openTaskStore({}); // in-memory SQLite
 * const id = await store.create({ executors: [{ image: "alpine", command: ["true"] }] });
 * await store.close();
 * ```
 */
export async function openTaskStore(
  options: OpenTaskStoreOptions & { databaseUrl: string },
): Promise<SqlTaskStore>;
/**
 * Opens and migrates the embedded task store (SQLite; PGlite for an earlier PGlite folder).
 *
 * @param options Where the tasks live.
 * @returns The store; close it when done.
 */
export async function openTaskStore(options?: OpenTaskStoreOptions): Promise<TaskStore>;
export async function openTaskStore(options: OpenTaskStoreOptions = {}): Promise<TaskStore> {
  const { databaseUrl, dataDir, poolSize = 10, migrate: runMigrations = true } = options;
  // Each driver is loaded only when used: PGlite (WASM) costs a server on PostgreSQL memory,
  // and the PostgreSQL client is not needed by the embedded default.
  let driver: SqlDriver;
  if (databaseUrl !== undefined) {
    const { openPostgresDriver } = await import("./postgres/postgres_driver.ts");
    driver = openPostgresDriver(databaseUrl, { poolSize });
  } else {
    const contents = dataDir === undefined ? "nothing" : await dataDirContents(dataDir);
    const engine = options.engine ?? (contents === "pglite" ? "pglite" : "sqlite");
    if (engine === "sqlite") return await openSqlite(dataDir, contents);
    if (contents === "pglite" && options.engine === undefined) {
      options.onNotice?.(
        `data folder ${dataDir} holds a PGlite database of an earlier Planetary: it keeps ` +
          "working on PGlite; new data folders use SQLite (lighter and faster). To move to " +
          "SQLite, let the tasks finish, then start with an empty --data-dir.",
      );
    }
    const { openPgliteDriver } = await import("./pglite/pglite_driver.ts");
    driver = await openPgliteDriver(dataDir === undefined ? {} : { dataDir });
  }
  try {
    if (runMigrations) await migrate(driver);
  } catch (error) {
    await driver.close().catch(() => {});
    throw error;
  }
  return new SqlTaskStore(driver);
}

/** Opens the SQLite store of a data folder (locked against other processes), or in memory. */
async function openSqlite(
  dataDir: string | undefined,
  contents: DataDirContents,
): Promise<TaskStore> {
  const { openSqliteTaskStore } = await import("./sqlite/sqlite_task_store.ts");
  if (dataDir === undefined) return openSqliteTaskStore();
  if (contents === "not-a-folder") {
    throw new DataDirNotUsableError(dataDir, "is not a folder: choose a folder");
  }
  if (contents === "other" || contents === "pglite") {
    throw new DataDirNotUsableError(
      dataDir,
      "is not empty and holds no Planetary database: choose another folder or empty it",
    );
  }
  const lock = acquireDataDirLock(dataDir);
  try {
    await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
    const path = `${dataDir}/${SQLITE_FILE}`;
    // Made first with mode 0600: SQLite gives its -wal and -shm files the database's mode.
    (await Deno.open(path, { create: true, write: true, mode: 0o600 })).close();
    return openSqliteTaskStore({ path, onClose: () => lock.release() });
  } catch (error) {
    lock.release();
    throw error;
  }
}
