/**
 * The contract between the services and the database: one `TaskStore` interface, implemented
 * once in SQL (`sql_task_store.ts`) over two drivers (PostgreSQL and embedded PGlite).
 *
 * @module
 */
import type { TesExecutorLog, TesOutputFileLog, TesState, TesTask, TesView } from "../tes/model.ts";

/** Filters and paging of a task listing. */
export interface ListTasksQuery {
  /** Only tasks whose name starts with this prefix. */
  namePrefix?: string;
  /** Only tasks in this state. */
  state?: TesState;
  /**
   * Only tasks carrying all these tags. An empty value means that the key must exist with any
   * value.
   */
  tags?: Record<string, string>;
  /** Page size, already validated by the caller (1..2047). */
  pageSize: number;
  /** Opaque token from a previous page's `nextPageToken`. */
  pageToken?: string;
  /** How much of each task to load. */
  view: TesView;
  /** Only tasks of this owner (when authentication is on). */
  owner?: string;
}

/** One page of a task listing. */
export interface ListTasksPage {
  /** The tasks of the page, newest first, loaded as the view asks. */
  tasks: TesTask[];
  /** Token of the next page; absent on the last page. */
  nextPageToken?: string;
}

/** Options of {@linkcode TaskStore.create}. */
export interface CreateTaskOptions {
  /** The authenticated user who owns the task. */
  owner?: string;
}

/** What a cancel request did. */
export interface CancelResult {
  /** The task's state after the request. */
  state: TesState;
  /** Whether the request changed the state (false when the task was already terminal). */
  changed: boolean;
}

/** A task claimed by an orchestrator. */
export interface ClaimedTask {
  /** The full task as stored. */
  task: TesTask & { id: string; state: TesState };
  /** The claim's owner. */
  claimOwner: string;
  /** When the claim expires unless renewed. */
  leaseExpiresAt: Date;
}

/** Options of {@linkcode TaskStore.claim}. */
export interface ClaimOptions {
  /**
   * Most live tasks (INITIALIZING, RUNNING, PAUSED, CANCELING: claimed and not finished) one
   * task owner may have. A QUEUED task whose owner has this many is skipped: it stays QUEUED,
   * keeps its place, and is claimed once one of the owner's tasks finishes; other owners'
   * tasks are claimed meanwhile. Tasks without an owner (authentication off) count as one
   * owner, `""`. Tasks whose lease expired are re-claimed regardless: they are live already.
   * Every orchestrator of a deployment must claim with the same limit (a claim without one
   * does not respect the limits of others). `0` or absent: no limit.
   *
   * @default undefined (no limit)
   */
  maxRunningPerOwner?: number;
}

/** What an orchestrator writes when a task changes. */
export interface TaskUpdate {
  /** Executor logs of the current attempt, in executor order. */
  executorLogs?: TesExecutorLog[];
  /** Files uploaded by the current attempt. */
  outputs?: TesOutputFileLog[];
  /** Lines appended to the attempt's system logs. */
  systemLogs?: string[];
  /** Metadata of the attempt (pod name, node, …). */
  metadata?: Record<string, string>;
  /** When the attempt started. */
  startTime?: Date;
  /** When the attempt ended. */
  endTime?: Date;
}

/** The claim bookkeeping of one task, as the monitor reads it (no request, no logs). */
export interface TaskLeaseInfo {
  /** The task id. */
  id: string;
  /** Its current state. */
  state: TesState;
  /** The orchestrator holding the claim; absent when never claimed. */
  claimOwner?: string;
  /** When the claim expires unless renewed; absent when never claimed. */
  leaseExpiresAt?: Date;
  /** When the task row last changed (a claim, a state change, an update; not a renewal). */
  updatedAt: Date;
}

/** Paging of {@linkcode TaskStore.liveTasks}. */
export interface LiveTasksQuery {
  /** Most tasks returned. @default 1000 */
  limit?: number;
  /** Only tasks whose id sorts after this one (the last id of the previous page). */
  afterId?: string;
}

/** Raised when a task does not exist (or is not visible to the caller). */
export class TaskNotFoundError extends Error {
  /** Stable error code. */
  readonly code = "TASK_NOT_FOUND";
  /**
   * Builds the error for the given task id.
   *
   * @param id The id that was looked up.
   * @param options Standard error options (`cause`).
   */
  constructor(id: string, options?: ErrorOptions) {
    super(`Task "${id}" not found`, options);
    this.name = "TaskNotFoundError";
  }
}

/** Raised when a page token cannot be decoded or belongs to another query. */
export class InvalidPageTokenError extends Error {
  /** Stable error code. */
  readonly code = "INVALID_PAGE_TOKEN";
  /**
   * Builds the error.
   *
   * @param options Standard error options (`cause`).
   */
  constructor(options?: ErrorOptions) {
    super("page_token: not a token returned by this server", options);
    this.name = "InvalidPageTokenError";
  }
}

/**
 * Where tasks live. Every state change goes through the TES state machine in SQL, so concurrent
 * writers can never move a task backwards.
 */
export interface TaskStore {
  /** Inserts a validated task as QUEUED and returns its id once it is durable. */
  create(task: TesTask, options?: CreateTaskOptions): Promise<string>;
  /**
   * Inserts validated tasks as QUEUED in one commit (all or none) and returns their ids in
   * order, once they are durable.
   */
  createMany(tasks: readonly TesTask[], options?: CreateTaskOptions): Promise<string[]>;
  /** Loads one task in the given view; throws {@linkcode TaskNotFoundError}. */
  get(id: string, view: TesView, owner?: string): Promise<TesTask>;
  /** Lists tasks, newest first, with keyset pagination. */
  list(query: ListTasksQuery): Promise<ListTasksPage>;
  /**
   * Asks to cancel a task: QUEUED → CANCELED, INITIALIZING/RUNNING/PAUSED → CANCELING;
   * terminal tasks are left unchanged. Throws {@linkcode TaskNotFoundError}.
   */
  cancel(id: string, owner?: string): Promise<CancelResult>;
  /**
   * Claims up to `limit` QUEUED tasks (and tasks whose lease expired) for `owner`, for
   * `leaseMs` milliseconds (`FOR UPDATE SKIP LOCKED`), oldest first, within the per-owner limit
   * of `options.maxRunningPerOwner` (safe with several orchestrators claiming at once).
   */
  claim(
    owner: string,
    limit: number,
    leaseMs: number,
    options?: ClaimOptions,
  ): Promise<ClaimedTask[]>;
  /**
   * Extends the leases held by `owner` (only those of `ids` when given, so a restarted
   * orchestrator never keeps alive a task it has not taken back); returns how many were
   * renewed.
   */
  renewLeases(owner: string, leaseMs: number, ids?: readonly string[]): Promise<number>;
  /**
   * Moves a task to `to` if the state machine allows it from its current state, and applies
   * `update` in the same statement. Returns whether the task moved.
   */
  transition(id: string, to: TesState, update?: TaskUpdate): Promise<boolean>;
  /** Applies `update` without a state change (progress of a running task). */
  update(id: string, update: TaskUpdate): Promise<void>;
  /** Ids of tasks in CANCELING state held by `owner` (or by nobody). */
  cancelingTasks(owner?: string): Promise<string[]>;
  /**
   * Tasks an orchestrator holds or should hold (INITIALIZING, RUNNING, PAUSED, CANCELING),
   * ordered by id, one page of at most `query.limit`; page on with `afterId`.
   */
  liveTasks(query?: LiveTasksQuery): Promise<TaskLeaseInfo[]>;
  /**
   * Live tasks whose lease expired more than `olderThanMs` ago by the database's clock (no
   * orchestrator adopted them since), longest expired first, at most `limit` (default 1000).
   */
  staleLeases(olderThanMs: number, limit?: number): Promise<TaskLeaseInfo[]>;
  /** The claim bookkeeping of the given tasks, in any state; unknown ids are left out. */
  leaseInfo(ids: readonly string[]): Promise<TaskLeaseInfo[]>;
  /** Resolves when a new task may be waiting (NOTIFY) or after `timeoutMs`. */
  waitForWork(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** Checks that the database answers. */
  ping(): Promise<void>;
  /** Closes connections and releases locks. */
  close(): Promise<void>;
}
