/**
 * The Kubernetes termination message: a short reason read by whoever watches the pod.
 *
 * @module
 */

/** Kubernetes reads at most 4096 bytes of a termination message; stay below it. */
export const TERMINATION_MESSAGE_MAX_BYTES = 4000;

/**
 * Default path of the termination message file: the `terminationMessagePath` the pod builder
 * gives the transporter containers (`src/pod/build_task_pod.ts`). Not Kubernetes' default
 * `/dev/termination-log`: Deno refuses to write anything under `/dev` without `--allow-all`,
 * which the transporter does not get. The kubelet (and the local backend) bind a per-container
 * file at whatever path the container names.
 */
export const DEFAULT_TERMINATION_LOG = "/planetary/termination-log";

/**
 * Cuts text to at most `maxBytes` UTF-8 bytes without splitting a character.
 *
 * @param text The text.
 * @param maxBytes The byte budget.
 * @returns The encoded, cut text.
 */
export function truncateUtf8(text: string, maxBytes: number): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return bytes;
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/**
 * Writes the termination message (at most {@linkcode TERMINATION_MESSAGE_MAX_BYTES} bytes) to
 * `PLANETARY_TERMINATION_LOG` (default {@linkcode DEFAULT_TERMINATION_LOG}). Outside a pod (no
 * such file, or its folder missing) nothing is written; any other failure is told on stderr,
 * never thrown: the caller's own stderr line already holds the reason.
 *
 * @param message Why the container failed (no secrets).
 * @returns Resolves once written or given up; true when the message was written.
 * @example
 * ```ts ignore
 * import { writeTerminationMessage } from "./termination.ts";
 * await writeTerminationMessage("downloading inputs failed: HTTP 404");
 * ```
 */
export async function writeTerminationMessage(message: string): Promise<boolean> {
  const path = Deno.env.get("PLANETARY_TERMINATION_LOG") ?? DEFAULT_TERMINATION_LOG;
  try {
    await Deno.writeFile(path, truncateUtf8(message, TERMINATION_MESSAGE_MAX_BYTES));
    return true;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      const why = error instanceof Error ? error.message : String(error);
      console.error(
        `planetary-transporter: cannot write the termination message to ${path}: ${why}`,
      );
    }
    return false;
  }
}
