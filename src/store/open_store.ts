/**
 * Opens the task store a deployment asks for: PostgreSQL when a database URL is given,
 * otherwise embedded PGlite (on disk at `dataDir`, or in memory), migrated and ready.
 *
 * @module
 */
import type { SqlDriver } from "./driver.ts";
import { migrate } from "./migrate.ts";
import { SqlTaskStore } from "./sql_task_store.ts";

/** Options of {@linkcode openTaskStore}. */
export interface OpenTaskStoreOptions {
  /** PostgreSQL URL (`postgres://…`); takes precedence over `dataDir`. */
  databaseUrl?: string;
  /** PGlite data directory, used when there is no `databaseUrl`; in memory when neither. */
  dataDir?: string;
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
 * @throws {DataDirLockedError} When another process holds the PGlite data directory.
 * @throws {Error} When the database cannot be reached or migrated.
 * @example
 * ```ts
 * import { openTaskStore } from "./open_store.ts";
 * const store = await openTaskStore({}); // in-memory PGlite
 * const id = await store.create({ executors: [{ image: "alpine", command: ["true"] }] });
 * await store.close();
 * ```
 */
export async function openTaskStore(options: OpenTaskStoreOptions = {}): Promise<SqlTaskStore> {
  const { databaseUrl, dataDir, poolSize = 10, migrate: runMigrations = true } = options;
  // Each driver is loaded only when used: PGlite (WASM) costs a server on PostgreSQL memory,
  // and the PostgreSQL client is not needed by the embedded default.
  const driver: SqlDriver = databaseUrl !== undefined
    ? (await import("./postgres/postgres_driver.ts")).openPostgresDriver(databaseUrl, { poolSize })
    : await (await import("./pglite/pglite_driver.ts")).openPgliteDriver(
      dataDir === undefined ? {} : { dataDir },
    );
  try {
    if (runMigrations) await migrate(driver);
  } catch (error) {
    await driver.close().catch(() => {});
    throw error;
  }
  return new SqlTaskStore(driver);
}
