/**
 * The transporter: the program that runs INSIDE a task pod.
 *
 * ```sh
 * deno run --v8-flags=--optimize-for-size --allow-read --allow-write --allow-net --allow-env transporter/main.ts inputs  /planetary/spec/transfer.json
 * deno run --v8-flags=--optimize-for-size --allow-read --allow-write --allow-net --allow-env transporter/main.ts outputs /planetary/spec/transfer.json
 * ```
 *
 * - `inputs` downloads every input; on failure prints the reason to stderr, writes it to the
 *   termination message file and exits 1.
 * - `outputs` reads what the executors did from the state directory, uploads every output
 *   (also after an executor failure), prints exactly one line `PLANETARY_REPORT {json}` to
 *   stdout, and exits 1 when any upload failed. An output that does not exist after the
 *   executors (a wildcard that matches nothing) is not a failure: the report's `warnings`
 *   name it, and the task's state comes from its executors.
 * - Both log progress to stderr (see `TransferProgress`): a line per finished file while there
 *   are at most 50 (or for any file of 64 MiB or more), running totals every 10 s, and a summary
 *   (files, bytes, MB/s) at the end.
 *
 * Environment: `PLANETARY_STATE_DIR` (overrides the state directory),
 * `PLANETARY_TERMINATION_LOG` (default `/dev/termination-log`), `PLANETARY_FILE_ALLOW_LIST`
 * (`:`-separated directories for `file://` URLs), `PLANETARY_REPORT_RSS=1` (print the peak
 * resident memory, sampled, to stderr at exit).
 *
 * @module
 */
import {
  REPORT_PREFIX,
  STATE_DIR,
  type TransferReport,
  type TransferSpec,
} from "../src/pod/layout.ts";
import { downloadInputs } from "./inputs.ts";
import { uploadOutputs } from "./outputs.ts";
import { TransferProgress } from "./progress.ts";
import { buildExecutorReports } from "./report.ts";
import { storageConfigFromEnv } from "./storage_config.ts";
import { writeTerminationMessage } from "./termination.ts";
import { boundedList, describeError } from "./transfer_error.ts";

/**
 * The exact `deno run` permission flags the transporter needs (no `--allow-run`, no `-A`). No
 * `--allow-sys`: on GKE or GCE, Google's default credentials then find the metadata server only
 * with `METADATA_SERVER_DETECTION=ping-only` in the transporter's environment (without it they
 * would read the network interfaces first).
 */
export const TRANSPORTER_PERMISSIONS: readonly string[] = Object.freeze([
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
]);

/**
 * The V8 flags the transporter runs with, under `deno run` (also in `src/server/execution.ts`)
 * and baked in by `deno compile` (deno.json `compile:transporter`). `--optimize-for-size` makes
 * V8 collect garbage sooner: the network chunks and part buffers of a transfer die young, and
 * with V8's defaults 70–150 MiB of dead ones piled up before a collection, which put the
 * transporter above its 200 MiB budget (bench/README.md, `bench/storage.ts`). It costs some CPU.
 *
 * @example Usage
 * ```ts
 * import { TRANSPORTER_PERMISSIONS, TRANSPORTER_V8_FLAGS } from "./main.ts";
 * ["deno", "run", ...TRANSPORTER_V8_FLAGS, ...TRANSPORTER_PERMISSIONS, "transporter/main.ts"];
 * ```
 */
export const TRANSPORTER_V8_FLAGS: readonly string[] = Object.freeze([
  "--v8-flags=--optimize-for-size",
]);

const USAGE = "usage: transporter/main.ts inputs|outputs <spec.json>";

function log(message: string): void {
  console.error(`planetary-transporter: ${message}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads and checks the shape of a transfer spec file.
 *
 * @param path The spec file.
 * @returns The spec.
 * @throws {Error} When it cannot be read or is not a version 1 spec.
 */
export async function readTransferSpec(path: string): Promise<TransferSpec> {
  const value: unknown = JSON.parse(await Deno.readTextFile(path));
  if (
    !isObject(value) || value.version !== 1 || !Array.isArray(value.inputs) ||
    !Array.isArray(value.outputs) || !Array.isArray(value.executors) ||
    typeof value.tailBytes !== "number"
  ) {
    throw new Error(`${path} is not a version 1 transfer spec`);
  }
  return value as unknown as TransferSpec;
}

function summary(mode: string, files: number, bytes: number, startedAt: number): string {
  const seconds = Math.max((performance.now() - startedAt) / 1000, 0.001);
  const rate = bytes / 1e6 / seconds;
  return `${mode}: ${files} files, ${bytes} bytes in ${seconds.toFixed(2)} s (${
    rate.toFixed(1)
  } MB/s)`;
}

async function runInputs(specPath: string): Promise<number> {
  const startedAt = performance.now();
  try {
    const spec = await readTransferSpec(specPath);
    const progress = new TransferProgress({ mode: "inputs", log });
    try {
      const stats = await downloadInputs(spec, { config: storageConfigFromEnv(), progress });
      log(summary("inputs", stats.files, stats.bytes, startedAt));
    } finally {
      progress.stop();
    }
    return 0;
  } catch (error) {
    const reason = `downloading inputs failed: ${boundedList([describeError(error)]).join("")}`;
    log(reason);
    await writeTerminationMessage(reason);
    return 1;
  }
}

async function runOutputs(specPath: string): Promise<number> {
  const startedAt = performance.now();
  const report: TransferReport = { version: 1, executors: [], outputs: [] };
  let code = 0;
  try {
    const spec = await readTransferSpec(specPath);
    const stateDir = Deno.env.get("PLANETARY_STATE_DIR") ?? STATE_DIR;
    report.executors = await buildExecutorReports(spec, stateDir);
    const progress = new TransferProgress({ mode: "outputs", log });
    const result = await uploadOutputs(spec, { config: storageConfigFromEnv(), progress })
      .finally(() => progress.stop());
    report.outputs = result.outputs;
    if (result.warnings.length > 0) {
      // Bounded: the warnings become lines of the task's system_logs.
      report.warnings = boundedList(result.warnings, {
        more: (n) => `… and ${n} more outputs are missing`,
      });
      for (const warning of report.warnings) log(warning);
    }
    log(summary("outputs", result.outputs.length, result.bytes, startedAt));
    if (result.errors.length > 0) {
      const errors = boundedList(result.errors, {
        more: (n) => `… and ${n} more outputs failed`,
      });
      report.error = `uploading outputs failed: ${errors.join("; ")}`;
    }
  } catch (error) {
    report.error = `uploading outputs failed: ${boundedList([describeError(error)]).join("")}`;
  }
  if (report.error !== undefined) {
    log(report.error);
    await writeTerminationMessage(report.error);
    code = 1;
  }
  console.log(REPORT_PREFIX + JSON.stringify(report));
  return code;
}

/**
 * Samples the resident set size while the transporter runs, for `PLANETARY_REPORT_RSS=1`.
 * `/proc/self/status` (`VmHWM`) needs `--allow-all` once `--allow-write` is granted, and
 * getrusage's maxrss keeps the parent's size across fork+exec, so sampling is the honest
 * in-process figure.
 */
function startMemorySampler(): (() => void) | undefined {
  if (Deno.env.get("PLANETARY_REPORT_RSS") !== "1") return undefined;
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, Deno.memoryUsage().rss);
  }, 20);
  Deno.unrefTimer(timer);
  return () => {
    clearInterval(timer);
    peak = Math.max(peak, Deno.memoryUsage().rss);
    log(`peak RSS (sampled every 20 ms): ${Math.round(peak / 1024)} kB`);
  };
}

/**
 * Runs the transporter with command-line arguments.
 *
 * @param args `["inputs" | "outputs", specPath]`.
 * @returns The process exit code: 0 success, 1 transfer failure, 2 usage error.
 */
export async function main(args: readonly string[]): Promise<number> {
  const [mode, specPath, ...rest] = args;
  const stopSampler = startMemorySampler();
  let code: number;
  if (specPath === undefined || rest.length > 0 || (mode !== "inputs" && mode !== "outputs")) {
    console.error(USAGE);
    code = 2;
  } else {
    code = mode === "inputs" ? await runInputs(specPath) : await runOutputs(specPath);
  }
  stopSampler?.();
  return code;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
