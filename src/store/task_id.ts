/**
 * Task ids: opaque, unguessable, URL-safe, and valid as a DNS-1123 (and RFC 1035) label so
 * that a pod can be named after its task.
 *
 * @module
 */

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
const LETTERS = "abcdefghijklmnopqrstuvwxyz";

/** Shape of a task id: a letter, then 25 lowercase base32 characters. */
export const TASK_ID_PATTERN: RegExp = /^[a-z][a-z2-7]{25}$/;

/**
 * Makes a new task id: 26 characters, a lowercase letter then 25 base32 characters, about
 * 129 random bits from the system's secure generator.
 *
 * @returns The id.
 * @example
 * ```ts
 * import { newTaskId } from "./task_id.ts";
 * const id = newTaskId(); // "kq3v…" (26 characters)
 * ```
 */
export function newTaskId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(40));
  // First character: a letter, drawn without bias (234 = 9 × 26).
  let first = "";
  for (const byte of bytes.subarray(25)) {
    if (byte < 234) {
      first = LETTERS[byte % 26]!;
      break;
    }
  }
  if (first === "") first = LETTERS[crypto.getRandomValues(new Uint8Array(1))[0]! % 26]!;
  let id = first;
  for (const byte of bytes.subarray(0, 25)) id += BASE32[byte & 31];
  return id;
}

/**
 * Tells whether a string has the shape of a task id (it may still not exist).
 *
 * @param value A candidate id.
 * @returns `true` when it matches {@linkcode TASK_ID_PATTERN}.
 * @example
 * ```ts
 * import { isTaskId, newTaskId } from "./task_id.ts";
 * isTaskId(newTaskId()); // true
 * isTaskId("../etc"); // false
 * ```
 */
export function isTaskId(value: string): boolean {
  return TASK_ID_PATTERN.test(value);
}
