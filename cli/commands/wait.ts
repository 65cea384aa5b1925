/**
 * `planetary wait ID...`: waits until tasks finish; exits 0 when every one is COMPLETE.
 *
 * @module
 */
import { type Command, UsageError } from "../command.ts";
import {
  clientFor,
  parseInteger,
  parsePositive,
  parseVerbArgs,
  printJson,
  progressEnabled,
  serverUsage,
} from "../_output.ts";
import { type TesClient, TesConnectionError } from "../../src/client/mod.ts";
import type { TesState } from "../../src/tes/model.ts";

const USAGE = `Usage: planetary wait ID... [options]

Waits until every task is finished (COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED or
PREEMPTED) and prints each final state. Exits 0 when every task is COMPLETE, 1 otherwise.

Options:
      --interval-ms N   milliseconds between polls (default 1000)
      --timeout S       give up after S seconds (exit 1)
      --json            print [{"id", "state"}, …] as one JSON document
${serverUsage(24)}
  -h, --help            show this help`;

/** Options of {@linkcode waitForTasks}. */
export interface WaitForTasksOptions {
  /** Milliseconds between polls. @default {1000} */
  intervalMs?: number;
  /** Seconds before giving up. @default {undefined} (no limit) */
  timeoutS?: number;
  /** Print one JSON document instead of lines. @default {false} */
  json?: boolean;
}

/** The outcome of waiting for one task. */
export interface WaitResult {
  /** The task id. */
  id: string;
  /** The final state, or the last state seen when waiting stopped early. */
  state: TesState | "UNKNOWN";
  /** Set when the timeout expired first. */
  timed_out?: boolean;
  /** Set when the task could not be read (not found…). */
  error?: string;
}

/**
 * Waits for tasks in parallel. Shows state changes on stderr when a person watches, and the
 * system logs of each task that did not complete (unless `json`).
 *
 * @param client The TES client.
 * @param ids The task ids.
 * @param options Interval, timeout, output mode.
 * @returns One result per id, in order.
 * @throws {TesConnectionError} When the server cannot be reached.
 */
export async function waitForTasks(
  client: TesClient,
  ids: readonly string[],
  options: WaitForTasksOptions = {},
): Promise<WaitResult[]> {
  const { intervalMs = 1000, timeoutS, json = false } = options;
  const progress = progressEnabled(json);
  const signal = timeoutS === undefined ? undefined : AbortSignal.timeout(timeoutS * 1000);
  return await Promise.all(ids.map(async (id): Promise<WaitResult> => {
    let last: TesState | undefined;
    try {
      const task = await client.waitForTask(id, {
        intervalMs,
        ...(signal === undefined ? {} : { signal }),
        onState: (state) => {
          last = state;
          if (progress) console.error(`${id}: ${state}`);
        },
      });
      const state = task.state ?? "UNKNOWN";
      if (!json && state !== "COMPLETE") {
        for (const line of task.logs?.at(-1)?.system_logs ?? []) console.error(`${id}: ${line}`);
      }
      return { id, state };
    } catch (error) {
      if (error instanceof TesConnectionError) throw error;
      if (signal?.aborted) return { id, state: last ?? "UNKNOWN", timed_out: true };
      return {
        id,
        state: last ?? "UNKNOWN",
        error: error instanceof Error ? error.message : String(error),
      };
    }
  }));
}

/**
 * Prints the outcome of {@linkcode waitForTasks}: one line per task (errors on stderr).
 *
 * @param results The results.
 */
export function printWaitResults(results: readonly WaitResult[]): void {
  for (const result of results) {
    if (result.error !== undefined) console.error(`${result.id}: ${result.error}`);
    else if (result.timed_out) console.log(`${result.id}  ${result.state} (timed out)`);
    else console.log(`${result.id}  ${result.state}`);
  }
}

/**
 * The exit code of a wait.
 *
 * @param results The results of {@linkcode waitForTasks}.
 * @returns 0 when every task is COMPLETE, 1 otherwise.
 */
export function waitExitCode(results: readonly WaitResult[]): number {
  return results.every((result) => result.state === "COMPLETE" && !result.timed_out) ? 0 : 1;
}

/** `planetary wait`. */
export const waitCommand: Command = {
  name: "wait",
  summary: "wait until tasks finish; exit 0 when all are COMPLETE",
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseVerbArgs(argv, {
      "interval-ms": { type: "string" },
      timeout: { type: "string" },
      json: { type: "boolean", default: false },
    });
    if (positionals.length === 0) throw new UsageError("missing task id: planetary wait ID...");
    const intervalMs = values["interval-ms"] === undefined
      ? 1000
      : parseInteger("--interval-ms", values["interval-ms"], 10, 3_600_000);
    const options: WaitForTasksOptions = { intervalMs, json: values.json };
    if (values.timeout !== undefined) options.timeoutS = parsePositive("--timeout", values.timeout);
    const results = await waitForTasks(clientFor(values.server), positionals, options);
    if (values.json) printJson(results);
    else printWaitResults(results);
    return waitExitCode(results);
  },
};
