/**
 * Small HTTP helpers shared by the route modules: the Hono environment type, JSON answers with
 * a known length, and a JSON body reader that enforces the size limit while streaming.
 *
 * @module
 */
import { HttpError } from "./errors.ts";

/** Per-request values the middleware sets for the route handlers. */
export interface ApiEnv {
  /** Hono context variables. */
  Variables: {
    /** The request id (from `X-Request-Id` or generated). */
    requestId: string;
    /** The authenticated user, when authentication is on. */
    user: string | undefined;
  };
}

const encoder = new TextEncoder();

/**
 * Builds a JSON answer with an explicit `Content-Length` (so the request log knows its size).
 *
 * @param status The HTTP status.
 * @param value The JSON value.
 * @param headers Extra headers.
 * @returns The response.
 */
export function jsonResponse(
  status: number,
  value: unknown,
  headers: Readonly<Record<string, string>> = {},
): Response {
  const bytes = encoder.encode(JSON.stringify(value));
  return new Response(bytes, {
    status,
    headers: {
      ...headers,
      "content-type": "application/json; charset=utf-8",
      "content-length": String(bytes.byteLength),
    },
  });
}

/**
 * Throws the 405 of a known route called with a method it does not serve.
 *
 * @param method The method that was used.
 * @param allow The methods the route serves.
 * @returns Never.
 * @throws {HttpError} Always, with status 405 and the `Allow` header.
 */
export function methodNotAllowed(method: string, allow: readonly string[]): never {
  throw new HttpError(
    405,
    `Method ${method} is not allowed here; allowed: ${allow.join(", ")}`,
    { headers: { allow: allow.join(", ") } },
  );
}

/**
 * Tells whether a `Content-Type` header names JSON (`application/json`, with any parameters
 * such as `charset=utf-8`, or a `+json` suffix type).
 *
 * @param contentType The header value.
 * @returns Whether the body is declared as JSON.
 */
export function isJsonContentType(contentType: string): boolean {
  const mediaType = contentType.split(";", 1)[0]!.trim().toLowerCase();
  return mediaType === "application/json" ||
    (mediaType.startsWith("application/") && mediaType.endsWith("+json"));
}

/**
 * Reads and parses a JSON request body, refusing it as soon as it grows past `maxBytes`
 * (nothing beyond the limit is buffered).
 *
 * Content type policy: a `Content-Type` that is not JSON is refused with 415; a request with
 * no `Content-Type` at all is read as JSON, because some minimal HTTP clients omit the header
 * and the body must still parse as JSON to be accepted (py-tes, Cromwell and Nextflow all send
 * `application/json`).
 *
 * @param request The request.
 * @param maxBytes The largest accepted body in bytes.
 * @returns The parsed JSON value.
 * @throws {HttpError} 415 for a non-JSON content type, 413 over the limit, 400 for an empty
 * body, invalid UTF-8 or invalid JSON.
 */
export async function readJsonBody(request: Request, maxBytes: number): Promise<unknown> {
  const contentType = request.headers.get("content-type");
  if (contentType !== null && !isJsonContentType(contentType)) {
    throw new HttpError(
      415,
      `Content-Type must be application/json, got "${contentType.slice(0, 100)}"`,
    );
  }
  const tooLarge = (): HttpError =>
    new HttpError(413, `request body: larger than the limit of ${maxBytes} bytes`);
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await request.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (request.body !== null) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  if (total === 0) throw new HttpError(400, "request body: empty; expected a JSON task");
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new HttpError(400, "request body: not valid UTF-8", { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    const detail = cause instanceof SyntaxError ? `: ${cause.message.slice(0, 200)}` : "";
    throw new HttpError(400, `request body: not valid JSON${detail}`, { cause });
  }
}
