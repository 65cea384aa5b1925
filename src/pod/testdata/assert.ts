/**
 * Test helper: the few assertions the pod tests use, over `node:assert/strict`.
 *
 * @module
 */
import nodeAssert from "node:assert/strict";

/** Asserts that `condition` is truthy. */
export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message);
}

/** Asserts that `condition` is falsy. */
export function assertFalse(condition: unknown, message?: string): void {
  nodeAssert.ok(!condition, message);
}

/** Asserts deep equality. */
export function assertEquals<T>(actual: unknown, expected: T, message?: string): void {
  nodeAssert.deepEqual(actual, expected, message);
}

/** Asserts that `text` matches `pattern`. */
export function assertMatch(text: string, pattern: RegExp, message?: string): void {
  nodeAssert.match(text, pattern, message);
}

/** Asserts that `fn` throws an error with `code` (and returns it). */
export function assertThrowsCode(fn: () => unknown, code: string): Error {
  try {
    fn();
  } catch (error) {
    nodeAssert.ok(error instanceof Error);
    nodeAssert.equal((error as Error & { code?: string }).code, code, error.message);
    return error;
  }
  throw new nodeAssert.AssertionError({ message: `expected an error with code ${code}` });
}
