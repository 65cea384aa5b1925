/**
 * The PostgreSQL driver of the store, over `npm:postgres` (postgres.js).
 *
 * @module
 */
import postgres from "postgres";
import type { NotifyHandler, SqlDriver, SqlQueryable } from "../driver.ts";

/** Options of {@linkcode openPostgresDriver}. */
export interface PostgresDriverOptions {
  /**
   * Most connections the pool opens (LISTEN uses one more, dedicated).
   *
   * @default {10}
   */
  poolSize?: number;
  /**
   * Seconds an idle connection stays open.
   *
   * @default {30}
   */
  idleTimeoutSeconds?: number;
  /**
   * Seconds to wait for a connection to open.
   *
   * @default {10}
   */
  connectTimeoutSeconds?: number;
}

type Pg = postgres.Sql<Record<string, never>>;
type Param = postgres.ParameterOrJSON<never>;

function queryable(sql: Pg | postgres.TransactionSql<Record<string, never>>): SqlQueryable {
  return {
    async query<T>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      const rows = await sql.unsafe(text, params as Param[], { prepare: true });
      return [...rows] as T[];
    },
    async exec(text: string): Promise<void> {
      await sql.unsafe(text);
    },
  };
}

/**
 * Opens a pool of connections to a PostgreSQL database.
 *
 * `bigint` columns come back as strings and `json`/`jsonb` as parsed values; the store casts
 * what it reads so that both drivers return the same shapes.
 *
 * @param url A `postgres://user:password@host:port/database` URL.
 * @param options Pool settings.
 * @returns The driver; connections open lazily on the first query.
 * @example
 * ```ts ignore
 * import { openPostgresDriver } from "./postgres_driver.ts";
 * const driver = openPostgresDriver("postgres://postgres@127.0.0.1:5432/planetary");
 * const rows = await driver.query<{ one: number }>("SELECT 1 AS one");
 * await driver.close();
 * ```
 */
export function openPostgresDriver(url: string, options: PostgresDriverOptions = {}): SqlDriver {
  const { poolSize = 10, idleTimeoutSeconds = 30, connectTimeoutSeconds = 10 } = options;
  const sql: Pg = postgres(url, {
    max: poolSize,
    idle_timeout: idleTimeoutSeconds,
    connect_timeout: connectTimeoutSeconds,
    prepare: true,
    onnotice: () => {},
  });
  const base = queryable(sql);
  return {
    kind: "postgres",
    query: base.query,
    exec: base.exec,
    async transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
      const result = await sql.begin((tx) => fn(queryable(tx)));
      return result as T;
    },
    async listen(channel: string, onNotify: NotifyHandler): Promise<() => Promise<void>> {
      const request = await sql.listen(channel, (payload) => onNotify(payload));
      return () => request.unlisten();
    },
    async notify(channel: string, payload: string): Promise<void> {
      await sql.notify(channel, payload);
    },
    async close(): Promise<void> {
      await sql.end({ timeout: 5 });
    },
  };
}
