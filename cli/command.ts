/**
 * The shape of one `planetary` CLI command. Each command lives in its own file under
 * `cli/commands/` and is registered once in the table of `cli/planetary.ts`.
 *
 * @module
 */

/** One CLI command. */
export interface Command {
  /** The verb (`submit`, `serve`, …). */
  readonly name: string;
  /** One line for the help listing. */
  readonly summary: string;
  /** Usage text printed with `--help` and on usage errors. */
  readonly usage: string;
  /**
   * Runs the command with the arguments after the verb. Resolves to the process exit code:
   * 0 success, 1 failure, 2 usage error.
   */
  run(argv: string[]): Promise<number>;
}

/** Thrown by a command for a usage error: the CLI prints the message and the usage, exit 2. */
export class UsageError extends Error {
  /** Stable error code. */
  readonly code = "USAGE";
  /**
   * @param message What is wrong with the arguments, and what to do.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
