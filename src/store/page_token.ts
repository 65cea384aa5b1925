/**
 * Opaque page tokens of task listings: a keyset cursor (the `seq` of the last task of a page)
 * bound to the filters of the listing, so that a token cannot be replayed on another query.
 *
 * @module
 */
import { InvalidPageTokenError } from "./task_store.ts";

/** The filters a page token is bound to. */
export interface PageTokenFilters {
  /** Name prefix (empty = none). */
  namePrefix?: string;
  /** State filter. */
  state?: string;
  /** Tag filters. */
  tags?: Record<string, string>;
  /** Owner restriction. */
  owner?: string;
}

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{1,200}$/;
const DECODED_SHAPE = /^v1\.(\d{1,19})\.([0-9a-f]{16})$/;

/**
 * Fingerprints a listing's filters (16 hex digits of SHA-256 of their canonical form).
 *
 * @param filters The filters.
 * @returns The fingerprint.
 */
export async function fingerprintFilters(filters: PageTokenFilters): Promise<string> {
  const tags = Object.entries(filters.tags ?? {}).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
  const canonical = JSON.stringify([
    filters.namePrefix ?? "",
    filters.state ?? "",
    tags,
    filters.owner ?? null,
  ]);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical));
  return [...new Uint8Array(digest).subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/**
 * Builds the token of the page that follows the task with sequence number `seq`.
 *
 * @param seq The `seq` of the last task of the current page (decimal string).
 * @param fingerprint The listing's {@linkcode fingerprintFilters}.
 * @returns A URL-safe token.
 * @example
 * ```ts
 * import { decodePageToken, encodePageToken } from "./page_token.ts";
 * const token = encodePageToken("42", "0123456789abcdef");
 * decodePageToken(token, "0123456789abcdef"); // "42"
 * ```
 */
export function encodePageToken(seq: string, fingerprint: string): string {
  return btoa(`v1.${seq}.${fingerprint}`).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}

/**
 * Reads a token back.
 *
 * @param token A token from {@linkcode encodePageToken}.
 * @param fingerprint The current listing's {@linkcode fingerprintFilters}.
 * @returns The cursor: list tasks with `seq` below it.
 * @throws {InvalidPageTokenError} When the token is garbage or belongs to other filters.
 */
export function decodePageToken(token: string, fingerprint: string): string {
  if (!TOKEN_SHAPE.test(token)) throw new InvalidPageTokenError();
  let text: string;
  try {
    text = atob(token.replace(/-/g, "+").replace(/_/g, "/"));
  } catch (cause) {
    throw new InvalidPageTokenError({ cause });
  }
  const match = DECODED_SHAPE.exec(text);
  if (match === null || match[2] !== fingerprint) throw new InvalidPageTokenError();
  const seq = match[1]!;
  if (BigInt(seq) > 9223372036854775807n) throw new InvalidPageTokenError();
  return seq;
}
