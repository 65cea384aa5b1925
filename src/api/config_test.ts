import assert from "node:assert/strict";
import { DEFAULT_MAX_BODY_BYTES, resolveApiConfig } from "./config.ts";

Deno.test("resolveApiConfig() fills defaults: 16 MiB, CORS for any origin, logs on, no auth", () => {
  const config = resolveApiConfig();
  assert.equal(config.maxBodyBytes, DEFAULT_MAX_BODY_BYTES);
  assert.equal(DEFAULT_MAX_BODY_BYTES, 16 * 1024 * 1024);
  assert.deepEqual(config.corsOrigins, ["*"]);
  assert.equal(config.logRequests, true);
  assert.equal(config.authTokens, undefined);
});

Deno.test("resolveApiConfig() turns auth tokens into a map and an empty table into no auth", () => {
  assert.equal(resolveApiConfig({ authTokens: { t: "alice" } }).authTokens?.get("t"), "alice");
  assert.equal(resolveApiConfig({ authTokens: {} }).authTokens, undefined);
});

Deno.test("resolveApiConfig() refuses a body limit that is not a positive integer", () => {
  assert.throws(() => resolveApiConfig({ maxBodyBytes: 0 }), RangeError);
  assert.throws(() => resolveApiConfig({ maxBodyBytes: 1.5 }), RangeError);
});
