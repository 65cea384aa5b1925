/**
 * Turns errors thrown by cloud SDKs into {@linkcode StorageError}s whose messages and causes
 * hold no secret: the SDK's own error (which may carry request URLs with SAS tokens, headers
 * or the string that was signed) is never kept; only its name, status and a scrubbed message.
 *
 * @module
 */
import { redactText } from "./redact_url.ts";
import { StorageError, StorageNotFoundError, StoragePermissionError } from "./storage_error.ts";

/** Codes and messages that say nothing (a bodiless HEAD answer, a generic class name). */
const UNINFORMATIVE = new Set(["", "Error", "Unknown", "UnknownError", "RestError", "TypeError"]);

/** What is known about a failed SDK call. */
export interface CloudFailure {
  /** HTTP status, when a response was received. */
  status?: number | undefined;
  /** The service's error code (`NoSuchKey`, `AuthenticationFailed`, …). */
  code?: string | undefined;
  /** The SDK error's message (scrubbed before use). */
  message: string;
}

/**
 * Reads the status, code and message out of an error thrown by the AWS, Azure or Google SDK.
 *
 * @param error Anything thrown.
 * @returns The status, service code and message.
 */
export function cloudFailure(error: unknown): CloudFailure {
  if (typeof error !== "object" || error === null) return { message: String(error) };
  const e = error as Record<string, unknown>;
  const meta = e.$metadata as Record<string, unknown> | undefined;
  const response = e.response as Record<string, unknown> | undefined;
  const statusCandidates = [
    meta?.httpStatusCode,
    e.statusCode,
    e.code,
    e.status,
    response?.status,
    response?.statusCode,
  ];
  const status = statusCandidates.find((s): s is number =>
    typeof s === "number" && s >= 100 && s < 600
  );
  const codeCandidates = [e.Code, e.code, e.name];
  const code = codeCandidates.find((c): c is string =>
    typeof c === "string" && !UNINFORMATIVE.has(c)
  );
  const raw = typeof e.message === "string" ? e.message : String(error);
  const message = UNINFORMATIVE.has(raw) ? "" : raw;
  return { status, code, message };
}

/**
 * Removes every occurrence of the given secret values (and URLs' query strings) from a text.
 *
 * @param text Free text.
 * @param secrets Secret values (keys, SAS tokens, connection-string parts) to blank out.
 * @returns The text with `***` in place of each secret.
 */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = redactText(text);
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join("***");
  }
  // Signatures and keys that reach a message some other way (headers, XML bodies).
  out = out.replace(/(sig|signature|x-amz-signature|x-goog-signature)=[^&\s"'<]+/gi, "$1=***");
  out = out.replace(/(AccountKey|SharedAccessSignature|Signature)=[^;\s"'<]+/gi, "$1=***");
  out = out.replace(/<StringToSign[^>]*>[\s\S]*?<\/StringToSign[^>]*>/gi, "");
  out = out.replace(/Signature did not match\.[\s\S]*/i, "Signature did not match.");
  return out.length > 300 ? `${out.slice(0, 300)}…` : out;
}

/** Options of {@linkcode toStorageError}. */
export interface ToStorageErrorOptions {
  /** The URL concerned (redacted in the message). */
  url: string;
  /** What was being done, e.g. `"S3 GetObject"`. */
  operation: string;
  /** Secret values to blank out of any text. @default {[]} */
  secrets?: readonly string[];
}

/**
 * Maps an SDK error to a storage error: 404 → {@linkcode StorageNotFoundError}, 401/403 and
 * credential errors → {@linkcode StoragePermissionError}, anything else → `IO_ERROR`. The
 * `cause` is a plain `Error` carrying only the scrubbed message, never the SDK's object.
 *
 * @param error Anything thrown by an SDK.
 * @param options URL, operation and secrets.
 * @returns The storage error to throw.
 */
export function toStorageError(error: unknown, options: ToStorageErrorOptions): StorageError {
  if (error instanceof StorageError) return error;
  const { url, operation, secrets = [] } = options;
  const failure = cloudFailure(error);
  const message = scrubSecrets(failure.message, secrets);
  const cause = new Error(message);
  cause.name = typeof (error as { name?: unknown })?.name === "string"
    ? (error as { name: string }).name
    : "Error";
  const code = failure.code ?? "";
  const what = [
    failure.status === undefined ? undefined : `HTTP ${failure.status}`,
    code === "" || /^\d+$/.test(code) ? undefined : code,
  ].filter((s) => s !== undefined).join(" ");
  if (
    failure.status === 404 || /^(NoSuchKey|NotFound|BlobNotFound|ContainerNotFound)$/.test(code)
  ) {
    return new StorageNotFoundError(url, cause);
  }
  if (
    failure.status === 401 || failure.status === 403 ||
    /^(AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|AuthenticationFailed|AuthorizationFailure|CredentialsProviderError|ExpiredToken|InvalidToken)$/
      .test(code)
  ) {
    const reason = `${operation}: ${what || "credentials refused"}${
      message ? ` — ${message}` : ""
    }`;
    return new StoragePermissionError(reason, url, cause);
  }
  return new StorageError(`${operation} failed (${what ? `${what}: ` : ""}${message})`, {
    code: "IO_ERROR",
    url,
    cause,
  });
}
