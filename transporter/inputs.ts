/**
 * The `inputs` mode of the transporter: downloads every input of a task into the pod.
 *
 * @module
 */
import type { TransferInput, TransferSpec } from "../src/pod/layout.ts";
import { redactUrl, type StorageConfig, StorageError, storageForUrl } from "../src/storage/mod.ts";
import { runBounded } from "./pool.ts";
import type { TransferProgress } from "./progress.ts";
import { describeError, TransferError } from "./transfer_error.ts";

/** Options of {@linkcode downloadInputs}. */
export interface DownloadInputsOptions {
  /** Storage configuration (file allow-list, HTTP retries, extra adapters). @default {{}} */
  config?: StorageConfig;
  /** How many files are downloaded at once. @default {4} */
  parallelism?: number;
  /** Counts the bytes and writes progress lines. @default {undefined} (silent) */
  progress?: TransferProgress;
}

/** What a transfer moved. */
export interface TransferStats {
  /** Number of files written. */
  files: number;
  /** Number of bytes written. */
  bytes: number;
}

interface Job {
  index: number;
  input: TransferInput;
  destination: string;
  url?: string;
  content?: string;
}

function describeInput(index: number, input: TransferInput): string {
  const source = input.content !== undefined
    ? "inline content"
    : input.url === undefined
    ? "no url"
    : `"${redactUrl(input.url)}"`;
  return `input #${index} (${input.type} ${source} -> ${input.path})`;
}

function checkRelativePath(relativePath: string): void {
  const segments = relativePath.split("/");
  if (segments.some((s) => s === "" || s === "." || s === "..")) {
    throw new StorageError(`refusing listed path "${relativePath}" (empty, "." or ".." segment)`, {
      code: "INVALID_URL",
    });
  }
}

/**
 * Refuses to write `path` through a symbolic link: `base` (the input's own path) and every
 * component of `path` below it must not be one (a DIRECTORY input over a folder that holds a
 * link would otherwise write wherever the link points). Missing components are fine: they are
 * created as folders.
 */
async function refuseSymlinks(base: string, path: string): Promise<void> {
  const top = base.replace(/\/+$/, "") || "/";
  const rest = path === top ? [] : path.slice(top === "/" ? 1 : top.length + 1).split("/");
  let current = top;
  for (const part of ["", ...rest]) {
    if (part !== "") current = current === "/" ? `/${part}` : `${current}/${part}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(current);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    if (info.isSymlink) {
      throw new StorageError(
        `refusing to write ${path}: ${current} is a symbolic link (inputs are never written ` +
          "through one)",
        { code: "PERMISSION_DENIED" },
      );
    }
  }
}

async function writeStream(path: string, stream: ReadableStream<Uint8Array>): Promise<number> {
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  let size = 0;
  const counter = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      size += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true, create: true, truncate: true });
  } catch (error) {
    await stream.cancel().catch(() => {});
    throw error;
  }
  await stream.pipeThrough(counter).pipeTo(file.writable);
  return size;
}

/**
 * Downloads every input: inline `content` is written as UTF-8, a FILE URL is streamed to its
 * path, a DIRECTORY URL is listed and every file under it is streamed to `path` + its relative
 * path. Parent directories are created. Files are transferred in parallel (bounded).
 *
 * @param spec The transfer spec.
 * @param options Storage configuration and parallelism.
 * @returns How many files and bytes were written.
 * @throws {TransferError} On the first input that fails, naming the input, its redacted URL
 *   and the reason.
 *
 * @example Usage
 * ```ts ignore
 * import { downloadInputs } from "./inputs.ts";
 * const stats = await downloadInputs(spec, { config: { fileAllowList: ["/data"] } });
 * ```
 */
export async function downloadInputs(
  spec: TransferSpec,
  options: DownloadInputsOptions = {},
): Promise<TransferStats> {
  const { config = {}, parallelism = 4, progress } = options;
  const jobs: Job[] = [];
  for (const [index, input] of spec.inputs.entries()) {
    try {
      if (input.content !== undefined && input.type === "DIRECTORY") {
        // An empty directory placeholder: nothing to write but the directory itself.
        await Deno.mkdir(input.path, { recursive: true });
      } else if (input.content !== undefined) {
        jobs.push({ index, input, destination: input.path, content: input.content });
      } else if (input.url === undefined) {
        throw new StorageError("input has neither url nor content", { code: "INVALID_URL" });
      } else if (input.type === "DIRECTORY") {
        const storage = storageForUrl(input.url, config);
        const base = input.path.replace(/\/+$/, "");
        await Deno.mkdir(base || "/", { recursive: true });
        for await (const entry of storage.list(input.url)) {
          checkRelativePath(entry.relativePath);
          jobs.push({ index, input, destination: `${base}/${entry.relativePath}`, url: entry.url });
        }
      } else {
        jobs.push({ index, input, destination: input.path, url: input.url });
      }
    } catch (error) {
      throw new TransferError(`${describeInput(index, input)} failed: ${describeError(error)}`, {
        cause: error,
      });
    }
  }

  let failed = false;
  progress?.plan(jobs.length);
  const results = await runBounded(jobs, parallelism, async (job) => {
    if (failed) throw new Error("skipped after an earlier failure");
    try {
      await refuseSymlinks(job.input.path, job.destination);
      if (job.content !== undefined) {
        const bytes = new TextEncoder().encode(job.content);
        const slash = job.destination.lastIndexOf("/");
        if (slash > 0) await Deno.mkdir(job.destination.slice(0, slash), { recursive: true });
        await Deno.writeFile(job.destination, bytes);
        progress?.fileDone(`inline content -> ${job.destination}`, bytes.length, false);
        return bytes.length;
      }
      const url = job.url!;
      const stream = await storageForUrl(url, config).read(url);
      const size = await writeStream(
        job.destination,
        progress === undefined ? stream : progress.count(stream),
      );
      progress?.fileDone(url, size);
      return size;
    } catch (error) {
      failed = true;
      const where = job.url !== undefined && job.url !== job.input.url
        ? ` at "${redactUrl(job.url)}"`
        : "";
      throw new TransferError(
        `${describeInput(job.index, job.input)} failed${where}: ${describeError(error)}`,
        { cause: error },
      );
    }
  });
  let bytes = 0;
  for (const result of results) {
    if (result.status === "rejected" && result.reason instanceof TransferError) {
      throw result.reason;
    }
    if (result.status === "fulfilled") bytes += result.value;
  }
  return { files: jobs.length, bytes };
}
