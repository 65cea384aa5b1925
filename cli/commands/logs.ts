/**
 * `planetary logs ID`: prints what a task's executors wrote (stdout to stdout, stderr to
 * stderr), and the system logs when the task failed.
 *
 * @module
 */
import { type Command, UsageError } from "../command.ts";
import { clientFor, parseInteger, parseVerbArgs, printJson, serverUsage } from "../_output.ts";

const USAGE = `Usage: planetary logs ID [options]

Prints the stdout of the task's executors on stdout and their stderr on stderr (the tail the
server kept), then the system logs on stderr when the task did not complete.

Options:
      --executor N  only executor N (0 is the first)
      --stdout      only stdout
      --stderr      only stderr
      --json        print {"id", "state", "executors": [...], "system_logs"} as one JSON document
${serverUsage(20)}
  -h, --help        show this help`;

const FAILED = new Set(["EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"]);

function write(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = new TextEncoder().encode(text.endsWith("\n") || text === "" ? text : `${text}\n`);
  let offset = 0;
  while (offset < bytes.length) offset += stream.writeSync(bytes.subarray(offset));
}

/** `planetary logs`. */
export const logsCommand: Command = {
  name: "logs",
  summary: "print a task's executor stdout/stderr and system logs",
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseVerbArgs(argv, {
      executor: { type: "string" },
      stdout: { type: "boolean", default: false },
      stderr: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    });
    const [id, ...extra] = positionals;
    if (id === undefined) throw new UsageError("missing task id: planetary logs ID");
    if (extra.length > 0) {
      throw new UsageError(`unexpected argument "${extra[0]}": logs takes one ID`);
    }
    if (values.stdout && values.stderr) {
      throw new UsageError("--stdout and --stderr exclude each other; give neither for both");
    }
    const only = values.executor === undefined
      ? undefined
      : parseInteger("--executor", values.executor, 0, 10_000);
    const task = await clientFor(values.server).getTask(id, "FULL");
    const attempt = task.logs?.at(-1);
    const logs = (attempt?.logs ?? []).map((log, index) => ({ index, ...log }));
    if (only !== undefined && only >= (task.executors?.length ?? 0)) {
      throw new UsageError(
        `--executor ${only}: task "${id}" has ${
          task.executors?.length ?? 0
        } executor(s), numbered from 0`,
      );
    }
    const chosen = only === undefined ? logs : logs.filter((log) => log.index === only);
    const systemLogs = task.logs?.flatMap((log) => log.system_logs ?? []) ?? [];
    if (values.json) {
      printJson({
        id,
        state: task.state,
        executors: chosen.map((log) => ({
          index: log.index,
          exit_code: log.exit_code,
          stdout: log.stdout ?? "",
          stderr: log.stderr ?? "",
        })),
        system_logs: systemLogs,
      });
      return 0;
    }
    const headers = chosen.length > 1;
    for (const log of chosen) {
      if (headers) write(Deno.stderr, `== executor ${log.index} (exit ${log.exit_code}) ==`);
      if (!values.stderr && log.stdout) write(Deno.stdout, log.stdout);
      if (!values.stdout && log.stderr) write(Deno.stderr, log.stderr);
    }
    if (task.state !== undefined && FAILED.has(task.state) && !values.stdout) {
      write(Deno.stderr, `task ${id} ended ${task.state}`);
      for (const line of systemLogs) write(Deno.stderr, line);
    }
    return 0;
  },
};
