/**
 * Bearer tokens read from a file, so that they can come from a mounted Kubernetes Secret rather
 * than from a config file or ConfigMap. The file holds one JSON object of token → owner:
 *
 * ```json
 * { "3f9c…long random token…": "alice", "8b21…": "pipeline-bot" }
 * ```
 *
 * The services read the file named by `PLANETARY_AUTH_TOKENS_FILE` once, at start. Errors name
 * the file, the line and the column, and never repeat a token.
 *
 * @module
 */
import type { ApiConfig } from "./config.ts";

/** The environment variable naming the tokens file. */
export const AUTH_TOKENS_FILE_ENV = "PLANETARY_AUTH_TOKENS_FILE";

/** Raised when the tokens file cannot be read or is not a valid token → owner object. */
export class AuthTokensFileError extends Error {
  /** Stable error code. */
  readonly code = "AUTH_TOKENS_FILE";
  /**
   * Builds the error.
   *
   * @param message What is wrong and where (file, line, column); never a token.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthTokensFileError";
  }
}

/** What a bearer token may hold: visible ASCII, no spaces (what `Authorization` can carry). */
const TOKEN = /^[\x21-\x7e]+$/;
/** Whether a character code is a C0 control character or DEL. */
function isControl(code: number): boolean {
  return code < 0x20 || code === 0x7f;
}
const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

/**
 * Parses the text of a tokens file: one JSON object whose keys are bearer tokens and whose
 * values are the owners they authenticate. A small parser of its own (not `JSON.parse`, whose
 * messages quote the text) so that a message gives the line and column and never a token.
 *
 * @param text The file's text.
 * @param source Where it came from (the file name), for messages.
 * @returns Token → owner, at least one entry.
 * @throws {AuthTokensFileError} When the text is empty, not such an object, holds no token, a
 * token with spaces or control characters, an empty owner, or the same token twice.
 * @example
 * ```ts
 * import { parseAuthTokens } from "./auth_tokens_file.ts";
 * parseAuthTokens('{"4c1d0b2e9f": "alice"}', "tokens.json"); // { "4c1d0b2e9f": "alice" }
 * ```
 */
export function parseAuthTokens(text: string, source: string): Record<string, string> {
  let i = text.startsWith("\uFEFF") ? 1 : 0;
  const fail = (what: string, at = i): never => {
    const before = text.slice(0, at);
    const line = before.split("\n").length;
    const column = at - before.lastIndexOf("\n");
    throw new AuthTokensFileError(`${source}: line ${line}, column ${column}: ${what}`);
  };
  const skipSpace = (): void => {
    while (i < text.length && " \t\r\n".includes(text[i]!)) i++;
  };
  const readString = (): string => {
    const start = i;
    i++; // the opening quote
    let out = "";
    for (;;) {
      if (i >= text.length) return fail("a string is not closed", start);
      const char = text[i]!;
      if (char === '"') {
        i++;
        return out;
      }
      if (char.charCodeAt(0) < 0x20) {
        return fail("a control character (a line break?) inside a string");
      }
      if (char !== "\\") {
        out += char;
        i++;
        continue;
      }
      const escape = text[i + 1] ?? "";
      if (escape === "u") {
        const hex = text.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) return fail("a \\u escape needs four hex digits");
        out += String.fromCharCode(parseInt(hex, 16));
        i += 6;
      } else if (escape in ESCAPES) {
        out += ESCAPES[escape];
        i += 2;
      } else {
        return fail("an unknown escape after a backslash");
      }
    }
  };

  skipSpace();
  if (i >= text.length) {
    throw new AuthTokensFileError(
      `${source}: the file is empty; it must hold a JSON object {"<token>": "<owner>", …}`,
    );
  }
  if (text[i] !== "{") fail('expected a JSON object {"<token>": "<owner>", …}');
  i++;
  const tokens = new Map<string, string>();
  const lines = new Map<string, number>();
  skipSpace();
  if (text[i] === "}") {
    i++;
  } else {
    for (;;) {
      skipSpace();
      const tokenAt = i;
      if (text[i] !== '"') fail("expected a token in double quotes");
      const token = readString();
      skipSpace();
      if (text[i] !== ":") fail("expected ':' after the token");
      i++;
      skipSpace();
      const ownerAt = i;
      if (text[i] !== '"') fail("the owner must be a string in double quotes");
      const owner = readString();
      if (!TOKEN.test(token)) {
        fail("a token must be visible ASCII characters without spaces", tokenAt);
      }
      const seen = lines.get(token);
      if (seen !== undefined) fail(`this token already appears on line ${seen}`, tokenAt);
      if (owner.trim() === "" || [...owner].some((c) => isControl(c.charCodeAt(0)))) {
        fail("the owner must be a non-empty name without control characters", ownerAt);
      }
      tokens.set(token, owner);
      lines.set(token, text.slice(0, tokenAt).split("\n").length);
      skipSpace();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "}") {
        i++;
        break;
      }
      fail("expected ',' or '}' after an entry");
    }
  }
  skipSpace();
  if (i < text.length) fail("unexpected text after the JSON object");
  if (tokens.size === 0) {
    throw new AuthTokensFileError(
      `${source}: holds no token; authentication would be off (unset ${AUTH_TOKENS_FILE_ENV} ` +
        `to run without it)`,
    );
  }
  // fromEntries defines own properties, so even a token "__proto__" stays a plain entry
  return Object.fromEntries(tokens);
}

/**
 * Reads and parses a tokens file.
 *
 * @param path The file.
 * @returns Token → owner, at least one entry.
 * @throws {AuthTokensFileError} When the file cannot be read or is invalid.
 * @example
 * ```ts ignore
 * import { readAuthTokensFile } from "./auth_tokens_file.ts";
 * const tokens = await readAuthTokensFile("/etc/planetary-auth/tokens.json");
 * ```
 */
export async function readAuthTokensFile(path: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (cause) {
    const reason = cause instanceof Deno.errors.NotFound
      ? "no such file"
      : cause instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : "cannot read it";
    throw new AuthTokensFileError(`${AUTH_TOKENS_FILE_ENV} ${path}: ${reason}`, { cause });
  }
  return parseAuthTokens(text, path);
}

/**
 * Sets `authTokens` of an API configuration from a tokens file, replacing any the config file
 * set (the environment wins over the config file, as for every other setting).
 *
 * @param api The API configuration so far.
 * @param path The tokens file; undefined or empty leaves `api` as it is.
 * @returns The configuration with the file's tokens.
 * @throws {AuthTokensFileError} When the file cannot be read or is invalid.
 * @example
 * ```ts ignore
 * import { AUTH_TOKENS_FILE_ENV, withAuthTokensFile } from "./auth_tokens_file.ts";
 * const api = await withAuthTokensFile({}, Deno.env.get(AUTH_TOKENS_FILE_ENV));
 * ```
 */
export async function withAuthTokensFile(
  api: ApiConfig | undefined,
  path: string | undefined,
): Promise<ApiConfig> {
  if (!path) return { ...api };
  return { ...api, authTokens: await readAuthTokensFile(path) };
}
