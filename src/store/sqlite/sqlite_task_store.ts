/**
 * The embedded task store over SQLite, through Deno's built-in `node:sqlite` (native, no
 * dependency): one file in the data folder, WAL journal, `synchronous = FULL` (a commit is on
 * disk before it is acknowledged). One process holds a data folder (its lock file); inside it
 * every statement is synchronous, so each operation is atomic with respect to the others.
 *
 * Writes that arrive together (in one turn of the event loop) are group-committed: one
 * transaction, one fsync, each write in its own savepoint so a failing one fails alone; each
 * caller is answered after the commit.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import type { TesState, TesTask, TesView } from "../../tes/model.ts";
import { allowedSources } from "../../tes/state.ts";
import { decodePageToken, encodePageToken, fingerprintFilters } from "../page_token.ts";
import {
  type CreateRow,
  createRow,
  splitExecutorLogs,
  type TaskRow,
  toTask,
} from "../_task_row.ts";
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
} from "../task_store.ts";
import { WakeUps } from "../_wake_ups.ts";
import { migrateSqlite } from "./sqlite_schema.ts";

const LIVE_STATES = "('INITIALIZING', 'RUNNING', 'PAUSED', 'CANCELING')";

/** The columns read for a view (BASIC never reads the big ones). */
function columns(view: TesView): string {
  const minimal = "t.seq, t.id, t.state";
  if (view === "MINIMAL") return minimal;
  const basic = `${minimal}, t.name, t.description, t.request, t.tags, t.creation_time,
    t.start_time, t.end_time, t.executor_logs, t.output_logs, t.metadata,
    t.system_logs IS NOT NULL AS has_system_logs`;
  if (view === "BASIC") return basic;
  return `${basic}, t.input_contents, t.executor_outputs, t.system_logs`;
}

type Raw = Record<string, unknown>;

function parsed<T>(value: unknown): T | null | undefined {
  if (value === undefined) return undefined;
  return value === null ? null : JSON.parse(value as string) as T;
}

function time(value: unknown): string | null | undefined {
  if (value === undefined) return undefined;
  return value === null ? null : new Date(Number(value)).toISOString();
}

/** A SQLite row (JSON as text, times as epoch ms) as the shared {@linkcode TaskRow}. */
function taskRow(raw: Raw): TaskRow {
  const row: TaskRow = { seq: String(raw.seq), id: raw.id as string, state: raw.state as TesState };
  if (!("request" in raw)) return row;
  Object.assign(row, {
    name: raw.name,
    description: raw.description,
    request: parsed(raw.request),
    tags: parsed(raw.tags),
    creation_time: time(raw.creation_time),
    start_time: time(raw.start_time),
    end_time: time(raw.end_time),
    executor_logs: parsed(raw.executor_logs),
    output_logs: parsed(raw.output_logs),
    metadata: parsed(raw.metadata),
    has_system_logs: Number(raw.has_system_logs) === 1,
  });
  if ("input_contents" in raw) {
    Object.assign(row, {
      input_contents: parsed(raw.input_contents),
      executor_outputs: parsed(raw.executor_outputs),
      system_logs: parsed(raw.system_logs),
    });
  }
  return row;
}

const LEASE_COLUMNS = "id, state, claim_owner, lease_expires_at, updated_at";

function leaseInfo(raw: Raw): TaskLeaseInfo {
  return {
    id: raw.id as string,
    state: raw.state as TesState,
    ...(raw.claim_owner != null ? { claimOwner: raw.claim_owner as string } : {}),
    ...(raw.lease_expires_at != null
      ? { leaseExpiresAt: new Date(Number(raw.lease_expires_at)) }
      : {}),
    updatedAt: new Date(Number(raw.updated_at)),
  };
}

function holdsNul(value: unknown): boolean {
  if (typeof value === "string") return value.includes("\u0000");
  if (Array.isArray(value)) return value.some(holdsNul);
  if (value !== null && typeof value === "object") {
    return Object.entries(value).some(([key, entry]) => key.includes("\u0000") || holdsNul(entry));
  }
  return false;
}

/**
 * Text for a column: JSON, or the string itself; a NUL character anywhere is refused, as
 * PostgreSQL refuses it, so that every store keeps the same data.
 */
function text(value: unknown, asJson = true): string | null {
  if (value === undefined || value === null) return null;
  const out = asJson ? JSON.stringify(value) : String(value);
  // the cheap test first: JSON escapes a NUL as \u0000
  if (out.includes(asJson ? "\\u0000" : "\u0000") && holdsNul(value)) {
    throw new Error("a string holds a NUL character, which the store cannot keep");
  }
  return out;
}

/** A write waiting for the next group commit. */
interface PendingWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** Options of {@linkcode openSqliteTaskStore}. */
export interface SqliteTaskStoreOptions {
  /**
   * The database file; created when missing. `":memory:"` (the default) keeps the tasks in
   * memory, lost on close.
   *
   * @default {":memory:"}
   */
  path?: string;
  /** Called once the store is closed (releases the data folder's lock). */
  onClose?: () => void;
}

/**
 * Opens (creating and migrating when needed) a SQLite task store.
 *
 * @param options The database file.
 * @returns The store; close it when done.
 * @throws {Error} When the file cannot be opened or is not a Planetary database.
 * @example
 * ```ts
 * import { openSqliteTaskStore } from "./sqlite_task_store.ts";
 * const store = openSqliteTaskStore();
 * const id = await store.create({ executors: [{ image: "alpine", command: ["true"] }] });
 * await store.get(id, "MINIMAL"); // { id, state: "QUEUED" }
 * await store.close();
 * ```
 */
export function openSqliteTaskStore(options: SqliteTaskStoreOptions = {}): SqliteTaskStore {
  const { path = ":memory:" } = options;
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = OFF");
    migrateSqlite(db);
  } catch (error) {
    db.close();
    throw error;
  }
  return new SqliteTaskStore(db, options.onClose);
}

/** The task store over one SQLite database (see {@linkcode openSqliteTaskStore}). */
export class SqliteTaskStore implements TaskStore {
  /** Which engine answers. */
  readonly kind = "sqlite";
  #db: DatabaseSync;
  #statements = new Map<string, StatementSync>();
  #queue: PendingWrite[] = [];
  #flushScheduled = false;
  #wakeUps = new WakeUps();
  #closed = false;
  #onClose: (() => void) | undefined;

  /**
   * Wraps an open, migrated database.
   *
   * @param db The database.
   * @param onClose Called once after the database is closed.
   */
  constructor(db: DatabaseSync, onClose?: () => void) {
    this.#db = db;
    this.#onClose = onClose;
  }

  #prepare(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** Runs a synchronous read (or close) as a promise: what it throws rejects. */
  #read<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #all(sql: string, params: readonly unknown[] = []): Raw[] {
    return this.#prepare(sql).all(...(params as SQLInputValue[])) as Raw[];
  }

  #run(sql: string, params: readonly unknown[] = []): number {
    return Number(this.#prepare(sql).run(...(params as SQLInputValue[])).changes);
  }

  /** Queues a write for the next group commit; resolves with its result after the commit. */
  #write<T>(run: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error("the task store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // After the requests already read from the sockets have queued theirs: one commit.
        setTimeout(() => this.#flush(), 0);
      }
    });
  }

  /** Runs every queued write in one transaction, each in a savepoint; one commit. */
  #flush(): void {
    this.#flushScheduled = false;
    const writes = this.#queue.splice(0);
    if (writes.length === 0) return;
    const outcomes: { ok: boolean; value: unknown }[] = [];
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      for (const write of writes) {
        this.#db.exec("SAVEPOINT w");
        try {
          outcomes.push({ ok: true, value: write.run() });
          this.#db.exec("RELEASE w");
        } catch (error) {
          this.#db.exec("ROLLBACK TO w");
          this.#db.exec("RELEASE w");
          outcomes.push({ ok: false, value: error });
        }
      }
      this.#db.exec("COMMIT");
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      for (const write of writes) write.reject(error);
      return;
    }
    writes.forEach((write, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.value);
    });
  }

  #insert(rows: readonly CreateRow[]): string[] {
    const now = Date.now();
    const insertTask = `INSERT INTO tasks (id, state, name, description, request, input_contents,
      tags, owner, creation_time, updated_at) VALUES (?, 'QUEUED', ?, ?, ?, ?, ?, ?, ?, ?)
      RETURNING seq`;
    const insertTag = "INSERT INTO task_tags (task_seq, key, value) VALUES (?, ?, ?)";
    for (const row of rows) {
      const [inserted] = this.#all(insertTask, [
        row.id,
        text(row.name, false),
        text(row.description, false),
        text(row.request),
        text(row.input_contents),
        text(row.tags),
        text(row.owner, false),
        now,
        now,
      ]);
      for (const [key, value] of Object.entries(row.tags)) {
        this.#run(insertTag, [inserted!.seq, key, value]);
      }
    }
    return rows.map((row) => row.id);
  }

  /**
   * Inserts a task as QUEUED; group-committed with the writes that arrive with it.
   *
   * @param task A validated task; read-only fields are ignored.
   * @param options The owner.
   * @returns The new id, once committed.
   */
  async create(task: TesTask, options: CreateTaskOptions = {}): Promise<string> {
    const row = createRow(task, options.owner, 0);
    const [id] = await this.#write(() => this.#insert([row]));
    this.#wakeUps.notify();
    return id!;
  }

  /**
   * Inserts several tasks as QUEUED in one commit: all or none.
   *
   * @param tasks Validated tasks.
   * @param options The owner of every task.
   * @returns The new ids, in order.
   */
  async createMany(tasks: readonly TesTask[], options: CreateTaskOptions = {}): Promise<string[]> {
    if (tasks.length === 0) return [];
    const rows = tasks.map((task, i) => createRow(task, options.owner, i));
    const ids = await this.#write(() => this.#insert(rows));
    this.#wakeUps.notify();
    return ids;
  }

  /**
   * Loads one task.
   *
   * @param id The task id.
   * @param view How much to load.
   * @param owner When given, only a task of this owner is found.
   * @returns The task.
   * @throws {TaskNotFoundError} When there is no such task (for this owner).
   */
  get(id: string, view: TesView, owner?: string): Promise<TesTask> {
    return this.#read(() => {
      const rows = owner === undefined
        ? this.#all(`SELECT ${columns(view)} FROM tasks t WHERE t.id = ?`, [id])
        : this.#all(`SELECT ${columns(view)} FROM tasks t WHERE t.id = ? AND t.owner = ?`, [
          id,
          owner,
        ]);
      if (rows[0] === undefined) throw new TaskNotFoundError(id);
      return toTask(taskRow(rows[0]), view);
    });
  }

  /**
   * Lists tasks newest first, with keyset paging (a tag filter drives the scan from the tag
   * index, as on PostgreSQL).
   *
   * @param query Filters, page and view.
   * @returns One page.
   * @throws {InvalidPageTokenError} When the page token is garbage or from other filters.
   */
  async list(query: ListTasksQuery): Promise<ListTasksPage> {
    const { namePrefix, state, tags = {}, pageSize, pageToken, view, owner } = query;
    const fingerprint = await fingerprintFilters({
      ...(namePrefix !== undefined ? { namePrefix } : {}),
      ...(state !== undefined ? { state } : {}),
      tags,
      ...(owner !== undefined ? { owner } : {}),
    });
    const after = pageToken === undefined ? undefined : decodePageToken(pageToken, fingerprint);
    const params: unknown[] = [];
    const tagFilters = Object.entries(tags).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
    const driving = tagFilters.find(([, value]) => value !== "") ?? tagFilters[0];
    const where: string[] = [];
    let from = "tasks t";
    let seq = "t.seq";
    if (driving !== undefined) {
      from = "task_tags g JOIN tasks t ON t.seq = g.task_seq";
      seq = "g.task_seq";
      where.push("g.key = ?");
      params.push(driving[0]);
      if (driving[1] !== "") {
        where.push("g.value = ?");
        params.push(driving[1]);
      }
    }
    if (after !== undefined) {
      where.push(`${seq} < ?`);
      params.push(Number(after));
    }
    if (state !== undefined) {
      where.push("t.state = ?");
      params.push(state);
    }
    if (owner !== undefined) {
      where.push("t.owner = ?");
      params.push(owner);
    }
    if (namePrefix !== undefined && namePrefix !== "") {
      // instr(): exact and case-sensitive, unlike SQLite's LIKE
      where.push("instr(t.name, ?) = 1");
      params.push(namePrefix);
    }
    for (const tag of tagFilters) {
      if (tag === driving) continue;
      where.push(
        `EXISTS (SELECT 1 FROM task_tags x WHERE x.task_seq = t.seq AND x.key = ?${
          tag[1] === "" ? "" : " AND x.value = ?"
        })`,
      );
      params.push(tag[0]);
      if (tag[1] !== "") params.push(tag[1]);
    }
    params.push(pageSize + 1);
    const rows = this.#all(
      `SELECT ${columns(view)} FROM ${from}${
        where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""
      } ORDER BY ${seq} DESC LIMIT ?`,
      params,
    );
    const page: ListTasksPage = { tasks: [] };
    if (rows.length > pageSize) {
      rows.length = pageSize;
      page.nextPageToken = encodePageToken(String(rows[rows.length - 1]!.seq), fingerprint);
    }
    page.tasks = rows.map((row) => toTask(taskRow(row), view));
    return page;
  }

  /**
   * Asks to cancel a task (QUEUED → CANCELED; INITIALIZING/RUNNING/PAUSED → CANCELING).
   *
   * @param id The task id.
   * @param owner When given, only a task of this owner is found.
   * @returns The state after the request and whether it changed.
   * @throws {TaskNotFoundError} When there is no such task (for this owner).
   */
  cancel(id: string, owner?: string): Promise<CancelResult> {
    return this.#write(() => {
      const params = owner === undefined ? [id] : [id, owner];
      const byOwner = owner === undefined ? "" : " AND owner = ?";
      const [row] = this.#all(
        `SELECT state, system_logs FROM tasks WHERE id = ?${byOwner}`,
        params,
      );
      if (row === undefined) throw new TaskNotFoundError(id);
      const state = row.state as TesState;
      if (!["QUEUED", "INITIALIZING", "RUNNING", "PAUSED"].includes(state)) {
        return { state, changed: false };
      }
      const next: TesState = state === "QUEUED" ? "CANCELED" : "CANCELING";
      const logs = [
        ...(parsed<string[]>(row.system_logs) ?? []),
        `cancel requested while ${state}`,
      ];
      const now = Date.now();
      this.#run(
        `UPDATE tasks SET state = ?, system_logs = ?, updated_at = ?,
           end_time = CASE WHEN ? THEN ? ELSE end_time END WHERE id = ?`,
        [next, JSON.stringify(logs), now, next === "CANCELED" ? 1 : 0, now, id],
      );
      return { state: next, changed: true };
    });
  }

  /** The seqs a claim takes: QUEUED tasks within each owner's room, and expired leases. */
  #chooseClaims(limit: number, now: number, maxRunningPerOwner: number): number[] {
    const expired = this.#all(
      `SELECT seq FROM tasks WHERE state IN ${LIVE_STATES} AND lease_expires_at < ?
       ORDER BY seq LIMIT ?`,
      [now, limit],
    ).map((row) => Number(row.seq));
    let queued: number[];
    if (maxRunningPerOwner <= 0) {
      queued = this.#all("SELECT seq FROM tasks WHERE state = 'QUEUED' ORDER BY seq LIMIT ?", [
        limit,
      ]).map((row) => Number(row.seq));
    } else {
      const live = new Map(
        this.#all(
          `SELECT COALESCE(owner, '') AS o, count(*) AS n FROM tasks
           WHERE state IN ${LIVE_STATES} GROUP BY COALESCE(owner, '')`,
        ).map((row) => [row.o as string, Number(row.n)]),
      );
      queued = [];
      // the owners of queued tasks, one index probe each (a skip scan)
      let previous: string | undefined;
      for (;;) {
        const [next] = previous === undefined
          ? this.#all(
            `SELECT COALESCE(owner, '') AS o FROM tasks WHERE state = 'QUEUED'
             ORDER BY COALESCE(owner, '') LIMIT 1`,
          )
          : this.#all(
            `SELECT COALESCE(owner, '') AS o FROM tasks WHERE state = 'QUEUED'
               AND COALESCE(owner, '') > ? ORDER BY COALESCE(owner, '') LIMIT 1`,
            [previous],
          );
        if (next === undefined) break;
        previous = next.o as string;
        const room = Math.min(limit, maxRunningPerOwner - (live.get(previous) ?? 0));
        if (room <= 0) continue;
        queued.push(
          ...this.#all(
            `SELECT seq FROM tasks WHERE state = 'QUEUED' AND COALESCE(owner, '') = ?
             ORDER BY seq LIMIT ?`,
            [previous, room],
          ).map((row) => Number(row.seq)),
        );
      }
    }
    return [...new Set([...queued, ...expired])].sort((a, b) => a - b).slice(0, limit);
  }

  /**
   * Claims up to `limit` tasks, oldest first: QUEUED ones (moved to INITIALIZING), within
   * `options.maxRunningPerOwner` live tasks per task owner, and live ones whose lease expired.
   * One process holds the database, and a claim runs as one synchronous step, so no task is
   * handed out twice and no owner's limit is overshot.
   *
   * @param owner The claiming orchestrator.
   * @param limit Most tasks to claim.
   * @param leaseMs How long the claim lasts unless renewed.
   * @param options The per-owner limit.
   * @returns The claimed tasks (FULL view), oldest first.
   */
  claim(
    owner: string,
    limit: number,
    leaseMs: number,
    options: ClaimOptions = {},
  ): Promise<ClaimedTask[]> {
    const { maxRunningPerOwner = 0 } = options;
    return this.#write(() => {
      const now = Date.now();
      const lease = now + Math.round(leaseMs);
      const claimed: ClaimedTask[] = [];
      for (const seq of this.#chooseClaims(limit, now, maxRunningPerOwner)) {
        this.#run(
          `UPDATE tasks SET
             state = CASE WHEN state = 'QUEUED' THEN 'INITIALIZING' ELSE state END,
             claim_owner = ?, lease_expires_at = ?, updated_at = ?
           WHERE seq = ?`,
          [owner, lease, now, seq],
        );
        const [row] = this.#all(`SELECT ${columns("FULL")} FROM tasks t WHERE t.seq = ?`, [seq]);
        claimed.push({
          task: toTask(taskRow(row!), "FULL") as ClaimedTask["task"],
          claimOwner: owner,
          leaseExpiresAt: new Date(lease),
        });
      }
      return claimed;
    });
  }

  /**
   * Extends the leases of the live tasks held by `owner`: all of them, or only `ids`.
   *
   * @param owner The orchestrator.
   * @param leaseMs New lease length from now.
   * @param ids Only these tasks.
   * @returns How many leases were renewed.
   */
  renewLeases(owner: string, leaseMs: number, ids?: readonly string[]): Promise<number> {
    return this.#write(() => {
      const lease = Date.now() + Math.round(leaseMs);
      const sql = `UPDATE tasks SET lease_expires_at = ?
        WHERE claim_owner = ? AND state IN ${LIVE_STATES}`;
      if (ids === undefined) return this.#run(sql, [lease, owner]);
      let renewed = 0;
      for (const id of new Set(ids)) renewed += this.#run(`${sql} AND id = ?`, [lease, owner, id]);
      return renewed;
    });
  }

  /** Applies `update` to the row of `id` (already known to exist); within a write. */
  #apply(id: string, state: TesState | undefined, update: TaskUpdate): void {
    const { executorLogs, outputs, systemLogs, metadata, startTime, endTime } = update;
    const { stored, streams } = splitExecutorLogs(executorLogs);
    const sets = ["updated_at = ?"];
    const params: unknown[] = [Date.now()];
    const set = (column: string, value: unknown): void => {
      sets.push(`${column} = ?`);
      params.push(value);
    };
    if (state !== undefined) set("state", state);
    if (stored !== undefined) set("executor_logs", text(stored));
    if (streams !== undefined) set("executor_outputs", text(streams));
    if (outputs !== undefined) set("output_logs", text(outputs));
    if (systemLogs !== undefined || metadata !== undefined) {
      const [row] = this.#all("SELECT system_logs, metadata FROM tasks WHERE id = ?", [id]);
      if (systemLogs !== undefined) {
        set(
          "system_logs",
          text([...(parsed<string[]>(row!.system_logs) ?? []), ...systemLogs]),
        );
      }
      if (metadata !== undefined) {
        set(
          "metadata",
          text({ ...(parsed<Record<string, string>>(row!.metadata) ?? {}), ...metadata }),
        );
      }
    }
    if (startTime !== undefined) set("start_time", startTime.getTime());
    if (endTime !== undefined) set("end_time", endTime.getTime());
    params.push(id);
    this.#run(`UPDATE tasks SET ${sets.join(", ")} WHERE id = ?`, params);
  }

  /**
   * Moves a task to `to` when its current state allows it, applying `update` with it.
   *
   * @param id The task id.
   * @param to The new state.
   * @param update Logs and times to write with it.
   * @returns Whether the task moved.
   */
  transition(id: string, to: TesState, update: TaskUpdate = {}): Promise<boolean> {
    return this.#write(() => {
      const [row] = this.#all("SELECT state FROM tasks WHERE id = ?", [id]);
      if (row === undefined || !allowedSources(to).includes(row.state as TesState)) return false;
      this.#apply(id, to, update);
      return true;
    });
  }

  /**
   * Applies `update` without a state change.
   *
   * @param id The task id.
   * @param update Logs and times to write.
   * @throws {TaskNotFoundError} When there is no such task.
   */
  update(id: string, update: TaskUpdate): Promise<void> {
    return this.#write(() => {
      if (this.#all("SELECT 1 AS x FROM tasks WHERE id = ?", [id]).length === 0) {
        throw new TaskNotFoundError(id);
      }
      this.#apply(id, undefined, update);
    });
  }

  /**
   * Lists the tasks waiting to be canceled.
   *
   * @param owner When given, only tasks claimed by this owner or by nobody.
   * @returns Their ids, oldest first.
   */
  cancelingTasks(owner?: string): Promise<string[]> {
    return this.#read(() => {
      const rows = owner === undefined
        ? this.#all("SELECT id FROM tasks WHERE state = 'CANCELING' ORDER BY seq")
        : this.#all(
          `SELECT id FROM tasks WHERE state = 'CANCELING'
           AND (claim_owner = ? OR claim_owner IS NULL) ORDER BY seq`,
          [owner],
        );
      return rows.map((row) => row.id as string);
    });
  }

  /**
   * Lists live tasks with their claims, by id.
   *
   * @param query Page size and the last id of the previous page.
   * @returns One page, ordered by id.
   */
  liveTasks(query: LiveTasksQuery = {}): Promise<TaskLeaseInfo[]> {
    return this.#read(() => {
      const { limit = 1000, afterId } = query;
      const rows = afterId === undefined
        ? this.#all(
          `SELECT ${LEASE_COLUMNS} FROM tasks WHERE state IN ${LIVE_STATES} ORDER BY id LIMIT ?`,
          [limit],
        )
        : this.#all(
          `SELECT ${LEASE_COLUMNS} FROM tasks WHERE state IN ${LIVE_STATES} AND id > ?
           ORDER BY id LIMIT ?`,
          [afterId, limit],
        );
      return rows.map(leaseInfo);
    });
  }

  /**
   * Lists live tasks whose lease expired more than `olderThanMs` ago.
   *
   * @param olderThanMs How long past its expiry a lease must be.
   * @param limit Most tasks returned.
   * @returns The tasks, longest expired first.
   */
  staleLeases(olderThanMs: number, limit = 1000): Promise<TaskLeaseInfo[]> {
    return this.#read(() => {
      const rows = this.#all(
        `SELECT ${LEASE_COLUMNS} FROM tasks WHERE state IN ${LIVE_STATES}
         AND lease_expires_at < ? ORDER BY lease_expires_at LIMIT ?`,
        [Date.now() - Math.round(olderThanMs), limit],
      );
      return rows.map(leaseInfo);
    });
  }

  /**
   * Reads the claim bookkeeping of the given tasks.
   *
   * @param ids Task ids.
   * @returns One entry per existing task.
   */
  leaseInfo(ids: readonly string[]): Promise<TaskLeaseInfo[]> {
    return this.#read(() => {
      if (ids.length === 0) return [];
      const rows = this.#all(
        `SELECT ${LEASE_COLUMNS} FROM tasks WHERE id IN (SELECT value FROM json_each(?))`,
        [JSON.stringify([...ids])],
      );
      return rows.map(leaseInfo);
    });
  }

  /**
   * Waits until a task is created, `timeoutMs` passes or `signal` aborts; a creation since the
   * previous wait ends the wait at once.
   *
   * @param timeoutMs Longest wait.
   * @param signal Ends the wait early.
   */
  async waitForWork(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    await this.waitForNotification(timeoutMs, signal);
  }

  /**
   * Like {@linkcode SqliteTaskStore.waitForWork}, and tells what ended the wait.
   *
   * @param timeoutMs Longest wait.
   * @param signal Ends the wait early.
   * @returns `true` when woken by a creation, `false` on timeout, abort or close.
   */
  waitForNotification(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return this.#wakeUps.wait(timeoutMs, signal);
  }

  /** Checks that the database answers. */
  ping(): Promise<void> {
    return this.#read(() => {
      this.#all("SELECT 1 AS ok");
    });
  }

  /** Commits queued writes, wakes every waiter and closes the database. */
  close(): Promise<void> {
    return this.#read(() => {
      if (this.#closed) return;
      this.#flush();
      this.#closed = true;
      this.#wakeUps.close();
      this.#statements.clear();
      try {
        this.#db.close();
      } finally {
        this.#onClose?.();
      }
    });
  }
}
