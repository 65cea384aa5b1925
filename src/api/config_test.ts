import assert from "node:assert/strict";
import { DEFAULT_MAX_BODY_BYTES, hostName, isLoopbackHost, resolveApiConfig } from "./config.ts";

Deno.test("resolveApiConfig() fills safe defaults: 16 MiB, 30 s, CORS off, no host check", () => {
  const config = resolveApiConfig();
  assert.equal(config.maxBodyBytes, DEFAULT_MAX_BODY_BYTES);
  assert.equal(DEFAULT_MAX_BODY_BYTES, 16 * 1024 * 1024);
  assert.deepEqual(config.corsOrigins, []);
  assert.equal(config.bodyTimeoutMs, 30_000);
  assert.equal(config.allowedHosts, undefined);
  assert.equal(config.fileAllowList, undefined);
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

Deno.test("resolveApiConfig() refuses a body timeout that is not a positive integer", () => {
  assert.throws(() => resolveApiConfig({ bodyTimeoutMs: 0 }), RangeError);
  assert.throws(() => resolveApiConfig({ bodyTimeoutMs: Number.NaN }), RangeError);
});

Deno.test("resolveApiConfig() normalizes allowed hosts and refuses an empty one", () => {
  assert.deepEqual(
    resolveApiConfig({ allowedHosts: ["TES.Example:8000", "*", "[::2]"] })
      .allowedHosts,
    ["tes.example", "*", "::2"],
  );
  assert.throws(() => resolveApiConfig({ allowedHosts: [":80"] }), /allowedHosts/);
});

Deno.test("hostName() strips ports, IPv6 brackets and a trailing dot", () => {
  assert.equal(hostName("Example.ORG:8000"), "example.org");
  assert.equal(hostName("example.org."), "example.org");
  assert.equal(hostName("[::1]:4000"), "::1");
  assert.equal(hostName("[::1]"), "::1");
  assert.equal(hostName("::1"), "::1");
  assert.equal(hostName("127.0.0.1"), "127.0.0.1");
});

Deno.test("isLoopbackHost() knows localhost names, 127.0.0.0/8 and ::1, nothing else", () => {
  for (const name of ["localhost", "tes.localhost", "127.0.0.1", "127.255.0.9", "::1"]) {
    assert.equal(isLoopbackHost(name), true, name);
  }
  for (
    const name of [
      "evil.example",
      "localhost.evil.example",
      "127.0.0.1.evil.example",
      "128.0.0.1",
      "127.0.0.256",
      "127.0.0",
      "::2",
      "0.0.0.0",
      "",
    ]
  ) {
    assert.equal(isLoopbackHost(name), false, name);
  }
});
