/**
 * The Kubernetes termination message: a short reason read by whoever watches the pod.
 *
 * @module
 */

/** Kubernetes reads at most 4096 bytes of a termination message; stay below it. */
export const TERMINATION_MESSAGE_MAX_BYTES = 4000;

/** Default path of the termination message file in a Kubernetes container. */
export const DEFAULT_TERMINATION_LOG = "/dev/termination-log";

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
 * `PLANETARY_TERMINATION_LOG` (default {@linkcode DEFAULT_TERMINATION_LOG}). A file that cannot
 * be written (outside Kubernetes) is ignored.
 *
 * @param message Why the container failed (no secrets).
 * @returns Resolves once written or given up.
 */
export async function writeTerminationMessage(message: string): Promise<void> {
  const path = Deno.env.get("PLANETARY_TERMINATION_LOG") ?? DEFAULT_TERMINATION_LOG;
  try {
    await Deno.writeFile(path, truncateUtf8(message, TERMINATION_MESSAGE_MAX_BYTES));
  } catch {
    // not in a pod, or not writable: stderr already has the reason
  }
}
