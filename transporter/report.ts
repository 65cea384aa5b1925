/**
 * What each executor did, read from the state directory the executor wrapper writes.
 *
 * @module
 */
import { type ExecutorReport, STATE_DIR, type TransferSpec } from "../src/pod/layout.ts";
import { readTail } from "./tail.ts";

/**
 * Maps a path under the pod's {@linkcode STATE_DIR} to the same file under `stateDir`, so
 * that tests (and `PLANETARY_STATE_DIR`) can relocate the state directory. Other paths are
 * returned unchanged.
 *
 * @param path A path from the transfer spec.
 * @param stateDir The state directory in use.
 * @returns The path to read.
 */
export function relocateStatePath(path: string, stateDir: string): string {
  return path.startsWith(`${STATE_DIR}/`) ? `${stateDir}${path.slice(STATE_DIR.length)}` : path;
}

async function mtime(path: string): Promise<string | undefined> {
  try {
    const info = await Deno.stat(path);
    return info.mtime?.toISOString();
  } catch {
    return undefined;
  }
}

/**
 * Builds one {@linkcode ExecutorReport} per executor of the spec from the state directory:
 * the exit code from `exec-<i>.exit` (absent: the executor never ran), start/end times from
 * the mtimes of `exec-<i>.start`/`exec-<i>.exit` (RFC 3339), and the last `spec.tailBytes`
 * bytes of its stdout and stderr.
 *
 * @param spec The transfer spec.
 * @param stateDir The state directory (normally {@linkcode STATE_DIR}).
 * @returns The executor reports, in executor order.
 *
 * @example Usage
 * ```ts ignore
 * import { buildExecutorReports } from "./report.ts";
 * const reports = await buildExecutorReports(spec, "/planetary/state");
 * ```
 */
export async function buildExecutorReports(
  spec: TransferSpec,
  stateDir: string,
): Promise<ExecutorReport[]> {
  const reports: ExecutorReport[] = [];
  for (const [index, executor] of spec.executors.entries()) {
    const base = `${stateDir}/exec-${index}`;
    const report: ExecutorReport = {
      stdout: await readTail(relocateStatePath(executor.stdout, stateDir), spec.tailBytes),
      stderr: await readTail(relocateStatePath(executor.stderr, stateDir), spec.tailBytes),
    };
    let exitText: string | undefined;
    try {
      exitText = (await Deno.readTextFile(`${base}.exit`)).trim();
    } catch {
      exitText = undefined;
    }
    if (exitText !== undefined && /^-?\d+$/.test(exitText)) {
      report.exit_code = Number(exitText);
      const end = await mtime(`${base}.exit`);
      if (end !== undefined) report.end_time = end;
    }
    const start = await mtime(`${base}.start`);
    if (start !== undefined) report.start_time = start;
    reports.push(report);
  }
  return reports;
}
