import assert from "node:assert/strict";
import { storageForUrl } from "./storage_for_url.ts";
import { FileStorage } from "./file/file_storage.ts";
import { HttpStorage } from "./http/http_storage.ts";
import { StorageError } from "./storage_error.ts";
import type { Storage } from "./storage.ts";

Deno.test("storageForUrl() picks the adapter by scheme", () => {
  assert.ok(storageForUrl("file:///data/x", { fileAllowList: ["/data"] }) instanceof FileStorage);
  assert.ok(storageForUrl("http://h/x") instanceof HttpStorage);
  assert.ok(storageForUrl("HTTPS://h/x") instanceof HttpStorage);
});

Deno.test("storageForUrl() names an unknown scheme without leaking secrets", () => {
  assert.throws(() => storageForUrl("ftp://user:pw@h/x?sig=SECRET"), (error: unknown) => {
    assert.ok(error instanceof StorageError);
    assert.equal(error.code, "UNSUPPORTED_SCHEME");
    assert.match(error.message, /"ftp:"/);
    assert.doesNotMatch(error.message, /SECRET|pw/);
    return true;
  });
  assert.throws(() => storageForUrl("no-scheme"), /has no scheme/);
});

Deno.test("storageForUrl() prefers adapters from the config", () => {
  const fake: Storage = new HttpStorage(); // any Storage stands in for a cloud adapter
  assert.equal(storageForUrl("s3://bucket/key", { adapters: { s3: fake } }), fake);
});
