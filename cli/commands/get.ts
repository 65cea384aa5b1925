/**
 * `planetary get ID`: shows one task (FULL view by default): its key fields, executor exit
 * codes and system logs, or the whole task as JSON.
 *
 * @module
 */
import { type Command, UsageError } from "../command.ts";
import { clientFor, parseVerbArgs, parseView, printJson, serverUsage } from "../_output.ts";
import type { TesTask } from "../../src/tes/model.ts";

const USAGE = `Usage: planetary get ID [options]

Shows a task: state, name, times, executors with their exit codes, inputs, outputs and the
system logs that say why a task failed.

Options:
      --view VIEW   MINIMAL, BASIC or FULL (default FULL)
      --json        print the task as one JSON document
${serverUsage(20)}
  -h, --help        show this help`;

function quote(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ");
}

/**
 * Renders a task for people: key fields first, then executors, files and logs.
 *
 * @param task The task, in any view.
 * @returns The text, ending with a newline.
 */
export function formatTask(task: TesTask): string {
  const lines: string[] = [];
  const field = (label: string, value: string | undefined): void => {
    if (value !== undefined && value !== "") lines.push(`${`${label}:`.padEnd(13)}${value}`);
  };
  field("id", task.id);
  field("state", task.state);
  field("name", task.name);
  field("description", task.description);
  field("created", task.creation_time);
  const attempt = task.logs?.at(-1);
  field("started", attempt?.start_time);
  field("ended", attempt?.end_time);
  const tags = Object.entries(task.tags ?? {}).map(([key, value]) => `${key}=${value}`);
  field("tags", tags.join(", "));
  const resources = task.resources;
  if (resources !== undefined) {
    const parts = [
      resources.cpu_cores === undefined ? "" : `cpu=${resources.cpu_cores}`,
      resources.ram_gb === undefined ? "" : `ram=${resources.ram_gb}GB`,
      resources.disk_gb === undefined ? "" : `disk=${resources.disk_gb}GB`,
      resources.preemptible ? "preemptible" : "",
    ].filter((part) => part !== "");
    field("resources", parts.join(" "));
  }
  (task.executors ?? []).forEach((executor, index) => {
    lines.push(`executor ${index}:  ${executor.image}  ${quote(executor.command ?? [])}`);
    const log = attempt?.logs[index];
    if (log !== undefined) lines.push(`  exit code:  ${log.exit_code}`);
  });
  for (const input of task.inputs ?? []) {
    const source = input.url ?? (input.content === undefined ? "(content)" : "(inline content)");
    lines.push(`input:       ${source} -> ${input.path}`);
  }
  for (const output of task.outputs ?? []) {
    lines.push(`output:      ${output.path} -> ${output.url}`);
  }
  for (const file of attempt?.outputs ?? []) {
    lines.push(`uploaded:    ${file.url} (${file.size_bytes} bytes)`);
  }
  const systemLogs = task.logs?.flatMap((log) => log.system_logs ?? []) ?? [];
  if (systemLogs.length > 0) {
    lines.push("system logs:");
    for (const line of systemLogs) lines.push(`  ${line}`);
  }
  return `${lines.join("\n")}\n`;
}

/** `planetary get`. */
export const getCommand: Command = {
  name: "get",
  summary: "show one task",
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseVerbArgs(argv, {
      view: { type: "string", default: "FULL" },
      json: { type: "boolean", default: false },
    });
    const [id, ...extra] = positionals;
    if (id === undefined) throw new UsageError("missing task id: planetary get ID");
    if (extra.length > 0) {
      throw new UsageError(`unexpected argument "${extra[0]}": get takes one ID`);
    }
    const view = parseView(values.view);
    const task = await clientFor(values.server).getTask(id, view);
    if (values.json) printJson(task);
    else Deno.stdout.writeSync(new TextEncoder().encode(formatTask(task)));
    return 0;
  },
};
