/**
 * `planetary list`: lists tasks as a table (or one JSON document), one page or all of them.
 *
 * @module
 */
import { type Command, UsageError } from "../command.ts";
import {
  clientFor,
  parseInteger,
  parseKeyValues,
  parseState,
  parseVerbArgs,
  parseView,
  printJson,
  serverUsage,
} from "../_output.ts";
import { formatTable } from "../_table.ts";
import type { TesListTasksQuery } from "../../src/client/mod.ts";
import type { TesTask } from "../../src/tes/model.ts";

const USAGE = `Usage: planetary list [options]

Lists tasks, newest first, as a table of ID, STATE, NAME and CREATED.

Options:
      --state STATE       only tasks in this state (QUEUED, RUNNING, COMPLETE, …)
      --name-prefix P     only tasks whose name starts with P
      --tag KEY=VALUE     only tasks with this tag (repeatable; KEY= matches any value)
      --view VIEW         MINIMAL, BASIC (default) or FULL
      --page-size N       tasks per page, 1 to 2047
      --page-token T      start at this page (from a previous listing)
      --all               follow every page
      --json              print {"tasks": [...], "next_page_token"?} as one JSON document
${serverUsage(26)}
  -h, --help              show this help`;

function rowOf(task: TesTask): string[] {
  return [task.id ?? "", task.state ?? "", task.name || "-", task.creation_time ?? "-"];
}

/** `planetary list`. */
export const listCommand: Command = {
  name: "list",
  summary: "list tasks as a table",
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseVerbArgs(argv, {
      state: { type: "string" },
      "name-prefix": { type: "string" },
      tag: { type: "string", multiple: true, default: [] },
      view: { type: "string", default: "BASIC" },
      "page-size": { type: "string" },
      "page-token": { type: "string" },
      all: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    });
    if (positionals.length > 0) {
      throw new UsageError(
        `unexpected argument "${positionals[0]}"; filter with --name-prefix or --tag`,
      );
    }
    const query: TesListTasksQuery = { view: parseView(values.view) };
    if (values.state !== undefined) query.state = parseState(values.state);
    if (values["name-prefix"] !== undefined) query.namePrefix = values["name-prefix"];
    const tags = parseKeyValues("--tag", values.tag);
    if (Object.keys(tags).length > 0) query.tags = tags;
    if (values["page-size"] !== undefined) {
      query.pageSize = parseInteger("--page-size", values["page-size"], 1, 2047);
    }
    if (values["page-token"] !== undefined) query.pageToken = values["page-token"];
    const client = clientFor(values.server);
    let tasks: TesTask[];
    let nextPageToken: string | undefined;
    if (values.all) {
      tasks = await Array.fromAsync(client.listAllTasks(query));
    } else {
      const page = await client.listTasks(query);
      tasks = page.tasks ?? [];
      nextPageToken = page.next_page_token || undefined;
    }
    if (values.json) {
      printJson(
        nextPageToken === undefined ? { tasks } : { tasks, next_page_token: nextPageToken },
      );
      return 0;
    }
    Deno.stdout.writeSync(new TextEncoder().encode(
      formatTable(["ID", "STATE", "NAME", "CREATED"], tasks.map(rowOf)),
    ));
    if (nextPageToken !== undefined) {
      console.error(`more tasks: --page-token ${nextPageToken} for the next page, or --all`);
    }
    return 0;
  },
};
