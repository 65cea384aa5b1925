/**
 * Keeps SDK user-agent code from crashing a process that runs without `--allow-sys`.
 *
 * @module
 */
import os from "node:os";

let guarded = false;

/**
 * The Azure SDK builds its `User-Agent` from `os.release()`, which Deno refuses without
 * `--allow-sys=osRelease` — a permission the transporter does not otherwise need. When that
 * permission is not granted, `os.release()` answers `"unknown"` instead of throwing; when it
 * is granted nothing changes.
 */
export function guardOsRelease(): void {
  if (guarded) return;
  guarded = true;
  const state = Deno.permissions.querySync({ name: "sys", kind: "osRelease" }).state;
  if (state === "granted") return;
  (os as { release: () => string }).release = () => "unknown";
}
