import assert from "node:assert/strict";
import {
  AUTH_TOKENS_FILE_ENV,
  AuthTokensFileError,
  parseAuthTokens,
  readAuthTokensFile,
  withAuthTokensFile,
} from "./auth_tokens_file.ts";
import { resolveApiConfig } from "./config.ts";

/** A token that must never appear in a message. */
const SECRET = "tok-Zq7Xw9SECRET";

/** The message of the AuthTokensFileError that parsing `text` throws. */
function errorOf(text: string): string {
  try {
    parseAuthTokens(text, "/run/tokens.json");
  } catch (error) {
    assert.ok(error instanceof AuthTokensFileError, `an AuthTokensFileError: ${error}`);
    assert.equal(error.code, "AUTH_TOKENS_FILE");
    assert.equal(error.cause, undefined, "no cause that could quote the text");
    return error.message;
  }
  assert.fail(`parseAuthTokens() accepted ${JSON.stringify(text)}`);
}

Deno.test("parseAuthTokens() reads token → owner, with escapes, a BOM and any spacing", () => {
  const text = '\uFEFF{\n  "a1b2c3": "alice",\r\n  "x/y+z=": "pipeline \\"bot\\" \\u00e9",' +
    '\n"__proto__":"mallory"\n}\n';
  const tokens = parseAuthTokens(text, "tokens.json");
  assert.deepEqual(Object.entries(tokens), [
    ["a1b2c3", "alice"],
    ["x/y+z=", 'pipeline "bot" é'],
    ["__proto__", "mallory"],
  ]);
  assert.equal(Object.getPrototypeOf(tokens), Object.prototype, "__proto__ is a plain entry");
  // the same result as JSON.parse for a valid file, and usable as ApiConfig.authTokens
  assert.deepEqual(
    parseAuthTokens('{"t1":"alice","t2":"bob"}', "x"),
    JSON.parse('{"t1":"alice","t2":"bob"}'),
  );
  const resolved = resolveApiConfig({ authTokens: tokens }).authTokens;
  assert.equal(resolved?.get("x/y+z="), 'pipeline "bot" é');
});

Deno.test("parseAuthTokens() refuses an empty file and an object without tokens", () => {
  for (const text of ["", "  \n\t\n", "\uFEFF"]) {
    assert.match(errorOf(text), /^\/run\/tokens\.json: the file is empty; it must hold a JSON/);
  }
  assert.match(
    errorOf("{ }\n"),
    new RegExp(`^/run/tokens\\.json: holds no token; .*unset ${AUTH_TOKENS_FILE_ENV}`),
  );
});

Deno.test("parseAuthTokens() names the line and column of bad JSON and never the token", () => {
  const cases: [string, RegExp][] = [
    [`["${SECRET}"]`, /line 1, column 1: expected a JSON object/],
    [`{\n  "${SECRET}": "alice",\n}`, /line 3, column 1: expected a token in double quotes/],
    [`{\n  "${SECRET}" "alice"\n}`, /line 2, column 22: expected ':' after the token/],
    [`{"${SECRET}": 42}`, /line 1, column 22: the owner must be a string in double quotes/],
    [`{"${SECRET}": null}`, /line 1, column 22: the owner must be a string/],
    [`{"${SECRET}": {"owner": "alice"}}`, /the owner must be a string/],
    [`{"${SECRET}": "alice" "t2": "bob"}`, /line 1, column 30: expected ',' or '}'/],
    [`{"${SECRET}": "alice"`, /line 1, column 29: expected ',' or '}'/],
    [`{"${SECRET}: "alice"}`, /the owner must be a string|expected ':'/],
    [`{"${SECRET}`, /line 1, column 2: a string is not closed/],
    [`{"${SECRET}\n": "a"}`, /line 1, column 19: a control character/],
    [`{"${SECRET}\\q": "a"}`, /an unknown escape/],
    [`{"${SECRET}\\u12": "a"}`, /a \\u escape needs four hex digits/],
    [`{"${SECRET}": "alice"} {"more": "x"}`, /line 1, column 31: unexpected text after/],
    [`${SECRET}`, /line 1, column 1: expected a JSON object/],
    [`{"${SECRET} x": "alice"}`, /line 1, column 2: a token must be visible ASCII/],
    [`{"": "alice"}`, /a token must be visible ASCII/],
    [`{"${SECRET}é": "alice"}`, /a token must be visible ASCII/],
    [`{"${SECRET}": ""}`, /line 1, column 22: the owner must be a non-empty name/],
    [`{"${SECRET}": "  "}`, /the owner must be a non-empty name/],
    [`{"${SECRET}": "a\\nb"}`, /the owner must be a non-empty name without control/],
    [
      `{\n"${SECRET}": "alice",\n\n"${SECRET}": "bob"\n}`,
      /line 4, column 1: this token already appears on line 2/,
    ],
  ];
  for (const [text, expected] of cases) {
    const message = errorOf(text);
    assert.match(message, /^\/run\/tokens\.json: /, `names the file: ${message}`);
    assert.match(message, expected, JSON.stringify(text));
    assert.ok(!message.includes(SECRET), `no token in: ${message}`);
    assert.ok(!message.includes("Zq7Xw9"), `no part of a token in: ${message}`);
  }
});

Deno.test("readAuthTokensFile() names the variable and the file it cannot read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = `${dir}/absent.json`;
    await assert.rejects(readAuthTokensFile(missing), (error: unknown) => {
      assert.ok(error instanceof AuthTokensFileError);
      assert.equal(error.message, `${AUTH_TOKENS_FILE_ENV} ${missing}: no such file`);
      return true;
    });
    const file = `${dir}/tokens.json`;
    await Deno.writeTextFile(file, `{"${SECRET}": "alice"}`);
    assert.deepEqual(await readAuthTokensFile(file), { [SECRET]: "alice" });
    await Deno.writeTextFile(file, `{"${SECRET}": 1}`);
    await assert.rejects(readAuthTokensFile(file), (error: unknown) => {
      assert.ok(error instanceof AuthTokensFileError);
      assert.ok(error.message.startsWith(`${file}: line 1, column 22: `), error.message);
      assert.ok(!error.message.includes(SECRET));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("withAuthTokensFile() replaces the config's tokens and keeps the rest", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/tokens.json`;
    await Deno.writeTextFile(file, `{"${SECRET}": "alice"}`);
    const api = { logRequests: false, authTokens: { old: "bob" } };
    assert.deepEqual(await withAuthTokensFile(api, file), {
      logRequests: false,
      authTokens: { [SECRET]: "alice" },
    });
    assert.deepEqual(await withAuthTokensFile(api, undefined), api);
    assert.deepEqual(await withAuthTokensFile(api, ""), api);
    assert.deepEqual(await withAuthTokensFile(undefined, undefined), {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
