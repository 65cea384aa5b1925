import assert from "node:assert/strict";
import { decodePageToken, encodePageToken, fingerprintFilters } from "./page_token.ts";
import { InvalidPageTokenError } from "./task_store.ts";

Deno.test("encodePageToken() round-trips through decodePageToken()", async () => {
  const fp = await fingerprintFilters({ state: "QUEUED", tags: { a: "1" } });
  const token = encodePageToken("9223372036854775807", fp);
  assert.match(token, /^[A-Za-z0-9_-]+$/);
  assert.equal(decodePageToken(token, fp), "9223372036854775807");
});

Deno.test("decodePageToken() rejects garbage and tokens of other filters", async () => {
  const fp = await fingerprintFilters({ namePrefix: "x" });
  const other = await fingerprintFilters({ namePrefix: "y" });
  assert.notEqual(fp, other);
  for (
    const bad of ["", "!!", "abc", "a".repeat(300), btoa("v1.1.zz"), encodePageToken("1", other)]
  ) {
    assert.throws(() => decodePageToken(bad, fp), InvalidPageTokenError, bad);
  }
});

Deno.test("fingerprintFilters() ignores tag order but not tag values", async () => {
  assert.equal(
    await fingerprintFilters({ tags: { a: "1", b: "2" } }),
    await fingerprintFilters({ tags: { b: "2", a: "1" } }),
  );
  assert.notEqual(
    await fingerprintFilters({ tags: { a: "1" } }),
    await fingerprintFilters({ tags: { a: "" } }),
  );
});
