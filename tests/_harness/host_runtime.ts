/**
 * Whether the local backend's host runtime can run here (for tests that need it).
 *
 * @module
 */
import { which } from "./component.ts";
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
