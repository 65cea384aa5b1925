/**
 * Kubernetes-safe names and label values derived from task ids, which may hold any character.
 *
 * @module
 */

/** Annotation carrying the exact task id (the label holds a label-safe form of it). */
export const ANNOTATION_TASK_ID = "planetary.io/task-id";
/** Annotation carrying the task's name (names may hold anything, so never a label). */
export const ANNOTATION_TASK_NAME = "planetary.io/task-name";

const MAX_LABEL = 63;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * 64-bit FNV-1a over the UTF-8 bytes of `text`, as 16 hex digits: short, stable, and spread
 * enough that two ids folded to the same readable prefix still get different names.
 */
function hash64(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

/**
 * The name of a task's pod (and ConfigMap): `task-<id>`, a valid DNS-1123 label for ANY id.
 * An id that is already lowercase `[a-z0-9-]` and short enough is kept as is; any other id is
 * lowercased, every run of other characters becomes `-`, it is cut to fit, and a hash of the
 * original id is appended so that different ids never share a name.
 *
 * @param id The task id.
 * @returns A name matching `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, at most 63 characters.
 * @example
 * ```ts
 * import { podName } from "./pod_name.ts";
 * podName("d3adb33f"); // "task-d3adb33f"
 * podName("Weird ID/✓").length <= 63; // true
 * ```
 */
export function podName(id: string): string {
  const plain = `task-${id}`;
  if (plain.length <= MAX_LABEL && DNS_LABEL.test(plain)) return plain;
  const suffix = `-${hash64(id)}`;
  const readable = `task-${id.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`
    .slice(0, MAX_LABEL - suffix.length)
    .replace(/-+$/, "");
  return readable + suffix;
}

/**
 * A label value standing for `value`: `value` itself when it is a valid label value, otherwise
 * a readable prefix plus a hash (use the {@linkcode ANNOTATION_TASK_ID} annotation for the
 * exact id).
 *
 * @param value Any string.
 * @returns A valid label value (at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric ends).
 * @example
 * ```ts
 * import { labelValue } from "./pod_name.ts";
 * labelValue("abc"); // "abc"
 * ```
 */
export function labelValue(value: string): string {
  if (value.length <= MAX_LABEL && LABEL_VALUE.test(value)) return value;
  const suffix = hash64(value);
  const readable = value.replace(/[^A-Za-z0-9._-]+/g, "-")
    .slice(0, MAX_LABEL - suffix.length - 1)
    .replace(/^[^A-Za-z0-9]+/, "")
    .replace(/[^A-Za-z0-9]+$/, "");
  return readable ? `${readable}-${suffix}` : suffix;
}

/**
 * Tells whether a string is a valid Kubernetes label value.
 *
 * @param value The candidate.
 * @returns `true` when Kubernetes accepts it as a label value.
 */
export function isLabelValue(value: string): boolean {
  return value.length <= MAX_LABEL && LABEL_VALUE.test(value);
}
