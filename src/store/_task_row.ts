/**
 * The stored shape of a task, shared by every {@linkcode TaskStore} implementation: the
 * request as stored (input content apart), a row as read back, and how a row becomes a TES task
 * in each view.
 *
 * @module
 */
import type {
  TesExecutorLog,
  TesInput,
  TesOutputFileLog,
  TesState,
  TesTask,
  TesTaskLog,
  TesView,
} from "../tes/model.ts";
import { newTaskId } from "./task_id.ts";

/** The request part of a task, as stored in `tasks.request` (input content apart). */
export interface StoredRequest {
  inputs?: Omit<TesInput, "content">[];
  outputs?: TesTask["outputs"];
  resources?: TesTask["resources"];
  executors: TesTask["executors"];
  volumes?: string[];
}

/** An executor log without its output, as stored in `tasks.executor_logs`. */
export type StoredExecutorLog = Omit<TesExecutorLog, "stdout" | "stderr">;
/** Executor output, as stored in `tasks.executor_outputs`. */
export type StoredExecutorOutput = Pick<TesExecutorLog, "stdout" | "stderr">;

/** A task as read back from a store (the columns of its view; times as RFC 3339). */
export interface TaskRow {
  seq: string;
  id: string;
  state: TesState;
  name?: string | null;
  description?: string | null;
  request?: StoredRequest;
  tags?: Record<string, string> | null;
  creation_time?: string;
  start_time?: string | null;
  end_time?: string | null;
  executor_logs?: StoredExecutorLog[] | null;
  output_logs?: TesOutputFileLog[] | null;
  metadata?: Record<string, string> | null;
  has_system_logs?: boolean;
  input_contents?: (string | null)[] | null;
  executor_outputs?: StoredExecutorOutput[] | null;
  system_logs?: string[] | null;
}

/** Builds the TES task of a row, in the view it was read for. */
export function toTask(row: TaskRow, view: TesView): TesTask {
  if (view === "MINIMAL") return { id: row.id, state: row.state } as TesTask;
  const full = view === "FULL";
  const request = row.request ?? { executors: [] };
  // Built field by field in the specification's order (id, state, name, …, creation_time).
  const task = { id: row.id, state: row.state } as TesTask;
  if (row.name != null) task.name = row.name;
  if (row.description != null) task.description = row.description;
  if (request.inputs !== undefined) {
    task.inputs = request.inputs.map((input, i) => {
      const content = full ? row.input_contents?.[i] : undefined;
      return content == null ? { ...input } : { ...input, content };
    });
  }
  if (request.outputs !== undefined) task.outputs = request.outputs;
  if (request.resources !== undefined) task.resources = request.resources;
  task.executors = request.executors;
  if (request.volumes !== undefined) task.volumes = request.volumes;
  if (row.tags != null && Object.keys(row.tags).length > 0) task.tags = row.tags;
  const started = row.start_time != null || row.end_time != null ||
    row.executor_logs != null || row.output_logs != null || row.metadata != null ||
    row.has_system_logs === true;
  if (started) {
    const log: TesTaskLog = {
      logs: (row.executor_logs ?? []).map((entry, i) => {
        const output = full ? row.executor_outputs?.[i] : undefined;
        const executorLog: TesExecutorLog = { ...entry };
        if (output?.stdout !== undefined) executorLog.stdout = output.stdout;
        if (output?.stderr !== undefined) executorLog.stderr = output.stderr;
        return executorLog;
      }),
      outputs: row.output_logs ?? [],
    };
    if (row.metadata != null) log.metadata = row.metadata;
    if (row.start_time != null) log.start_time = row.start_time;
    if (row.end_time != null) log.end_time = row.end_time;
    if (full && row.system_logs != null) log.system_logs = row.system_logs;
    task.logs = [log];
  }
  if (row.creation_time !== undefined) task.creation_time = row.creation_time;
  return task;
}

/** One new task, as inserted (`ord`: its place in a multi-row insert). */
export interface CreateRow {
  ord: number;
  id: string;
  name: string | null;
  description: string | null;
  request: StoredRequest;
  input_contents: (string | null)[] | null;
  tags: Record<string, string>;
  owner: string | null;
}

/** The row of a new task, with a fresh id. */
export function createRow(task: TesTask, owner: string | undefined, ord: number): CreateRow {
  const request: StoredRequest = { executors: task.executors };
  if (task.inputs !== undefined) {
    request.inputs = task.inputs.map(({ content: _content, ...rest }) => rest);
  }
  if (task.outputs !== undefined) request.outputs = task.outputs;
  if (task.resources !== undefined) request.resources = task.resources;
  if (task.volumes !== undefined) request.volumes = task.volumes;
  const contents = task.inputs?.some((input) => input.content !== undefined)
    ? task.inputs.map((input) => input.content ?? null)
    : null;
  return {
    ord,
    id: newTaskId(),
    name: task.name ?? null,
    description: task.description ?? null,
    request,
    input_contents: contents,
    tags: task.tags ?? {},
    owner: owner ?? null,
  };
}

/**
 * The executor logs of an update split as stored: without output, and the output apart.
 */
export function splitExecutorLogs(
  executorLogs: readonly TesExecutorLog[] | undefined,
): { stored?: StoredExecutorLog[]; streams?: StoredExecutorOutput[] } {
  if (executorLogs === undefined) return {};
  return {
    stored: executorLogs.map(({ stdout: _o, stderr: _e, ...rest }) => rest),
    streams: executorLogs.map(({ stdout, stderr }) => {
      const out: StoredExecutorOutput = {};
      if (stdout !== undefined) out.stdout = stdout;
      if (stderr !== undefined) out.stderr = stderr;
      return out;
    }),
  };
}
