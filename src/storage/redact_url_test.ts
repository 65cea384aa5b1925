import assert from "node:assert/strict";
import { redactText, redactUrl } from "./redact_url.ts";

Deno.test("redactUrl() removes user info, query and fragment", () => {
  assert.equal(
    redactUrl("https://user:pw@acct.blob.core.windows.net/c/a.txt?sv=2020&sig=SECRET#frag"),
    "https://acct.blob.core.windows.net/c/a.txt",
  );
  assert.equal(redactUrl("s3://bucket/key?X-Amz-Signature=SECRET"), "s3://bucket/key");
  assert.equal(redactUrl("file:///data/x.txt"), "file:///data/x.txt");
});

Deno.test("redactUrl() redacts strings that do not parse as URLs", () => {
  assert.equal(redactUrl("weird://user:pw@[bad/x?sig=SECRET"), "weird://[bad/x");
});

Deno.test("redactText() redacts every URL quoted in text", () => {
  assert.equal(
    redactText("error sending request for url (https://u:p@h/x?sig=S): refused; also s3://b/k?t=1"),
    "error sending request for url (https://h/x): refused; also s3://b/k",
  );
});
