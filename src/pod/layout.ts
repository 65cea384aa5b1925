/**
 * The layout of a task pod: the names, paths, labels and report format shared by the pod
 * builder, the transporter that runs inside the pod, and every backend that runs the pod.
 * This module is the contract between them; change it in one place.
 *
 * A task pod has:
 * - init container `inputs`: the transporter in `inputs` mode downloads every input;
 * - init containers `executor-0` … `executor-N`: one per TES executor, in order, each running
 *   the user's argv through the POSIX `sh` wrapper, which records the exit code, times and
 *   output in the state directory and exits 0 (so that later containers still run);
 * - main container `outputs`: the transporter in `outputs` mode uploads every output (also
 *   after an executor failure), then prints one report line to its stdout.
 *
 * @module
 */

/** Label carrying the task id on every object of a task. */
export const LABEL_TASK_ID = "planetary.io/task-id";
/** Label marking objects managed by Planetary (value: {@linkcode MANAGED_BY_VALUE}). */
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
/** Value of {@linkcode LABEL_MANAGED_BY}. */
export const MANAGED_BY_VALUE = "planetary";

/** Name of the init container that downloads inputs. */
export const INPUTS_CONTAINER = "inputs";
/** Name of the main container that uploads outputs and reports. */
export const OUTPUTS_CONTAINER = "outputs";
/**
 * Name of the init container of executor `index`.
 *
 * @param index Zero-based executor index.
 * @returns `executor-<index>`.
 */
export function executorContainerName(index: number): string {
  return `executor-${index}`;
}

/** Directory, in every container, of the per-task spec (mounted from the task's ConfigMap). */
export const SPEC_DIR = "/planetary/spec";
/** File name of the transporter spec inside {@linkcode SPEC_DIR} (and ConfigMap key). */
export const SPEC_FILE = "transfer.json";
/** Directory, in every container, shared by the wrapper and the transporter (an emptyDir). */
export const STATE_DIR = "/planetary/state";

/**
 * Files the executor wrapper writes in {@linkcode STATE_DIR} for executor `index`:
 * - `exec-<i>.start`: created when the executor starts (its mtime is the start time);
 * - `exec-<i>.exit`: the exit code in decimal, written when it ends (mtime = end time);
 * - `exec-<i>.stdout`/`.stderr`: its output, when the executor has no stdout/stderr path;
 * - `stop`: created when an executor failed without `ignore_error`; later executors skip.
 *
 * @param index Zero-based executor index.
 * @param kind Which file.
 * @returns The absolute path of that file.
 */
export function stateFile(
  index: number,
  kind: "start" | "exit" | "stdout" | "stderr",
): string {
  return `${STATE_DIR}/exec-${index}.${kind}`;
}
/** File in {@linkcode STATE_DIR} whose presence makes later executors skip. */
export const STOP_FILE = `${STATE_DIR}/stop`;

/** Prefix of the single report line the `outputs` container prints to stdout. */
export const REPORT_PREFIX = "PLANETARY_REPORT ";

/** One input as the transporter receives it. */
export interface TransferInput {
  /** Source URL (absent when `content` is set). */
  url?: string;
  /** Absolute destination path in the pod. */
  path: string;
  /** FILE or DIRECTORY. */
  type: "FILE" | "DIRECTORY";
  /** Inline content. */
  content?: string;
}

/** One output as the transporter receives it. */
export interface TransferOutput {
  /** Destination URL (a prefix for DIRECTORY and wildcard outputs). */
  url: string;
  /** Absolute source path in the pod; may hold POSIX wildcards. */
  path: string;
  /** Removed from each wildcard match to build its URL. */
  path_prefix?: string;
  /** FILE or DIRECTORY. */
  type: "FILE" | "DIRECTORY";
}

/** What the transporter needs to know, written by the pod builder into the task's ConfigMap. */
export interface TransferSpec {
  /** Version of this format. */
  version: 1;
  /** The task id, for log lines. */
  taskId: string;
  /** Inputs to download. */
  inputs: TransferInput[];
  /** Outputs to upload. */
  outputs: TransferOutput[];
  /** Per executor: where its stdout/stderr went (user path, or the state file). */
  executors: { stdout: string; stderr: string }[];
  /** How many bytes of each stdout/stderr tail to report. */
  tailBytes: number;
}

/** What one executor did, as the `outputs` transporter found it in the state directory. */
export interface ExecutorReport {
  /** Exit code; absent when the executor never ran (skipped after a failure). */
  exit_code?: number;
  /** Start time, RFC 3339. */
  start_time?: string;
  /** End time, RFC 3339. */
  end_time?: string;
  /** Tail of stdout. */
  stdout: string;
  /** Tail of stderr. */
  stderr: string;
}

/** The report line of the `outputs` container (after {@linkcode REPORT_PREFIX}). */
export interface TransferReport {
  /** Version of this format. */
  version: 1;
  /** One entry per executor of the task, in order. */
  executors: ExecutorReport[];
  /** Every uploaded file. */
  outputs: { url: string; path: string; size_bytes: string }[];
  /** Why uploading failed, when it did (no secrets). */
  error?: string;
  /**
   * Outputs that were absent after the executors finished (a path that does not exist, a
   * wildcard that matches nothing), one line each, e.g. `output #2 (FILE /work/opt.txt): not
   * found after the executors finished; nothing uploaded`. They do not fail the task; they go
   * to its `system_logs`. Absent when there are none (and in reports of older transporters).
   */
  warnings?: string[];
}
