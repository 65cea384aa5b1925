/**
 * Output and argument helpers shared by the client verbs of the CLI: where the server is, how
 * errors read, JSON output, progress on stderr, and parsing of common flag values.
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { UsageError } from "./command.ts";
import {
  TesApiError,
  TesBatchCreateError,
  TesClient,
  TesConnectionError,
} from "../src/client/mod.ts";
import { TES_STATES, TES_VIEWS, type TesState, type TesView } from "../src/tes/model.ts";
import { describeThrown } from "../src/_describe_thrown.ts";

/** Server URL used when neither `--server` nor `PLANETARY_URL` is set. */
export const DEFAULT_SERVER_URL = "http://127.0.0.1:8000";

/** The `parseArgs` options every client verb accepts. */
export const SERVER_OPTIONS = {
  server: { type: "string", short: "s" },
} as const;

/**
 * The usage line of the options in {@linkcode SERVER_OPTIONS}, aligned with a usage text.
 *
 * @param column Where the descriptions of the usage text start.
 * @returns The line.
 */
export function serverUsage(column: number): string {
  return `  -s, --server URL`.padEnd(column) +
    `TES server (default: $PLANETARY_URL or ${DEFAULT_SERVER_URL})`;
}

/**
 * Runs a `parseArgs` call and turns its errors (unknown flag, missing value…) into usage errors.
 *
 * @param parse A function calling `parseArgs`.
 * @returns What `parse` returns.
 * @throws {UsageError} When the arguments do not parse.
 */
export function parseOrUsage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    const code = (error as TypeError & { code?: string }).code;
    const option = /'(-[^' ]*)/.exec(error.message)?.[1];
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option !== undefined) {
      throw new UsageError(`unknown option "${option}"; the options are listed below`);
    }
    throw new UsageError(error.message);
  }
}

/**
 * Parses a client verb's arguments: {@linkcode SERVER_OPTIONS} plus the verb's own options,
 * positionals allowed, every parse error turned into a usage error.
 *
 * @param args The verb's arguments.
 * @param options The verb's own `parseArgs` options.
 * @returns The parsed values and positionals.
 * @throws {UsageError} When the arguments do not parse.
 */
export function parseVerbArgs<O extends ParseArgsOptionsConfig>(args: string[], options: O) {
  return parseOrUsage(() =>
    parseArgs({ args, allowPositionals: true, options: { ...SERVER_OPTIONS, ...options } })
  );
}

/**
 * Makes the TES client of a verb from `--server`, `PLANETARY_URL` and `PLANETARY_TOKEN`.
 *
 * @param server The value of `--server`, if given.
 * @returns A client of the chosen server.
 * @throws {UsageError} When the URL is not an http(s) URL.
 */
export function clientFor(server: string | undefined): TesClient {
  const url = server ?? (Deno.env.get("PLANETARY_URL") || DEFAULT_SERVER_URL);
  const token = Deno.env.get("PLANETARY_TOKEN");
  try {
    return new TesClient(url, token ? { token } : {});
  } catch (error) {
    throw new UsageError(`${error instanceof Error ? error.message : error}; fix --server`);
  }
}

/**
 * Says what went wrong in one line, without a stack trace (causes included, never
 * `[object Object]`: see `describeThrown`).
 *
 * @param error Anything thrown.
 * @returns The message for stderr.
 */
export function describeError(error: unknown): string {
  if (error instanceof TesConnectionError) {
    return `cannot reach the TES server at ${error.serverUrl}: is \`planetary serve\` running? ` +
      "set --server or PLANETARY_URL";
  }
  if (error instanceof TesApiError) return `server refused: ${error.message}`;
  if (error instanceof TesBatchCreateError) {
    return `${error.createdIds.length} tasks were created (their ids are on stdout), the rest ` +
      `were not: ${describeError(error.cause)}; submit the rest again`;
  }
  return describeThrown(error);
}

/**
 * Writes exactly one JSON document to stdout.
 *
 * @param value The document.
 */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/**
 * Tells whether progress may be shown on stderr: only for a person watching a terminal.
 *
 * @param json Whether `--json` was given.
 * @returns `true` when stderr is a TTY, `CI` is not set and `--json` is off.
 */
export function progressEnabled(json: boolean): boolean {
  const ci = Deno.env.get("CI");
  return !json && (ci === undefined || ci === "" || ci === "false") && Deno.stderr.isTerminal();
}

/**
 * Checks a `--state` value.
 *
 * @param value The flag value (any case).
 * @returns The TES state.
 * @throws {UsageError} When it is not a TES state.
 */
export function parseState(value: string): TesState {
  const upper = value.toUpperCase();
  const state = TES_STATES.find((candidate) => candidate === upper);
  if (state === undefined) {
    throw new UsageError(
      `--state "${value}" is not a TES state; use one of ${TES_STATES.join(", ")}`,
    );
  }
  return state;
}

/**
 * Checks a `--view` value.
 *
 * @param value The flag value (any case).
 * @returns The TES view.
 * @throws {UsageError} When it is not MINIMAL, BASIC or FULL.
 */
export function parseView(value: string): TesView {
  const upper = value.toUpperCase();
  const view = TES_VIEWS.find((candidate) => candidate === upper);
  if (view === undefined) {
    throw new UsageError(`--view "${value}" is not a view; use MINIMAL, BASIC or FULL`);
  }
  return view;
}

/**
 * Parses a whole number flag.
 *
 * @param flag The flag name, for the message (`--page-size`).
 * @param value The flag value.
 * @param min The smallest value allowed.
 * @param max The largest value allowed.
 * @returns The number.
 * @throws {UsageError} When the value is not an integer in range.
 */
export function parseInteger(flag: string, value: string, min: number, max: number): number {
  const number = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new UsageError(`${flag} "${value}" must be a whole number from ${min} to ${max}`);
  }
  return number;
}

/**
 * Parses a positive decimal number flag (`--ram-gb 1.5`).
 *
 * @param flag The flag name, for the message.
 * @param value The flag value.
 * @returns The number.
 * @throws {UsageError} When the value is not a number above zero.
 */
export function parsePositive(flag: string, value: string): number {
  const number = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!(number > 0) || !Number.isFinite(number)) {
    throw new UsageError(`${flag} "${value}" must be a number above 0, e.g. ${flag} 2`);
  }
  return number;
}

/**
 * Parses repeated `KEY=VALUE` flags into a record (later ones win).
 *
 * @param flag The flag name, for the message (`--tag`).
 * @param values The flag values.
 * @returns The record.
 * @throws {UsageError} When a value has no `=` or an empty key.
 */
export function parseKeyValues(flag: string, values: readonly string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (const item of values) {
    const at = item.indexOf("=");
    if (at <= 0) {
      throw new UsageError(
        `${flag} "${item}" must be KEY=VALUE (KEY= for an empty value), e.g. ${flag} project=demo`,
      );
    }
    record[item.slice(0, at)] = item.slice(at + 1);
  }
  return record;
}
