/**
 * The documented size limits of a task's string fields, in UTF-8 bytes. A longer value is
 * refused with a 400 naming the field, before it can reach the database (PostgreSQL refuses an
 * index entry above about 2.7 KB: task names and tags are indexed) or a pod spec.
 *
 * The same limits apply to the list filters (`name_prefix`, `tag_key`, `tag_value`).
 *
 * @module
 */

/** Largest UTF-8 size, in bytes, of each kind of string field of a task. */
export const TES_STRING_LIMITS: Readonly<{
  /** `name` of a task, input or output; also `name_prefix`. */
  name: number;
  /** `description` of a task, input or output. */
  description: number;
  /** A key of `tags`; also `tag_key`. */
  tagKey: number;
  /** A value of `tags`; also `tag_value`. */
  tagValue: number;
  /** One entry of `resources.zones`. */
  zone: number;
  /** A key of `resources.backend_parameters`. */
  backendParameterKey: number;
  /** A value of `resources.backend_parameters`. */
  backendParameterValue: number;
  /** A container path: input/output `path` and `path_prefix`, `volumes`, executor `workdir`, `stdin`, `stdout`, `stderr`. */
  path: number;
  /** An input or output `url`. */
  url: number;
  /** An executor `image`. */
  image: number;
  /** A key of an executor's `env`. */
  envKey: number;
  /** A task id in a request path. */
  taskId: number;
}> = Object.freeze({
  name: 2048,
  description: 65536,
  tagKey: 256,
  tagValue: 2048,
  zone: 256,
  backendParameterKey: 256,
  backendParameterValue: 2048,
  path: 4096,
  url: 8192,
  image: 2048,
  envKey: 256,
  taskId: 256,
});

/**
 * The UTF-8 size of a string in bytes, without encoding it when it is clearly short enough.
 *
 * @param value The string.
 * @param limit The limit it is compared with.
 * @returns The size in bytes when it may exceed `limit`, else a value not above `limit`.
 * @example
 * ```ts
 * import { utf8Length } from "./limits.ts";
 * utf8Length("é", 100); // at most 100
 * utf8Length("éé", 3); // 4
 * ```
 */
export function utf8Length(value: string, limit: number): number {
  // UTF-8 takes at most 3 bytes per UTF-16 code unit.
  if (value.length * 3 <= limit) return value.length;
  return new TextEncoder().encode(value).byteLength;
}

/**
 * Checks one string that reaches the database outside a task body: a list filter
 * (`name_prefix`, `tag_key`, `tag_value`, `page_token`) or the task id in a request path.
 *
 * @param value The decoded value.
 * @param field The name to report, for example `"name_prefix"` or `"id"`.
 * @param limit Largest UTF-8 size in bytes, usually one of {@linkcode TES_STRING_LIMITS}.
 * @returns A problem message that names `field` (for a 400), or `undefined` when the value is fine.
 * @example
 * ```ts
 * import { checkQueryString, TES_STRING_LIMITS } from "./limits.ts";
 * checkQueryString("run-", "name_prefix", TES_STRING_LIMITS.name); // undefined
 * checkQueryString("a\u0000b", "tag_key", TES_STRING_LIMITS.tagKey);
 * // "tag_key: must not contain NUL bytes"
 * ```
 */
export function checkQueryString(value: string, field: string, limit: number): string | undefined {
  if (value.includes("\u0000")) return `${field}: must not contain NUL bytes`;
  const size = utf8Length(value, limit);
  if (size > limit) return `${field}: too long: ${size} bytes (at most ${limit})`;
  return undefined;
}
