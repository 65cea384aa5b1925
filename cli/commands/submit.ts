/**
 * `planetary submit`: submits a task from a JSON file, from stdin, or built from flags.
 *
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type Command, UsageError } from "../command.ts";
import {
  clientFor,
  parseInteger,
  parseKeyValues,
  parsePositive,
  parseVerbArgs,
  printJson,
  serverUsage,
} from "../_output.ts";
import { printWaitResults, waitExitCode, waitForTasks } from "./wait.ts";
import { TesBatchCreateError, type TesClient } from "../../src/client/mod.ts";
import type {
  TesExecutor,
  TesInput,
  TesOutput,
  TesResources,
  TesTask,
} from "../../src/tes/model.ts";

const USAGE = `Usage: planetary submit FILE.json|- [FILE.json...] [options]
       planetary submit --image IMAGE [options] -- COMMAND [ARG...]

Submits tasks and prints their ids, one per line. The tasks come from TES JSON files (- reads
stdin), each holding one task, a JSON array of tasks, or JSON lines (one task per line); or
one task is built from the flags below with the command after --. Several tasks go to the
server in batches (Planetary's POST /tasks:batch: each batch all or none), or one by one to a
TES server without batches.

Task flags:
      --image IMAGE        container image (required without FILE)
      --input SRC:PATH     download SRC to the absolute PATH in the container; SRC is a URL
                           (s3://, https://, file://…) or a local path (must exist); a local
                           directory or a URL ending in / is a DIRECTORY input
      --input-content TEXT:PATH
                           write TEXT to PATH in the container
      --output PATH:URL    upload PATH (absolute; may hold * ? [ wildcards) to URL, split at the
                           first ':'; URL may be a local path; PATH ending in / is a directory;
                           a wildcard PATH uploads each match to URL/<match below the pattern dir>
      --name NAME          task name
      --tag KEY=VALUE      task tag (repeatable)
      --env KEY=VALUE      executor environment variable (repeatable)
      --workdir DIR        executor working directory
      --stdin PATH         container file piped to the command's stdin
      --stdout PATH        container file receiving the command's stdout
      --stderr PATH        container file receiving the command's stderr
      --cpu N              CPU cores
      --ram-gb G           memory in GB
      --disk-gb G          disk in GB

Other options:
      --wait               wait for the task like \`planetary wait\` (exit 0 only if COMPLETE)
      --interval-ms N      poll interval of --wait (default 1000)
      --timeout S          give up waiting after S seconds
      --json               print {"id"} (several tasks: {"ids"}; with --wait the results)
                           as one JSON document
${serverUsage(27)}
  -h, --help               show this help

Examples:
  planetary submit --image alpine -- echo hello
  planetary submit --image alpine --input ./a.txt:/data/a.txt \\
    --output /data/out:file:///tmp/out -- sh -c 'wc -l /data/a.txt > /data/out'
  planetary submit task.json --wait
  planetary submit tasks.jsonl            # many tasks, one JSON task per line`;

const TASK_FLAGS = [
  "image",
  "input",
  "input-content",
  "output",
  "name",
  "tag",
  "env",
  "workdir",
  "stdin",
  "stdout",
  "stderr",
  "cpu",
  "ram-gb",
  "disk-gb",
] as const;

const URL_PATTERN = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//;
const WILDCARD = /[*?[]/;

function requireAbsolute(flag: string, path: string, example: string): void {
  if (!path.startsWith("/")) {
    throw new UsageError(`${flag}: container path "${path}" must be absolute, e.g. ${example}`);
  }
}

/** Splits `LEFT:/abs/path` at the last `:/`, so that LEFT may itself be a URL. */
function splitAtPath(flag: string, value: string, example: string): [string, string] {
  const at = value.lastIndexOf(":/");
  if (at <= 0) {
    throw new UsageError(
      `${flag} "${value}" must be SRC:PATH with an absolute PATH, e.g. ${example}`,
    );
  }
  return [value.slice(0, at), value.slice(at + 1)];
}

async function parseInput(value: string): Promise<TesInput> {
  const example = "--input ./a.txt:/data/a.txt";
  const [source, path] = splitAtPath("--input", value, example);
  if (URL_PATTERN.test(source)) {
    return { url: source, path, type: source.endsWith("/") ? "DIRECTORY" : "FILE" };
  }
  const absolute = resolve(source);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(absolute);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`--input: local path "${source}" does not exist (${absolute})`);
    }
    throw error;
  }
  return {
    url: pathToFileURL(absolute).href,
    path,
    type: info.isDirectory ? "DIRECTORY" : "FILE",
  };
}

function parseInputContent(value: string): TesInput {
  const [content, path] = splitAtPath(
    "--input-content",
    value,
    "--input-content 'hello':/data/a.txt",
  );
  return { content, path, type: "FILE" };
}

function parseOutput(value: string): TesOutput {
  const example = "--output /data/out.txt:s3://bucket/out.txt";
  const at = value.indexOf(":");
  if (at <= 0 || at === value.length - 1) {
    throw new UsageError(`--output "${value}" must be PATH:URL, e.g. ${example}`);
  }
  let path = value.slice(0, at);
  let url = value.slice(at + 1);
  requireAbsolute("--output", path, example);
  if (!URL_PATTERN.test(url)) url = pathToFileURL(resolve(url)).href;
  if (WILDCARD.test(path)) {
    // TES uploads each match to url + (match minus path_prefix): the prefix is the pattern's
    // directory up to the first wildcard, and the URL must end in a slash to be a folder.
    const firstWildcard = path.search(WILDCARD);
    const pathPrefix = path.slice(0, path.lastIndexOf("/", firstWildcard) + 1);
    return {
      path,
      path_prefix: pathPrefix,
      url: url.endsWith("/") ? url : `${url}/`,
      // Planetary's validation (like Funnel) treats a wildcard output as a DIRECTORY.
      type: "DIRECTORY",
    };
  }
  if (path.length > 1 && path.endsWith("/")) {
    path = path.replace(/\/+$/, "");
    return { path, url, type: "DIRECTORY" };
  }
  return { path, url, type: "FILE" };
}

/** The flag values `buildTask` reads. */
type TaskFlags = { [K in (typeof TASK_FLAGS)[number]]?: string | string[] | undefined };

function one(values: TaskFlags, flag: (typeof TASK_FLAGS)[number]): string | undefined {
  const value = values[flag];
  return Array.isArray(value) ? value.at(-1) : value;
}

function many(values: TaskFlags, flag: (typeof TASK_FLAGS)[number]): string[] {
  const value = values[flag];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/**
 * Builds a TES task from the task flags of `submit` and the command after `--`.
 *
 * @param values Parsed task flags.
 * @param command The argv of the executor.
 * @returns The task to submit.
 * @throws {UsageError} When a flag value is malformed or a local input does not exist.
 */
export async function buildTask(values: TaskFlags, command: readonly string[]): Promise<TesTask> {
  const image = one(values, "image");
  if (image === undefined || image.trim() === "") {
    throw new UsageError("missing --image: give a TES JSON file, or --image IMAGE -- COMMAND...");
  }
  if (command.length === 0) {
    throw new UsageError(
      "missing the command: put it after --, e.g. planetary submit --image alpine -- echo hello",
    );
  }
  const executor: TesExecutor = { image, command: [...command] };
  const env = parseKeyValues("--env", many(values, "env"));
  if (Object.keys(env).length > 0) executor.env = env;
  const workdir = one(values, "workdir");
  if (workdir !== undefined) executor.workdir = workdir;
  for (const stream of ["stdin", "stdout", "stderr"] as const) {
    const path = one(values, stream);
    if (path === undefined) continue;
    requireAbsolute(`--${stream}`, path, `--${stream} /data/${stream}.txt`);
    executor[stream] = path;
  }
  const task: TesTask = { executors: [executor] };
  const name = one(values, "name");
  if (name !== undefined) task.name = name;
  const tags = parseKeyValues("--tag", many(values, "tag"));
  if (Object.keys(tags).length > 0) task.tags = tags;
  const inputs: TesInput[] = [];
  for (const value of many(values, "input")) inputs.push(await parseInput(value));
  for (const value of many(values, "input-content")) inputs.push(parseInputContent(value));
  if (inputs.length > 0) task.inputs = inputs;
  const outputs = many(values, "output").map(parseOutput);
  if (outputs.length > 0) task.outputs = outputs;
  const resources: TesResources = {};
  const cpu = one(values, "cpu");
  if (cpu !== undefined) resources.cpu_cores = parseInteger("--cpu", cpu, 1, 2 ** 31 - 1);
  const ram = one(values, "ram-gb");
  if (ram !== undefined) resources.ram_gb = parsePositive("--ram-gb", ram);
  const disk = one(values, "disk-gb");
  if (disk !== undefined) resources.disk_gb = parsePositive("--disk-gb", disk);
  if (Object.keys(resources).length > 0) task.resources = resources;
  return task;
}

function taskObject(value: unknown, where: string): TesTask {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError(`${where} must be a TES task object, e.g. {"executors": [...]}`);
  }
  return value as TesTask;
}

/**
 * Reads the tasks of a task file's text: one TES task object, a JSON array of tasks, or JSON
 * lines (one task object per line; blank lines skipped).
 *
 * @param text The file's text.
 * @param source How to name the file in errors (`"a.json"`, `stdin`).
 * @returns The tasks, in order.
 * @throws {UsageError} Naming the file (and the line or index) that is not a task.
 */
export function parseTaskText(text: string, source: string): TesTask[] {
  const trimmed = text.trim();
  if (trimmed === "") throw new UsageError(`${source} is empty; give a TES task`);
  let whole: unknown;
  try {
    whole = JSON.parse(trimmed);
  } catch (error) {
    const lines = text.split("\n");
    if (lines.filter((line) => line.trim() !== "").length < 2) {
      throw new UsageError(
        `${source} is not valid JSON (${(error as Error).message}); give a TES task`,
      );
    }
    const tasks: TesTask[] = [];
    for (const [index, line] of lines.entries()) {
      if (line.trim() === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (lineError) {
        throw new UsageError(
          `${source} line ${index + 1} is not valid JSON (${
            (lineError as Error).message
          }); give one TES task per line (JSON lines), or one JSON task or array`,
        );
      }
      tasks.push(taskObject(value, `${source} line ${index + 1}`));
    }
    return tasks;
  }
  if (Array.isArray(whole)) {
    if (whole.length === 0) throw new UsageError(`${source} holds an empty array; give tasks`);
    return whole.map((value, index) => taskObject(value, `${source} [${index}]`));
  }
  return [taskObject(whole, source)];
}

async function readTaskFile(file: string): Promise<TesTask[]> {
  let text: string;
  try {
    text = file === "-"
      ? await new Response(Deno.stdin.readable).text()
      : await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`task file "${file}" does not exist`);
    }
    throw error;
  }
  return parseTaskText(text, file === "-" ? "stdin" : `"${file}"`);
}

/** Creates several tasks; a batch that stops part-way still prints the ids it created. */
async function createAll(client: TesClient, tasks: readonly TesTask[]): Promise<string[]> {
  try {
    return await client.createTasks(tasks);
  } catch (error) {
    // the ids of the batches that landed go to stdout; describeError() says what failed
    if (error instanceof TesBatchCreateError) {
      for (const id of error.createdIds) console.log(id);
    }
    throw error;
  }
}

/** `planetary submit`. */
export const submitCommand: Command = {
  name: "submit",
  summary: "submit a task (from a JSON file, stdin, or flags) and print its id",
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    const dash = argv.indexOf("--");
    const flags = dash === -1 ? argv : argv.slice(0, dash);
    const command = dash === -1 ? [] : argv.slice(dash + 1);
    const { values, positionals } = parseVerbArgs(flags, {
      image: { type: "string" },
      input: { type: "string", multiple: true },
      "input-content": { type: "string", multiple: true },
      output: { type: "string", multiple: true },
      name: { type: "string" },
      tag: { type: "string", multiple: true },
      env: { type: "string", multiple: true },
      workdir: { type: "string" },
      stdin: { type: "string" },
      stdout: { type: "string" },
      stderr: { type: "string" },
      cpu: { type: "string" },
      "ram-gb": { type: "string" },
      "disk-gb": { type: "string" },
      wait: { type: "boolean", default: false },
      "interval-ms": { type: "string" },
      timeout: { type: "string" },
      json: { type: "boolean", default: false },
    });
    let tasks: TesTask[];
    if (positionals.length > 0) {
      if (command.length > 0) {
        throw new UsageError(
          `unexpected argument "${command[0]}": give either task files or --image -- COMMAND`,
        );
      }
      if (positionals.filter((file) => file === "-").length > 1) {
        throw new UsageError("- (stdin) can be given once");
      }
      const used = TASK_FLAGS.filter((flag) => values[flag] !== undefined);
      if (used.length > 0) {
        throw new UsageError(
          `--${used[0]} cannot be combined with a task file; edit the file instead`,
        );
      }
      tasks = [];
      for (const file of positionals) tasks.push(...await readTaskFile(file));
    } else {
      tasks = [await buildTask(values, command)];
    }
    const intervalMs = values["interval-ms"] === undefined
      ? 1000
      : parseInteger("--interval-ms", values["interval-ms"], 10, 3_600_000);
    const timeoutS = values.timeout === undefined
      ? undefined
      : parsePositive("--timeout", values.timeout);
    const client = clientFor(values.server);
    // One task: POST /tasks (any TES server). Several: Planetary's batch create (one commit
    // per batch), which the client turns into single creates on servers without it.
    const ids = tasks.length === 1
      ? [await client.createTask(tasks[0]!)]
      : await createAll(client, tasks);
    const single = ids.length === 1;
    if (!values.wait) {
      if (values.json) printJson(single ? { id: ids[0] } : { ids });
      else for (const id of ids) console.log(id);
      return 0;
    }
    if (!values.json) {
      console.error(single ? `submitted ${ids[0]}` : `submitted ${ids.length} tasks`);
    }
    const options = timeoutS === undefined ? { intervalMs } : { intervalMs, timeoutS };
    const results = await waitForTasks(client, ids, { ...options, json: values.json });
    if (values.json) printJson(single ? results[0] : results);
    else printWaitResults(results);
    return waitExitCode(results);
  },
};
