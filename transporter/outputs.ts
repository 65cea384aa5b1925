/**
 * The `outputs` mode of the transporter: uploads every output of a task from the pod.
 *
 * @module
 */
import type { TransferOutput, TransferReport, TransferSpec } from "../src/pod/layout.ts";
import { DATA_DIR, isWithin, normalizePath, taskMounts } from "../src/pod/task_mounts.ts";
import { joinUrl, redactUrl, type StorageConfig, storageForUrl } from "../src/storage/mod.ts";
import { runBounded } from "./pool.ts";
import type { TransferProgress } from "./progress.ts";
import { describeError } from "./transfer_error.ts";
import { expandWildcard, hasWildcard, literalPrefix } from "./wildcard.ts";

/** Options of {@linkcode uploadOutputs}. */
export interface UploadOutputsOptions {
  /** Storage configuration (file allow-list, extra adapters). @default {{}} */
  config?: StorageConfig;
  /** How many files are uploaded at once. @default {4} */
  parallelism?: number;
  /** Counts the bytes and writes progress lines. @default {undefined} (silent) */
  progress?: TransferProgress;
  /**
   * The task's own folders: a file or folder that resolves (symbolic links followed) outside
   * all of them is not uploaded, with a line in `warnings`.
   * @default {taskVolumePaths(spec)}
   */
  volumePaths?: readonly string[];
}

/**
 * The folders (and single files) where a task pod mounts its data volume, as the pod builder
 * derives them from the task (`taskMounts()`): each input's and output's folder, each
 * executor's stdout/stderr folder, and the whole volume at `DATA_DIR`. Outputs never leave
 * them: outside them the transporter sees its image or, on the host runtime, the host.
 *
 * @param spec The transfer spec.
 * @returns Absolute paths.
 * @example
 * ```ts
 * import { taskVolumePaths } from "./outputs.ts";
 * taskVolumePaths({
 *   version: 1, taskId: "t", inputs: [], executors: [], tailBytes: 0,
 *   outputs: [{ url: "file:///tmp/o", path: "/out/result.txt", type: "FILE" }],
 * }); // ["/out", "/planetary/data"]
 * ```
 */
export function taskVolumePaths(spec: TransferSpec): string[] {
  const mounts = taskMounts({
    inputs: spec.inputs.map((input) => ({ path: input.path, type: input.type })),
    outputs: spec.outputs.map((output) => ({
      url: output.url,
      path: output.path,
      type: output.type,
    })),
    executors: spec.executors.map((e) => ({
      image: "-",
      command: ["-"],
      stdout: e.stdout,
      stderr: e.stderr,
    })),
  });
  return [...mounts.directories, ...mounts.files].map((m) => m.mountPath).concat(DATA_DIR);
}

/** Tells whether a path stays inside the task's folders once its symbolic links are followed. */
class Confinement {
  #roots: Promise<string[]>;

  constructor(paths: readonly string[]) {
    // A mount point may lie behind a link of the image (/var/run -> /run): compare real paths.
    this.#roots = Promise.all(
      paths.map((path) => Deno.realPath(path).catch(() => normalizePath(path))),
    );
  }

  /** The real path of `path` when it is inside, else undefined. */
  async inside(path: string): Promise<string | undefined> {
    const real = await Deno.realPath(path);
    return (await this.#roots).some((root) => isWithin(real, root)) ? real : undefined;
  }
}

function outsideWarning(index: number, output: TransferOutput, path: string): string {
  return `output #${index} (${output.type} ${output.path}): ${path} leads outside the task's ` +
    "volumes (a symbolic link); not uploaded";
}

/** What {@linkcode uploadOutputs} did. */
export interface UploadOutputsResult {
  /** Every uploaded file, in output order. */
  outputs: TransferReport["outputs"];
  /**
   * One reason per failure (an unreadable path, the wrong kind, a refused URL, an upload
   * error), in output order. Any error fails the task.
   */
  errors: string[];
  /**
   * One line per output that was absent after the executors finished (a FILE or DIRECTORY
   * path that does not exist, a wildcard that matches nothing), in output order: nothing was
   * uploaded for it, and it does not fail the task (TES 1.1 has no optional flag; Nextflow
   * sends its optional outputs as plain FILE outputs and checks them itself, as Cromwell does).
   */
  warnings: string[];
  /** Bytes uploaded. */
  bytes: number;
}

interface Job {
  index: number;
  output: TransferOutput;
  path: string;
  url: string;
}

function describeOutput(index: number, output: TransferOutput): string {
  return `output #${index} (${output.type} ${output.path} -> "${redactUrl(output.url)}")`;
}

/**
 * Every regular file under a local directory (following symlinks, once, as long as they stay
 * inside the task's volumes: `outside` receives each one that does not), sorted.
 */
async function walkFiles(
  root: string,
  confinement: Confinement,
  outside: (path: string) => void,
): Promise<{ path: string; relativePath: string }[]> {
  const files: { path: string; relativePath: string }[] = [];
  const visited = new Set<string>();
  async function visit(dir: string, rel: string): Promise<void> {
    const real = await confinement.inside(dir);
    if (real === undefined) return outside(dir);
    if (visited.has(real)) return;
    visited.add(real);
    const names: string[] = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    names.sort();
    for (const name of names) {
      const path = `${dir}/${name}`;
      const relativePath = rel === "" ? name : `${rel}/${name}`;
      const info = await Deno.stat(path).catch(() => undefined); // dangling symlink: skip
      if (info?.isDirectory) await visit(path, relativePath);
      else if (info?.isFile) {
        if (await confinement.inside(path) === undefined) outside(path);
        else files.push({ path, relativePath });
      }
    }
  }
  await visit(root, "");
  return files;
}

/** The output's path is absent: not an error (see {@linkcode UploadOutputsResult.warnings}). */
class MissingOutput extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "MissingOutput";
  }
}

function missingWarning(index: number, output: TransferOutput, reason: string): string {
  return `output #${index} (${output.type} ${output.path}): ${reason} after the executors ` +
    "finished; nothing uploaded";
}

/** `Deno.stat`, except that a path that does not exist is a {@linkcode MissingOutput}. */
async function statOutput(path: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new MissingOutput("not found");
    throw error;
  }
}

async function jobsForOutput(
  index: number,
  output: TransferOutput,
  confinement: Confinement,
  warnings: string[],
): Promise<Job[]> {
  const outside = (path: string): void => {
    warnings.push(outsideWarning(index, output, path));
  };
  if (hasWildcard(output.path)) {
    const prefix = (output.path_prefix ?? literalPrefix(output.path)).replace(/\/+$/, "");
    const jobs: Job[] = [];
    const matches = await expandWildcard(output.path);
    if (matches.length === 0) throw new MissingOutput("no path matches the pattern");
    for (const match of matches) {
      if (match !== prefix && !match.startsWith(`${prefix}/`) && prefix !== "") {
        throw new Error(`match ${match} does not start with path_prefix ${prefix}`);
      }
      const rel = match.slice(prefix.length).replace(/^\/+/, "");
      const info = await Deno.stat(match).catch(() => undefined); // dangling symlink: skip
      if (info === undefined) continue;
      if ((info.isDirectory || info.isFile) && await confinement.inside(match) === undefined) {
        outside(match);
        continue;
      }
      if (info.isDirectory) {
        for (const file of await walkFiles(match, confinement, outside)) {
          const url = joinUrl(
            output.url,
            rel === "" ? file.relativePath : `${rel}/${file.relativePath}`,
          );
          jobs.push({ index, output, path: file.path, url });
        }
      } else if (info.isFile) {
        jobs.push({
          index,
          output,
          path: match,
          url: rel === "" ? output.url : joinUrl(output.url, rel),
        });
      }
    }
    return jobs;
  }
  const info = await statOutput(output.path);
  if (await confinement.inside(output.path) === undefined) {
    outside(output.path);
    return [];
  }
  if (output.type === "DIRECTORY") {
    if (!info.isDirectory) throw new Error(`${output.path} is not a directory`);
    return (await walkFiles(output.path, confinement, outside)).map((file) => ({
      index,
      output,
      path: file.path,
      url: joinUrl(output.url, file.relativePath),
    }));
  }
  if (!info.isFile) {
    throw new Error(`${output.path} is not a regular file (declare the output as DIRECTORY)`);
  }
  return [{ index, output, path: output.path, url: output.url }];
}

/**
 * Uploads every output, continuing past failures: a FILE is uploaded to its URL; a DIRECTORY
 * has each file under it uploaded to `url/<relative path>`; a wildcard `path` is expanded and
 * each match uploaded to `url/<match minus path_prefix>` (a matched directory uploads its
 * files). Without `path_prefix`, the pattern's leading literal directory is the prefix.
 *
 * An output whose path does not exist (or a wildcard that matches nothing) is not an error:
 * it gets a line in `warnings` and nothing is uploaded for it. Nor is a path that leads out of
 * the task's volumes through a symbolic link (the output itself, a file or folder inside a
 * DIRECTORY output, a wildcard match): it is skipped, with a line in `warnings`, so that a
 * task can never upload what it does not own (`/etc/shadow` on the host runtime). Any other failure (a path that
 * cannot be read, a directory declared FILE, a storage error) is recorded in `errors` for its
 * output, and the other outputs still upload.
 *
 * @param spec The transfer spec.
 * @param options Storage configuration and parallelism.
 * @returns The uploaded files (with sizes as decimal strings), the errors and the warnings.
 *
 * @example Usage
 * ```ts ignore
 * import { uploadOutputs } from "./outputs.ts";
 * const { outputs, errors } = await uploadOutputs(spec, { config: {} });
 * ```
 */
export async function uploadOutputs(
  spec: TransferSpec,
  options: UploadOutputsOptions = {},
): Promise<UploadOutputsResult> {
  const { config = {}, parallelism = 4, progress } = options;
  const confinement = new Confinement(options.volumePaths ?? taskVolumePaths(spec));
  const errors: { index: number; message: string }[] = [];
  const warnings: string[] = [];
  const jobs: Job[] = [];
  for (const [index, output] of spec.outputs.entries()) {
    try {
      jobs.push(...await jobsForOutput(index, output, confinement, warnings));
    } catch (error) {
      if (error instanceof MissingOutput) {
        warnings.push(missingWarning(index, output, error.reason));
        continue;
      }
      errors.push({
        index,
        message: `${describeOutput(index, output)} failed: ${describeError(error)}`,
      });
    }
  }
  progress?.plan(jobs.length);
  const results = await runBounded(jobs, parallelism, async (job) => {
    const file = await Deno.open(job.path, { read: true });
    let size: number;
    try {
      size = (await file.stat()).size;
    } catch (error) {
      file.close();
      throw error;
    }
    const stream = progress === undefined ? file.readable : progress.count(file.readable);
    const written = await storageForUrl(job.url, config).write(job.url, stream, { size });
    progress?.fileDone(job.url, written.size);
    return written;
  });
  const outputs: TransferReport["outputs"] = [];
  let bytes = 0;
  for (const [i, result] of results.entries()) {
    const job = jobs[i]!;
    if (result.status === "fulfilled") {
      outputs.push({ url: job.url, path: job.path, size_bytes: String(result.value.size) });
      bytes += result.value.size;
    } else {
      const where = job.url === job.output.url ? "" : ` at "${redactUrl(job.url)}"`;
      errors.push({
        index: job.index,
        message: `${describeOutput(job.index, job.output)} failed${where} (${job.path}): ${
          describeError(result.reason)
        }`,
      });
    }
  }
  errors.sort((a, b) => a.index - b.index);
  return { outputs, errors: errors.map((e) => e.message), warnings, bytes };
}
