/**
 * Whether the local backend's host runtime can run here (for tests that need it).
 *
 * @module
 */
import { requireComponent, which } from "./component.ts";
import { HostRuntime } from "../../src/orchestrator/backends/local/host_runtime.ts";

/**
 * Checks that util-linux `unshare` exists and the host runtime's own check passes (root, or user
 * namespaces with overlayfs).
 *
 * @returns Whether task containers can run on this machine.
 */
export async function hostRuntimeWorks(): Promise<boolean> {
  if (!which("unshare")) return false;
  try {
    await new HostRuntime().ensureAvailable();
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a test that needs the host runtime may run: false (a skip with one line) on a laptop
 * without it; under `CI=true` the test runs and fails instead (see {@linkcode requireComponent}).
 *
 * @returns Whether to run the test.
 */
export async function requireHostRuntime(): Promise<boolean> {
  return requireComponent(
    await hostRuntimeWorks(),
    "host runtime: needs util-linux `unshare` and root or user namespaces with overlayfs",
  );
}
