/**
 * The `planetary` command line: one table of commands, a dispatcher, and the exit-code rules.
 *
 * ```sh
 * planetary serve                      # run the TES server (API + orchestrator + monitor)
 * planetary submit --image alpine -- echo hello
 * planetary list --state RUNNING
 * planetary get ID
 * planetary wait ID
 * planetary logs ID
 * planetary cancel ID
 * ```
 *
 * Exit codes: 0 success, 1 failure, 2 usage error (the message and the usage go to stderr).
 * Errors are printed as one line, never as a stack trace.
 *
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };
import { type Command, UsageError } from "./command.ts";
import { cancelCommand } from "./commands/cancel.ts";
import { getCommand } from "./commands/get.ts";
import { listCommand } from "./commands/list.ts";
import { logsCommand } from "./commands/logs.ts";
import { serveCommand } from "./commands/serve.ts";
import { submitCommand } from "./commands/submit.ts";
import { transporterCommand } from "./commands/transporter.ts";
import { waitCommand } from "./commands/wait.ts";
import { describeError } from "./_output.ts";

/** Every command of the CLI, in the order of the help listing. */
export const COMMANDS: readonly Command[] = Object.freeze([
  serveCommand,
  submitCommand,
  listCommand,
  getCommand,
  cancelCommand,
  waitCommand,
  logsCommand,
  transporterCommand,
]);

/** The CLI's version (from `deno.json`). */
export const VERSION: string = denoConfig.version;

/**
 * The general help text: the verbs and the global environment.
 *
 * @returns The text printed by `planetary --help`.
 */
export function generalUsage(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length));
  const lines = COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`);
  return [
    "planetary: a GA4GH TES v1.1 server and its client",
    "",
    "Usage: planetary <command> [options]",
    "",
    "Commands:",
    ...lines,
    "",
    "Run `planetary <command> --help` for the options of a command.",
    "",
    "Environment:",
    "  PLANETARY_URL    TES server of the client commands (default http://127.0.0.1:8000)",
    "  PLANETARY_TOKEN  bearer token sent by the client commands",
    "",
  ].join("\n");
}

function wantsHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === "--") return false;
    if (arg === "--help" || arg === "-h") return true;
  }
  return false;
}

function writeErr(text: string): void {
  console.error(text.replace(/\n+$/, ""));
}

/**
 * Runs the CLI with the given arguments and resolves to the process exit code.
 *
 * @param argv The arguments after the program name.
 * @returns 0 on success, 1 on failure, 2 on a usage error.
 * @example
 * ```ts ignore
 * import { main } from "./planetary.ts";
 * Deno.exit(await main(["list", "--state", "RUNNING"]));
 * ```
 */
export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined) {
    writeErr("planetary: missing command\n");
    writeErr(generalUsage());
    return 2;
  }
  if (verb === "--help" || verb === "-h") {
    console.log(generalUsage());
    return 0;
  }
  if (verb === "--version" || verb === "-V" || verb === "version") {
    console.log(`planetary ${VERSION}`);
    return 0;
  }
  if (verb === "help") {
    const topic = rest[0];
    if (topic === undefined) {
      console.log(generalUsage());
      return 0;
    }
    const command = COMMANDS.find((candidate) => candidate.name === topic);
    if (command === undefined) return unknownCommand(topic);
    console.log(command.usage);
    return 0;
  }
  const command = COMMANDS.find((candidate) => candidate.name === verb);
  if (command === undefined) return unknownCommand(verb);
  if (wantsHelp(rest)) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      writeErr(`planetary ${command.name}: ${error.message}\n`);
      writeErr(command.usage);
      return 2;
    }
    writeErr(`planetary ${command.name}: ${describeError(error)}`);
    return 1;
  }
}

function unknownCommand(verb: string): number {
  const known = COMMANDS.map((command) => command.name).join(", ");
  writeErr(`planetary: unknown command "${verb}"; the commands are: ${known}\n`);
  writeErr(generalUsage());
  return 2;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
