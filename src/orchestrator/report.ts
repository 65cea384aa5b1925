/**
 * Reading the transporter's report back from the `outputs` container's log.
 *
 * @module
 */
import { REPORT_PREFIX, type TransferReport } from "../pod/layout.ts";

/**
 * Finds the report line in the log of a task pod's `outputs` container and parses it.
 *
 * @param log The whole container log.
 * @returns The report, or undefined when the log holds no valid report line.
 * @example
 * ```ts
 * import { parseTransferReport } from "./report.ts";
 * const log = 'uploading\nPLANETARY_REPORT {"version":1,"executors":[],"outputs":[]}\n';
 * parseTransferReport(log)?.outputs.length; // 0
 * ```
 */
export function parseTransferReport(log: string): TransferReport | undefined {
  const lines = log.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = (lines[i] ?? "").replace(/\r$/, "");
    const at = line.indexOf(REPORT_PREFIX);
    if (at < 0) continue;
    try {
      const value: unknown = JSON.parse(line.slice(at + REPORT_PREFIX.length));
      if (isReport(value)) return value;
    } catch {
      // a truncated or foreign line: keep looking further up
    }
  }
  return undefined;
}

function isReport(value: unknown): value is TransferReport {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return v.version === 1 && Array.isArray(v.executors) && Array.isArray(v.outputs);
}
