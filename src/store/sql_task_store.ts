/**
 * The SQL implementation of {@linkcode TaskStore}, over the driver port (PostgreSQL or
 * PGlite). Every statement is plain PostgreSQL; every state change is a compare-and-set
 * `UPDATE … WHERE id = $1 AND state = ANY($2)` driven by the TES state machine.
 *
 * @module
 */
import type { TesState, TesTask, TesView } from "../tes/model.ts";
import { allowedSources } from "../tes/state.ts";
import type { SqlDriver } from "./driver.ts";
import { decodePageToken, encodePageToken, fingerprintFilters } from "./page_token.ts";
import { type CreateRow, createRow, splitExecutorLogs, type TaskRow, toTask } from "./_task_row.ts";
import { GroupCommitter } from "./_group_commit.ts";
import { WakeUps } from "./_wake_ups.ts";
import {
  type CancelResult,
  type ClaimedTask,
  type ClaimOptions,
  type CreateTaskOptions,
  type ListTasksPage,
  type ListTasksQuery,
  type LiveTasksQuery,
  type TaskLeaseInfo,
  TaskNotFoundError,
  type TaskStore,
  type TaskUpdate,
} from "./task_store.ts";

/** Channel notified (empty payload) when a task is created. */
export const WORK_CHANNEL = "planetary_tasks";
/** Channel notified (payload: task id) when a cancel request changes a task. */
export const CANCEL_CHANNEL = "planetary_cancel";

/** States of a task that an orchestrator holds (claimed and not finished). */
const LIVE_STATES = "('INITIALIZING', 'RUNNING', 'PAUSED', 'CANCELING')";

function rfc3339(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/** The columns read for a view: BASIC never touches the big columns (TOAST stays cold). */
function columns(view: TesView): string {
  const minimal = ["t.seq::text AS seq", "t.id", "t.state"];
  if (view === "MINIMAL") return minimal.join(", ");
  const basic = [
    ...minimal,
    "t.name",
    "t.description",
    "t.request",
    "t.tags",
    `${rfc3339("t.creation_time")} AS creation_time`,
    `${rfc3339("t.start_time")} AS start_time`,
    `${rfc3339("t.end_time")} AS end_time`,
    "t.executor_logs",
    "t.output_logs",
    "t.metadata",
    "t.system_logs IS NOT NULL AS has_system_logs",
  ];
  if (view === "BASIC") return basic.join(", ");
  return [...basic, "t.input_contents", "t.executor_outputs", "t.system_logs"].join(", ");
}

/** Collects `$n` parameters while a statement is built. */
class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

/** Parameters and SET clauses of a {@linkcode TaskUpdate}, from `$first` on. */
function updateClauses(update: TaskUpdate, params: Params): string[] {
  const { executorLogs, outputs, systemLogs, metadata, startTime, endTime } = update;
  const { stored, streams } = splitExecutorLogs(executorLogs);
  const logs = params.add(json(stored));
  const outs = params.add(json(streams));
  const files = params.add(json(outputs));
  const system = params.add(json(systemLogs));
  const meta = params.add(json(metadata));
  const start = params.add(startTime?.toISOString() ?? null);
  const end = params.add(endTime?.toISOString() ?? null);
  return [
    `executor_logs = COALESCE(${logs}::text::jsonb, executor_logs)`,
    `executor_outputs = COALESCE(${outs}::text::jsonb, executor_outputs)`,
    `output_logs = COALESCE(${files}::text::jsonb, output_logs)`,
    `system_logs = CASE WHEN ${system}::text IS NULL THEN system_logs
       ELSE COALESCE(system_logs, '[]'::jsonb) || ${system}::text::jsonb END`,
    `metadata = CASE WHEN ${meta}::text IS NULL THEN metadata
       ELSE COALESCE(metadata, '{}'::jsonb) || ${meta}::text::jsonb END`,
    `start_time = COALESCE(${start}::text::timestamptz, start_time)`,
    `end_time = COALESCE(${end}::text::timestamptz, end_time)`,
    "updated_at = now()",
  ];
}

/**
 * Inserts QUEUED tasks (with their tags, and one NOTIFY for waiting orchestrators) in one
 * statement: `$1` is a JSON array of rows, inserted in array order (so `seq`, the list order,
 * follows it).
 */
const CREATE_SQL = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::text::jsonb) AS x(
    ord int, id text, name text, description text, request jsonb, input_contents jsonb,
    tags jsonb, owner text)
), t AS (
  INSERT INTO tasks (id, state, name, description, request, input_contents, tags, owner)
  SELECT id, 'QUEUED', name, description, request, input_contents, tags, owner
  FROM input ORDER BY ord
  RETURNING seq, tags
), g AS (
  INSERT INTO task_tags (task_seq, key, value)
  SELECT t.seq, e.key, e.value FROM t CROSS JOIN jsonb_each_text(t.tags) AS e
)
SELECT pg_notify('${WORK_CHANNEL}', '') IS NULL AS notified, (SELECT count(*) FROM t) AS n`;

/** One parameterised statement. */
interface Statement {
  sql: string;
  params: readonly unknown[];
}

const CANCEL_SQL = (withOwner: boolean): string => `
UPDATE tasks
SET state = CASE WHEN state = 'QUEUED' THEN 'CANCELED' ELSE 'CANCELING' END,
    system_logs = COALESCE(system_logs, '[]'::jsonb) ||
      jsonb_build_array('cancel requested while ' || state),
    end_time = CASE WHEN state = 'QUEUED' THEN now() ELSE end_time END,
    updated_at = now()
WHERE id = $1 ${withOwner ? "AND owner = $2" : ""}
  AND state IN ('QUEUED', 'INITIALIZING', 'RUNNING', 'PAUSED')
RETURNING state, pg_notify('${CANCEL_CHANNEL}', id) IS NULL AS notified`;

/** Claims the oldest QUEUED tasks and expired leases, with no per-owner limit: one statement. */
const CLAIM_SQL = `
WITH queued AS (
  SELECT seq FROM tasks WHERE state = 'QUEUED'
  ORDER BY seq LIMIT $2::int FOR UPDATE SKIP LOCKED
), expired AS (
  SELECT seq FROM tasks WHERE state IN ${LIVE_STATES} AND lease_expires_at < now()
  ORDER BY seq LIMIT $2::int FOR UPDATE SKIP LOCKED
), chosen AS (
  SELECT seq FROM queued UNION SELECT seq FROM expired ORDER BY seq LIMIT $2::int
)
UPDATE tasks t
SET state = CASE WHEN t.state = 'QUEUED' THEN 'INITIALIZING' ELSE t.state END,
    claim_owner = $1,
    lease_expires_at = now() + $3::int * interval '1 millisecond',
    updated_at = now()
FROM chosen WHERE t.seq = chosen.seq
RETURNING ${columns("FULL")},
  (extract(epoch FROM t.lease_expires_at) * 1000)::float8 AS lease_ms`;

/**
 * First key of the per-owner advisory locks of a limited claim (`'plow'`; the second key is
 * `hashtext(owner)`). Distinct from the migration lock's first key.
 */
export const OWNER_LOCK_KEY: number = 0x706c6f77;

/** The owner a task counts against: tasks without one (no authentication) share `''`. */
const TASK_OWNER = (alias: string): string => `COALESCE(${alias}.owner, '')`;

/** Live tasks of owner `o` (an index-only count on `tasks_live_owner_idx`). */
const LIVE_COUNT = (o: string): string =>
  `(SELECT count(*)::int FROM tasks l WHERE ${
    TASK_OWNER("l")
  } = ${o} AND l.state IN ${LIVE_STATES})`;

/**
 * Step 1 of a limited claim ($1 lock key, $2 claim size, $3 per-owner limit): the owners to
 * take tasks from, each one's advisory lock TRIED: an owner whose lock another claimer holds
 * is passed over this time, as `SKIP LOCKED` passes over a row, so claimers never wait for
 * each other and a claimer that loses an owner to another goes on to the next owners.
 *
 * The distinct owners of queued tasks come from a skip scan of `tasks_queued_owner_idx` (one
 * probe per owner, however many tasks each has queued), then each owner's room and its oldest
 * queued tasks within it (`heads`). Those are walked oldest first (`walk`, a recursive CTE, so
 * one row at a time and locks tried in that order), locking each new owner, until `$2` tasks
 * are covered; at most `4 × $2` candidates are walked. The counts here come from this
 * statement's snapshot and only choose candidates: step 2 counts again under the locks.
 * Round-robin claiming across owners (issue 14) would order `heads` by each task's rank within
 * its owner before `seq`, here and in step 2.
 */
const CLAIM_LOCK_OWNERS_SQL = `
WITH RECURSIVE owners AS (
  (SELECT ${TASK_OWNER("q")} AS o FROM tasks q WHERE q.state = 'QUEUED'
   ORDER BY ${TASK_OWNER("q")} LIMIT 1)
  UNION ALL
  SELECT (SELECT ${TASK_OWNER("q")} FROM tasks q
          WHERE q.state = 'QUEUED' AND ${TASK_OWNER("q")} > owners.o
          ORDER BY ${TASK_OWNER("q")} LIMIT 1)
  FROM owners WHERE owners.o IS NOT NULL
), room AS (
  SELECT o, GREATEST(0, $3::int - ${LIVE_COUNT("owners.o")}) AS n
  FROM owners WHERE o IS NOT NULL
), heads AS (
  SELECT room.o, h.seq FROM room CROSS JOIN LATERAL (
    SELECT q.seq FROM tasks q WHERE q.state = 'QUEUED' AND ${TASK_OWNER("q")} = room.o
    ORDER BY q.seq LIMIT LEAST(room.n, $2::int)
  ) h
), candidates AS MATERIALIZED (
  SELECT row_number() OVER (ORDER BY seq) AS i, o
  FROM (SELECT o, seq FROM heads ORDER BY seq LIMIT 4 * $2::int) oldest
), walk AS (
  SELECT 0::bigint AS i, 0 AS got, ARRAY[]::text[] AS locked, ARRAY[]::text[] AS busy
  UNION ALL
  SELECT c.i, w.got + x.ok::int,
    CASE WHEN x.ok AND NOT c.o = ANY(w.locked) THEN w.locked || c.o ELSE w.locked END,
    CASE WHEN NOT x.ok AND NOT c.o = ANY(w.busy) THEN w.busy || c.o ELSE w.busy END
  FROM walk w JOIN candidates c ON c.i = w.i + 1
  CROSS JOIN LATERAL (SELECT CASE
    WHEN c.o = ANY(w.locked) THEN true
    WHEN c.o = ANY(w.busy) THEN false
    ELSE pg_try_advisory_xact_lock($1::int, hashtext(c.o))
  END AS ok) x
  WHERE w.got < $2::int
)
SELECT locked FROM walk ORDER BY i DESC LIMIT 1`;

/**
 * Step 2 of a limited claim ($1 claim owner, $2 claim size, $3 lease ms, $4 per-owner limit,
 * $5 the owners locked by step 1): the claim itself, as {@linkcode CLAIM_SQL} but with the
 * QUEUED tasks taken only from the locked owners, each within its room counted now. A new
 * statement has a new snapshot, taken after step 1 got the locks; a claimer that held one of
 * them before has committed (its claims are visible) or still holds it (we did not get it).
 * So no two claims ever count an owner's live tasks at once, and the limit is never overshot.
 */
const CLAIM_LIMITED_SQL = `
WITH room AS (
  SELECT o, GREATEST(0, $4::int - ${LIVE_COUNT("locked.o")}) AS n
  FROM unnest($5::text[]) AS locked(o)
), queued AS (
  SELECT h.seq FROM room CROSS JOIN LATERAL (
    SELECT q.seq FROM tasks q WHERE q.state = 'QUEUED' AND ${TASK_OWNER("q")} = room.o
    ORDER BY q.seq LIMIT LEAST(room.n, $2::int) FOR UPDATE SKIP LOCKED
  ) h
  ORDER BY h.seq LIMIT $2::int
), expired AS (
  SELECT seq FROM tasks WHERE state IN ${LIVE_STATES} AND lease_expires_at < now()
  ORDER BY seq LIMIT $2::int FOR UPDATE SKIP LOCKED
), chosen AS (
  SELECT seq FROM queued UNION SELECT seq FROM expired ORDER BY seq LIMIT $2::int
)
UPDATE tasks t
SET state = CASE WHEN t.state = 'QUEUED' THEN 'INITIALIZING' ELSE t.state END,
    claim_owner = $1,
    lease_expires_at = now() + $3::int * interval '1 millisecond',
    updated_at = now()
FROM chosen WHERE t.seq = chosen.seq
RETURNING ${columns("FULL")},
  (extract(epoch FROM t.lease_expires_at) * 1000)::float8 AS lease_ms`;

/** The columns of a {@linkcode TaskLeaseInfo}; times as epoch milliseconds. */
const LEASE_COLUMNS = `id, state, claim_owner,
  (extract(epoch FROM lease_expires_at) * 1000)::float8 AS lease_ms,
  (extract(epoch FROM updated_at) * 1000)::float8 AS updated_ms`;

interface LeaseRow {
  id: string;
  state: TesState;
  claim_owner: string | null;
  lease_ms: number | string | null;
  updated_ms: number | string;
}

function toLeaseInfo(row: LeaseRow): TaskLeaseInfo {
  return {
    id: row.id,
    state: row.state,
    ...(row.claim_owner != null ? { claimOwner: row.claim_owner } : {}),
    ...(row.lease_ms != null ? { leaseExpiresAt: new Date(Number(row.lease_ms)) } : {}),
    updatedAt: new Date(Number(row.updated_ms)),
  };
}

/** Options of {@linkcode SqlTaskStore}. */
export interface SqlTaskStoreOptions {
  /**
   * Whether {@linkcode SqlTaskStore.close} closes the driver too.
   *
   * @default {true}
   */
  ownsDriver?: boolean;
  /**
   * Group commits of creates written at the same time (each takes a connection while it runs).
   *
   * @default {2}
   */
  createsInFlight?: number;
}

/**
 * The task store over a SQL driver. Create it on a migrated database (see
 * {@linkcode openTaskStore}, which does both).
 *
 * @example
 * ```ts
 * import { openPgliteDriver } from "./pglite/pglite_driver.ts";
 * import { migrate } from "./migrate.ts";
 * import { SqlTaskStore } from "./sql_task_store.ts";
 * const driver = await openPgliteDriver();
 * await migrate(driver);
 * const store = new SqlTaskStore(driver);
 * const id = await store.create({ executors: [{ image: "alpine", command: ["true"] }] });
 * const task = await store.get(id, "MINIMAL"); // { id, state: "QUEUED" }
 * await store.close();
 * ```
 */
export class SqlTaskStore implements TaskStore {
  #driver: SqlDriver;
  #ownsDriver: boolean;
  #listening: Promise<() => Promise<void>> | undefined;
  #wakeUps = new WakeUps();
  #closed = false;
  #creates: GroupCommitter<CreateRow, string>;
  #writes: GroupCommitter<Statement, unknown[]>;

  /**
   * Wraps a driver.
   *
   * @param driver A driver on a migrated database.
   * @param options Ownership of the driver.
   */
  constructor(driver: SqlDriver, options: SqlTaskStoreOptions = {}) {
    const { ownsDriver = true, createsInFlight = 2 } = options;
    this.#driver = driver;
    this.#ownsDriver = ownsDriver;
    this.#creates = new GroupCommitter((rows) => this.#insert(rows), {
      maxInFlight: createsInFlight,
    });
    // One batch at a time: two concurrent batches could lock the same rows in opposite orders.
    this.#writes = new GroupCommitter((statements) => this.#runStatements(statements), {
      maxInFlight: 1,
      maxBatch: 256,
    });
  }

  /**
   * Runs single-row writes (state transitions, updates, cancels) that arrived together in ONE
   * transaction, in arrival order: one commit (one fsync) for all of them. Each statement is
   * the same as when it runs alone, so its result does not change; a statement that fails
   * aborts the transaction, and the committer then runs each one alone.
   */
  async #runStatements(statements: readonly Statement[]): Promise<unknown[][]> {
    if (statements.length === 1) {
      const [only] = statements;
      return [await this.#driver.query(only!.sql, only!.params)];
    }
    return await this.#driver.transaction(async (tx) => {
      const results: unknown[][] = [];
      for (const { sql, params } of statements) results.push(await tx.query(sql, params));
      return results;
    });
  }

  /** A write statement, group-committed with the writes that arrive with it. */
  #write<T>(sql: string, params: readonly unknown[]): Promise<T[]> {
    return this.#writes.add({ sql, params }) as Promise<T[]>;
  }

  /** The driver under this store. */
  get driver(): SqlDriver {
    return this.#driver;
  }

  /**
   * Inserts a task as QUEUED (with its tags, and a NOTIFY for waiting orchestrators). Creates
   * that arrive while earlier ones are being committed are group-committed: one statement and
   * one commit for all of them (see `_group_commit.ts`); each resolves once its row committed.
   *
   * @param task A validated task; read-only fields are ignored.
   * @param options The owner.
   * @returns The new id.
   */
  create(task: TesTask, options: CreateTaskOptions = {}): Promise<string> {
    return this.#creates.add(createRow(task, options.owner, 0));
  }

  /**
   * Inserts several tasks as QUEUED in one statement and one commit: all or none.
   *
   * @param tasks Validated tasks; read-only fields are ignored.
   * @param options The owner of every task.
   * @returns The new ids, in the order of `tasks`.
   */
  async createMany(tasks: readonly TesTask[], options: CreateTaskOptions = {}): Promise<string[]> {
    if (tasks.length === 0) return [];
    return await this.#insert(tasks.map((task) => createRow(task, options.owner, 0)));
  }

  /** One INSERT of many rows, in order. */
  async #insert(rows: readonly CreateRow[]): Promise<string[]> {
    const ordered = rows.map((row, ord) => ({ ...row, ord }));
    const [result] = await this.#driver.query<{ n: number | string }>(CREATE_SQL, [
      JSON.stringify(ordered),
    ]);
    if (Number(result?.n) !== rows.length) {
      throw new Error(`inserted ${result?.n} of ${rows.length} tasks`);
    }
    return rows.map((row) => row.id);
  }

  /**
   * Loads one task.
   *
   * @param id The task id.
   * @param view How much to load.
   * @param owner When given, only a task of this owner is found.
   * @returns The task in the view.
   * @throws {TaskNotFoundError} When there is no such task (for this owner).
   */
  async get(id: string, view: TesView, owner?: string): Promise<TesTask> {
    const params = new Params();
    const where = [`t.id = ${params.add(id)}`];
    if (owner !== undefined) where.push(`t.owner = ${params.add(owner)}`);
    const rows = await this.#driver.query<TaskRow>(
      `SELECT ${columns(view)} FROM tasks t WHERE ${where.join(" AND ")}`,
      params.values,
    );
    const row = rows[0];
    if (row === undefined) throw new TaskNotFoundError(id);
    return toTask(row, view);
  }

  /**
   * Lists tasks newest first. A tag filter drives the query from the `task_tags` index (an
   * ordered range scan); otherwise `tasks` is walked by `seq` (through the state index when
   * filtered by state).
   *
   * @param query Filters, page and view.
   * @returns One page.
   * @throws {InvalidPageTokenError} When the page token is garbage or from other filters.
   */
  async list(query: ListTasksQuery): Promise<ListTasksPage> {
    const { namePrefix, state, tags = {}, pageSize, pageToken, view, owner } = query;
    const filters = {
      ...(namePrefix !== undefined ? { namePrefix } : {}),
      ...(state !== undefined ? { state } : {}),
      tags,
      ...(owner !== undefined ? { owner } : {}),
    };
    const fingerprint = await fingerprintFilters(filters);
    const after = pageToken === undefined ? undefined : decodePageToken(pageToken, fingerprint);
    const params = new Params();
    const tagFilters = Object.entries(tags).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
    // A tag with a value is the most selective: it drives the scan.
    const driving = tagFilters.find(([, value]) => value !== "") ?? tagFilters[0];
    const where: string[] = [];
    let from = "tasks t";
    let seq = "t.seq";
    if (driving !== undefined) {
      from = "task_tags g JOIN tasks t ON t.seq = g.task_seq";
      seq = "g.task_seq";
      where.push(`g.key = ${params.add(driving[0])}`);
      if (driving[1] !== "") where.push(`g.value = ${params.add(driving[1])}`);
    }
    if (after !== undefined) where.push(`${seq} < ${params.add(after)}::text::bigint`);
    if (state !== undefined) where.push(`t.state = ${params.add(state)}`);
    if (owner !== undefined) where.push(`t.owner = ${params.add(owner)}`);
    if (namePrefix !== undefined && namePrefix !== "") {
      where.push(`t.name LIKE ${params.add(`${escapeLike(namePrefix)}%`)}`);
    }
    for (const tag of tagFilters) {
      if (tag === driving) continue;
      const value = tag[1] === "" ? "" : ` AND x.value = ${params.add(tag[1])}`;
      where.push(
        `EXISTS (SELECT 1 FROM task_tags x WHERE x.task_seq = t.seq AND x.key = ${
          params.add(tag[0])
        }${value})`,
      );
    }
    const limit = params.add(pageSize + 1);
    const sql = `SELECT ${columns(view)} FROM ${from}${
      where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""
    } ORDER BY ${seq} DESC LIMIT ${limit}::int`;
    const rows = await this.#driver.query<TaskRow>(sql, params.values);
    const page: ListTasksPage = { tasks: [] };
    if (rows.length > pageSize) {
      rows.length = pageSize;
      page.nextPageToken = encodePageToken(rows[rows.length - 1]!.seq, fingerprint);
    }
    page.tasks = rows.map((row) => toTask(row, view));
    return page;
  }

  /**
   * Asks to cancel a task (QUEUED → CANCELED; INITIALIZING/RUNNING/PAUSED → CANCELING, with a
   * NOTIFY on {@linkcode CANCEL_CHANNEL}); other states are left as they are.
   *
   * @param id The task id.
   * @param owner When given, only a task of this owner is found.
   * @returns The state after the request and whether it changed.
   * @throws {TaskNotFoundError} When there is no such task (for this owner).
   */
  async cancel(id: string, owner?: string): Promise<CancelResult> {
    const params = owner === undefined ? [id] : [id, owner];
    const changed = await this.#write<{ state: TesState }>(CANCEL_SQL(owner !== undefined), params);
    if (changed[0] !== undefined) return { state: changed[0].state, changed: true };
    const rows = await this.#driver.query<{ state: TesState }>(
      `SELECT state FROM tasks WHERE id = $1${owner === undefined ? "" : " AND owner = $2"}`,
      params,
    );
    if (rows[0] === undefined) throw new TaskNotFoundError(id);
    return { state: rows[0].state, changed: false };
  }

  /**
   * Claims up to `limit` tasks, oldest first: QUEUED ones (moved to INITIALIZING) and live
   * ones whose lease expired (state kept). Rows locked by a concurrent claim are skipped, so a
   * task is never handed to two owners.
   *
   * With `options.maxRunningPerOwner`, QUEUED tasks of an owner who already has that many live
   * tasks stay QUEUED (in their place) while other owners' tasks are claimed. The claim then
   * runs in one transaction of two statements: the first tries the advisory lock of each
   * owner it may take tasks from (`pg_try_advisory_xact_lock(OWNER_LOCK_KEY,
   * hashtext(owner))`, skipping owners another claim holds), the second counts each locked
   * owner's live tasks afresh and claims within the room left. Locks last until commit, so
   * two concurrent claims never both see the same room and the limit cannot be overshot.
   *
   * @param owner The claiming orchestrator.
   * @param limit Most tasks to claim.
   * @param leaseMs How long the claim lasts unless renewed.
   * @param options The per-owner limit.
   * @returns The claimed tasks (FULL view), oldest first.
   */
  async claim(
    owner: string,
    limit: number,
    leaseMs: number,
    options: ClaimOptions = {},
  ): Promise<ClaimedTask[]> {
    const { maxRunningPerOwner = 0 } = options;
    const lease = Math.round(leaseMs);
    const rows = maxRunningPerOwner > 0
      ? await this.#driver.transaction(async (tx) => {
        const walked = await tx.query<{ locked: string[] }>(CLAIM_LOCK_OWNERS_SQL, [
          OWNER_LOCK_KEY,
          limit,
          maxRunningPerOwner,
        ]);
        return await tx.query<TaskRow & { lease_ms: number }>(CLAIM_LIMITED_SQL, [
          owner,
          limit,
          lease,
          maxRunningPerOwner,
          walked[0]?.locked ?? [],
        ]);
      })
      : await this.#driver.query<TaskRow & { lease_ms: number }>(CLAIM_SQL, [
        owner,
        limit,
        lease,
      ]);
    return rows
      .sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1))
      .map((row) => ({
        task: toTask(row, "FULL") as ClaimedTask["task"],
        claimOwner: owner,
        leaseExpiresAt: new Date(Number(row.lease_ms)),
      }));
  }

  /**
   * Extends the leases of the live tasks held by `owner`: all of them, or only `ids`.
   *
   * @param owner The orchestrator.
   * @param leaseMs New lease length from now.
   * @param ids Only these tasks (the ones the orchestrator really works on).
   * @returns How many leases were renewed.
   */
  async renewLeases(owner: string, leaseMs: number, ids?: readonly string[]): Promise<number> {
    const rows = await this.#driver.query<{ n: number }>(
      `WITH u AS (
         UPDATE tasks SET lease_expires_at = now() + $2::int * interval '1 millisecond'
         WHERE claim_owner = $1 AND state IN ${LIVE_STATES}
           AND ($3::text[] IS NULL OR id = ANY($3::text[]))
         RETURNING 1
       ) SELECT count(*)::int AS n FROM u`,
      [owner, Math.round(leaseMs), ids === undefined ? null : [...ids]],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Moves a task to `to` when its current state allows it, applying `update` in the same
   * statement.
   *
   * @param id The task id.
   * @param to The new state.
   * @param update Logs and times to write with it.
   * @returns Whether the task moved (false: unknown task, or not allowed from its state).
   */
  async transition(id: string, to: TesState, update: TaskUpdate = {}): Promise<boolean> {
    const params = new Params();
    const idParam = params.add(id);
    const toParam = params.add(to);
    const fromParam = params.add(allowedSources(to));
    const sets = updateClauses(update, params);
    const rows = await this.#write(
      `UPDATE tasks SET state = ${toParam}, ${sets.join(", ")}
       WHERE id = ${idParam} AND state = ANY(${fromParam}::text[]) RETURNING 1 AS moved`,
      params.values,
    );
    return rows.length > 0;
  }

  /**
   * Applies `update` without a state change.
   *
   * @param id The task id.
   * @param update Logs and times to write.
   * @throws {TaskNotFoundError} When there is no such task.
   */
  async update(id: string, update: TaskUpdate): Promise<void> {
    const params = new Params();
    const idParam = params.add(id);
    const sets = updateClauses(update, params);
    const rows = await this.#write(
      `UPDATE tasks SET ${sets.join(", ")} WHERE id = ${idParam} RETURNING 1 AS updated`,
      params.values,
    );
    if (rows.length === 0) throw new TaskNotFoundError(id);
  }

  /**
   * Lists the tasks waiting to be canceled.
   *
   * @param owner When given, only tasks claimed by this owner or by nobody.
   * @returns Their ids, oldest first.
   */
  async cancelingTasks(owner?: string): Promise<string[]> {
    const rows = await this.#driver.query<{ id: string }>(
      `SELECT id FROM tasks WHERE state = 'CANCELING'${
        owner === undefined ? "" : " AND (claim_owner = $1 OR claim_owner IS NULL)"
      } ORDER BY seq`,
      owner === undefined ? [] : [owner],
    );
    return rows.map((row) => row.id);
  }

  /**
   * Lists live tasks (INITIALIZING, RUNNING, PAUSED, CANCELING) with their claims, by id.
   *
   * @param query Page size and the last id of the previous page.
   * @returns One page of tasks, ordered by id.
   */
  async liveTasks(query: LiveTasksQuery = {}): Promise<TaskLeaseInfo[]> {
    const { limit = 1000, afterId } = query;
    const params = new Params();
    const after = afterId === undefined ? "" : ` AND id > ${params.add(afterId)}`;
    const rows = await this.#driver.query<LeaseRow>(
      `SELECT ${LEASE_COLUMNS} FROM tasks WHERE state IN ${LIVE_STATES}${after}
       ORDER BY id LIMIT ${params.add(limit)}::int`,
      params.values,
    );
    return rows.map(toLeaseInfo);
  }

  /**
   * Lists live tasks whose lease expired more than `olderThanMs` ago (database clock).
   *
   * @param olderThanMs How long past its expiry a lease must be.
   * @param limit Most tasks returned.
   * @returns The tasks, longest expired first.
   */
  async staleLeases(olderThanMs: number, limit = 1000): Promise<TaskLeaseInfo[]> {
    const rows = await this.#driver.query<LeaseRow>(
      `SELECT ${LEASE_COLUMNS} FROM tasks
       WHERE state IN ${LIVE_STATES}
         AND lease_expires_at < now() - $1::int * interval '1 millisecond'
       ORDER BY lease_expires_at LIMIT $2::int`,
      [Math.round(olderThanMs), limit],
    );
    return rows.map(toLeaseInfo);
  }

  /**
   * Reads the claim bookkeeping of the given tasks.
   *
   * @param ids Task ids.
   * @returns One entry per existing task, in any order.
   */
  async leaseInfo(ids: readonly string[]): Promise<TaskLeaseInfo[]> {
    if (ids.length === 0) return [];
    const rows = await this.#driver.query<LeaseRow>(
      `SELECT ${LEASE_COLUMNS} FROM tasks WHERE id = ANY($1::text[])`,
      [[...ids]],
    );
    return rows.map(toLeaseInfo);
  }

  /**
   * Waits until a task is created (NOTIFY on {@linkcode WORK_CHANNEL}), `timeoutMs` passes or
   * `signal` aborts. A notification that arrived since the previous wait (while nobody was
   * waiting) ends the wait at once, so no wake-up is lost between a claim and a wait.
   *
   * @param timeoutMs Longest wait.
   * @param signal Ends the wait early.
   */
  async waitForWork(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    await this.waitForNotification(timeoutMs, signal);
  }

  /**
   * Like {@linkcode SqlTaskStore.waitForWork}, and tells what ended the wait.
   *
   * @param timeoutMs Longest wait.
   * @param signal Ends the wait early.
   * @returns `true` when woken by a notification, `false` on timeout, abort or close.
   */
  async waitForNotification(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    await this.#listen();
    return await this.#wakeUps.wait(timeoutMs, signal);
  }

  #listen(): Promise<() => Promise<void>> {
    this.#listening ??= this.#driver.listen(WORK_CHANNEL, () => this.#wakeUps.notify());
    // A failed LISTEN (database down) is retried by the next wait.
    this.#listening.catch(() => this.#listening = undefined);
    return this.#listening;
  }

  /** Checks that the database answers. */
  async ping(): Promise<void> {
    await this.#driver.query("SELECT 1 AS ok");
  }

  /** Stops listening, wakes every waiter and closes the driver (when owned). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeUps.close();
    const listening = this.#listening;
    this.#listening = undefined;
    if (listening !== undefined) {
      const unlisten = await listening.catch(() => undefined);
      await unlisten?.().catch(() => {});
    }
    if (this.#ownsDriver) await this.#driver.close();
  }
}
