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

/** Options of {@linkcode readJsonBody} and {@linkcode readCancelBody}. */
export interface ReadBodyOptions {
  /** The largest accepted body in bytes. */
  maxBytes: number;
  /** How long the body may take to arrive completely, in milliseconds. */
  timeoutMs: number;
}

/**
 * Reads and parses a JSON request body, refusing it as soon as it grows past `maxBytes`
 * (nothing beyond the limit is buffered) or when it has not arrived within `timeoutMs`.
 *
 * Content type policy: the request must declare `Content-Type: application/json` (any
 * parameters, or a `+json` type); anything else, and a missing header, is refused with 415.
 * A web page can send a POST without a CORS preflight only as a "simple request", whose
 * content type is `text/plain`, a form type, or absent; requiring JSON means no page can make
 * the server run a command on its user's behalf. py-tes, Cromwell, Nextflow and Funnel's
 * client all send `application/json` with a task.
 *
 * @param request The request.
 * @param options The size limit and the time limit.
 * @returns The parsed JSON value.
 * @throws {HttpError} 415 for a missing or non-JSON content type, 413 over the limit, 408 when
 * the body is too slow, 400 for an empty body, invalid UTF-8, invalid JSON, or a string that
 * is not well-formed Unicode (a lone surrogate escape), named by its path.
 */
export async function readJsonBody(request: Request, options: ReadBodyOptions): Promise<unknown> {
  const contentType = request.headers.get("content-type");
  if (contentType === null) {
    await request.body?.cancel().catch(() => {});
    throw new HttpError(
      415,
      "Content-Type: missing; send the task with Content-Type: application/json",
    );
  }
  requireJsonContentType(contentType);
  const bytes = await readBodyBytes(request, options);
  if (bytes.byteLength === 0) throw new HttpError(400, "request body: empty; expected a JSON task");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new HttpError(400, "request body: not valid UTF-8", { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    const detail = cause instanceof SyntaxError ? `: ${cause.message.slice(0, 200)}` : "";
    throw new HttpError(400, `request body: not valid JSON${detail}`, { cause });
  }
  const illFormed = findIllFormedString(value);
  if (illFormed !== undefined) {
    // A `\ud800` escape is valid JSON but not Unicode: PostgreSQL refuses it in jsonb, and no
    // UTF-8 text can carry it to a pod. Refused here for every field, named by its path.
    throw new HttpError(
      400,
      `${illFormed}: not valid Unicode (a lone UTF-16 surrogate escape such as \\ud800); ` +
        "send well-formed text",
    );
  }
  return value;
}

/**
 * Finds the first string (value or key) in a parsed JSON value that is not well-formed
 * Unicode. Iterative, so that a deeply nested body cannot overflow the stack.
 *
 * @param root The parsed value.
 * @returns Its path (`inputs[0].name`, `tags` for a key of `tags`, `request body` for the
 * root), or undefined when every string is well formed.
 */
function findIllFormedString(root: unknown): string | undefined {
  const stack: [unknown, string][] = [[root, ""]];
  const show = (path: string): string => path === "" ? "request body" : path;
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (typeof value === "string") {
      if (!value.isWellFormed()) return show(path);
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => stack.push([item, `${path}[${index}]`]));
    } else if (value !== null && typeof value === "object") {
      for (const [key, item] of Object.entries(value)) {
        if (!key.isWellFormed()) return `${show(path)} (a key)`;
        stack.push([item, path === "" ? key : `${path}.${key}`]);
      }
    }
  }
  return undefined;
}

/**
 * Checks the body of `POST /tasks/{id}:cancel`, which carries nothing the server reads.
 *
 * A JSON content type is accepted with any body (py-tes sends `{}` as `application/json`). The
 * one exception to "every POST declares JSON" is a cancel with NO `Content-Type` and an EMPTY
 * body: that is what Cromwell's TES backend sends (an akka-http `HttpRequest` with the default
 * empty entity, in `TesAsyncBackendJobExecutionActor.tryAbort`). It is accepted because it
 * carries nothing to parse and a page that sends it blind must still guess an unguessable task
 * id; a missing content type with a non-empty body, or a non-JSON type, is refused with 415.
 *
 * @param request The request.
 * @param options The time limit (and a size limit for reading a JSON body).
 * @returns Nothing, once the body is known to be acceptable.
 * @throws {HttpError} 415 for a non-JSON content type or an undeclared non-empty body, 408
 * when the body is too slow.
 */
export async function readCancelBody(request: Request, options: ReadBodyOptions): Promise<void> {
  const contentType = request.headers.get("content-type");
  if (contentType !== null) {
    requireJsonContentType(contentType);
    // Nothing in the body is used: do not wait for it.
    await request.body?.cancel().catch(() => {});
    return;
  }
  await readBodyBytes(request, { ...options, maxBytes: 0 }).catch((error: unknown) => {
    if (error instanceof HttpError && error.status === 413) {
      throw new HttpError(
        415,
        "Content-Type: missing on a non-empty body; send Content-Type: application/json",
      );
    }
    throw error;
  });
}

function requireJsonContentType(contentType: string): void {
  if (!isJsonContentType(contentType)) {
    throw new HttpError(
      415,
      `Content-Type must be application/json, got "${contentType.slice(0, 100)}"`,
    );
  }
}

/**
 * Reads a whole request body into memory within the size and time limits.
 *
 * @param request The request.
 * @param options The limits.
 * @returns The bytes (empty when there is no body).
 * @throws {HttpError} 413 over the limit, 408 when not complete within the time limit.
 */
async function readBodyBytes(request: Request, options: ReadBodyOptions): Promise<Uint8Array> {
  const { maxBytes, timeoutMs } = options;
  const tooLarge = (): HttpError =>
    new HttpError(413, `request body: larger than the limit of ${maxBytes} bytes`);
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await request.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (request.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    for (;;) {
      const result = await Promise.race([reader.read(), timedOut]);
      if (result === "timeout") {
        await reader.cancel().catch(() => {});
        const seconds = timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`;
        throw new HttpError(
          408,
          `request body: not received within ${seconds}; send the whole body without pausing`,
        );
      }
      if (result.done) break;
      total += result.value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(result.value);
    }
  } finally {
    clearTimeout(timer);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
