/**
 * Applies the schema migrations in order, each recorded in `schema_migrations`, all in one
 * transaction under a PostgreSQL advisory lock, so that several processes starting at once
 * (API replicas, orchestrators) migrate exactly once and never see half a schema.
 *
 * @module
 */
import type { SqlDriver } from "./driver.ts";
import { type Migration, MIGRATIONS } from "./migrations.ts";

/** Key of the advisory lock that serializes migrations (`'plan'`, 1). */
export const MIGRATION_LOCK_KEY: readonly [number, number] = Object.freeze([
  0x706c616e,
  1,
]) as readonly [number, number];

/** Options of {@linkcode migrate}. */
export interface MigrateOptions {
  /**
   * The migrations to apply.
   *
   * @default {MIGRATIONS}
   */
  migrations?: readonly Migration[];
}

/**
 * Brings a database's schema up to date.
 *
 * @param driver The database.
 * @param options Which migrations.
 * @returns The versions applied by this call (empty when already up to date).
 * @throws {Error} When a migration fails (nothing of this call is applied then).
 * @example
 * ```ts
 * import { openPgliteDriver } from "./pglite/pglite_driver.ts";
 * import { migrate } from "./migrate.ts";
 * const driver = await openPgliteDriver();
 * await migrate(driver);
 * await driver.close();
 * ```
 */
export async function migrate(driver: SqlDriver, options: MigrateOptions = {}): Promise<number[]> {
  const { migrations = MIGRATIONS } = options;
  return await driver.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1::int, $2::int)", [...MIGRATION_LOCK_KEY]);
    await tx.exec(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const rows = await tx.query<{ version: number }>("SELECT version FROM schema_migrations");
    const done = new Set(rows.map((row) => Number(row.version)));
    const applied: number[] = [];
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query("INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)", [
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
    }
    return applied;
  });
}
