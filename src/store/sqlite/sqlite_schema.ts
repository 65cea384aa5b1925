/**
 * The schema of the embedded SQLite store, versioned by `PRAGMA user_version`: the same tables
 * and indexes as the PostgreSQL migrations (`migrations/`), in SQLite's dialect (JSON as text,
 * times as epoch milliseconds).
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";

/** The schema versions, in order; version `n` is `SQLITE_SCHEMA[n - 1]`. */
export const SQLITE_SCHEMA: readonly string[] = Object.freeze([
  `
CREATE TABLE tasks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL CHECK (state IN (
    'UNKNOWN', 'QUEUED', 'INITIALIZING', 'RUNNING', 'PAUSED', 'COMPLETE', 'EXECUTOR_ERROR',
    'SYSTEM_ERROR', 'CANCELED', 'PREEMPTED', 'CANCELING')),
  name TEXT,
  description TEXT,
  request TEXT NOT NULL,
  input_contents TEXT,
  tags TEXT NOT NULL DEFAULT '{}',
  owner TEXT,
  creation_time INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  claim_owner TEXT,
  lease_expires_at INTEGER,
  start_time INTEGER,
  end_time INTEGER,
  executor_logs TEXT,
  executor_outputs TEXT,
  system_logs TEXT,
  output_logs TEXT,
  metadata TEXT
);
CREATE INDEX tasks_state_seq_idx ON tasks (state, seq);
CREATE INDEX tasks_owner_seq_idx ON tasks (owner, seq) WHERE owner IS NOT NULL;
CREATE INDEX tasks_queued_owner_idx ON tasks (COALESCE(owner, ''), seq) WHERE state = 'QUEUED';
CREATE INDEX tasks_live_owner_idx ON tasks (COALESCE(owner, ''), state)
  WHERE state IN ('INITIALIZING', 'RUNNING', 'PAUSED', 'CANCELING');
CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at)
  WHERE state IN ('INITIALIZING', 'RUNNING', 'PAUSED', 'CANCELING');
CREATE TABLE task_tags (
  task_seq INTEGER NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (key, value, task_seq)
) WITHOUT ROWID;
CREATE INDEX task_tags_key_seq_idx ON task_tags (key, task_seq);
`,
]);

/**
 * Brings a database to the newest schema, each version in its own transaction.
 *
 * @param db An open database.
 * @returns The versions applied (empty when it was up to date).
 * @throws {Error} When the database is newer than this program.
 * @example
 * ```ts
 * import { DatabaseSync } from "node:sqlite";
 * import { migrateSqlite } from "./sqlite_schema.ts";
 * const db = new DatabaseSync(":memory:");
 * migrateSqlite(db); // [1]
 * db.close();
 * ```
 */
export function migrateSqlite(db: DatabaseSync): number[] {
  const version = Number(
    (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
  );
  if (version > SQLITE_SCHEMA.length) {
    throw new Error(
      `the database has schema version ${version}, newer than this Planetary knows ` +
        `(${SQLITE_SCHEMA.length}): run a newer Planetary`,
    );
  }
  const applied: number[] = [];
  for (let next = version + 1; next <= SQLITE_SCHEMA.length; next++) {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(SQLITE_SCHEMA[next - 1]!);
      db.exec(`PRAGMA user_version = ${next}`);
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
    applied.push(next);
  }
  return applied;
}
