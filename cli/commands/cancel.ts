/**
 * `planetary cancel ID...`: asks the server to cancel tasks and prints their state afterwards.
 *
 * @module
 */
import { type Command, UsageError } from "../command.ts";
import { clientFor, parseVerbArgs, printJson, serverUsage } from "../_output.ts";
import { TesConnectionError } from "../../src/client/mod.ts";

const USAGE = `Usage: planetary cancel ID... [options]

Cancels tasks: a queued task becomes CANCELED, a running one CANCELING until its pod is gone;
a finished task is left as it is. Prints each task's state after the request.

Options:
      --json        print [{"id", "state"} or {"id", "error"}, …] as one JSON document
${serverUsage(20)}
  -h, --help        show this help`;

/** `planetary cancel`. */
export const cancelCommand: Command = {
  name: "cancel",
  summary: "cancel tasks",
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseVerbArgs(argv, {
      json: { type: "boolean", default: false },
    });
    if (positionals.length === 0) throw new UsageError("missing task id: planetary cancel ID...");
    const client = clientFor(values.server);
    const results: ({ id: string; state: string } | { id: string; error: string })[] = [];
    for (const id of positionals) {
      try {
        await client.cancelTask(id);
        const task = await client.getTask(id);
        results.push({ id, state: task.state ?? "UNKNOWN" });
      } catch (error) {
        if (error instanceof TesConnectionError) throw error;
        results.push({ id, error: error instanceof Error ? error.message : String(error) });
      }
    }
    if (values.json) {
      printJson(results);
    } else {
      for (const result of results) {
        if ("error" in result) console.error(`${result.id}: ${result.error}`);
        else console.log(`${result.id}  ${result.state}`);
      }
    }
    return results.every((result) => "state" in result) ? 0 : 1;
  },
};
