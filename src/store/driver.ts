/**
 * The tiny driver port the SQL task store runs on: parameterised queries (`$1`-style
 * placeholders), transactions, and LISTEN/NOTIFY. Two drivers implement it: PostgreSQL
 * (`postgres/postgres_driver.ts`) and embedded PGlite (`pglite/pglite_driver.ts`).
 *
 * @module
 */

/** Something that runs SQL: a driver, or the handle of an open transaction. */
export interface SqlQueryable {
  /**
   * Runs ONE statement with `$1`-style parameters and returns its rows.
   *
   * @param sql The statement text.
   * @param params The parameter values (`null` for SQL NULL).
   * @returns The rows, as objects keyed by column name.
   */
  query<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /**
   * Runs a script of several statements without parameters (migrations).
   *
   * @param sql The script.
   */
  exec(sql: string): Promise<void>;
}

/** Called with the payload of each notification on a channel. */
export type NotifyHandler = (payload: string) => void;

/** A connection (pool) to one database. */
export interface SqlDriver extends SqlQueryable {
  /** Which engine answers: a PostgreSQL server or embedded PGlite. */
  readonly kind: "postgres" | "pglite";
  /**
   * Runs `fn` in a transaction: committed when it resolves, rolled back when it throws.
   *
   * @param fn Work to do with the transaction handle (use it, not the driver, inside).
   * @returns What `fn` returned.
   */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  /**
   * Listens on a channel (`LISTEN`).
   *
   * @param channel The channel name (a plain identifier).
   * @param onNotify Called with each payload.
   * @returns A function that stops listening.
   */
  listen(channel: string, onNotify: NotifyHandler): Promise<() => Promise<void>>;
  /**
   * Sends a notification (`pg_notify`), delivered when the current transaction commits.
   *
   * @param channel The channel name.
   * @param payload The payload.
   */
  notify(channel: string, payload: string): Promise<void>;
  /** Closes every connection; the driver is unusable afterwards. */
  close(): Promise<void>;
}
