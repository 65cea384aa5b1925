/**
 * The task store: the {@linkcode TaskStore} contract, its SQL implementation over PostgreSQL
 * (`npm:postgres`) or PGlite, the embedded SQLite store (`node:sqlite`), the migrations, and
 * {@linkcode openTaskStore} that picks and prepares one.
 *
 * ```ts
 * import { openTaskStore } from "./mod.ts";
 * const store = await openTaskStore({}); // in-memory SQLite
 * await store.close();
 * ```
 *
 * @module
 */
export * from "./task_store.ts";
export * from "./driver.ts";
export * from "./postgres/postgres_driver.ts";
export * from "./pglite/pglite_driver.ts";
export * from "./pglite/data_dir_lock.ts";
export * from "./migrations.ts";
export * from "./migrate.ts";
export * from "./task_id.ts";
export * from "./page_token.ts";
export * from "./sql_task_store.ts";
export * from "./sqlite/sqlite_task_store.ts";
export * from "./sqlite/sqlite_schema.ts";
export * from "./open_store.ts";
// The TES types in the store's signatures, so that this entry point documents them.
export type * from "../tes/model.ts";
