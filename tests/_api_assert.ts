/**
 * Tiny assertions for the API suites (JSR's `@std/assert` is not reachable here).
 *
 * @module
 */
import { deepStrictEqual, notDeepStrictEqual } from "node:assert";

/** Asserts that a condition holds. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(message);
}

/** Asserts deep equality (Sets and Maps by content). */
export function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  deepStrictEqual(actual, expected, message);
}

/** Asserts deep inequality. */
export function assertNotEquals(actual: unknown, expected: unknown, message?: string): void {
  notDeepStrictEqual(actual, expected, message);
}

/** Asserts that a string matches a pattern. */
export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  if (!pattern.test(actual)) {
    throw new Error(message ?? `${JSON.stringify(actual)} does not match ${pattern}`);
  }
}
