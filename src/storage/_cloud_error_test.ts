import assert from "node:assert/strict";
import { scrubSecrets, toStorageError } from "./_cloud_error.ts";

Deno.test("toStorageError() maps statuses to codes and keeps no SDK object", () => {
  const sdkError = Object.assign(new Error("denied for key SECRETKEY"), {
    name: "AccessDenied",
    $metadata: { httpStatusCode: 403 },
    request: { headers: { authorization: "SECRETKEY" } },
  });
  const denied = toStorageError(sdkError, {
    url: "s3://b/k?X-Amz-Signature=sig",
    operation: "S3 GetObject",
    secrets: ["SECRETKEY"],
  });
  assert.equal(denied.code, "PERMISSION_DENIED");
  assert.match(denied.message, /S3 GetObject: HTTP 403 AccessDenied/);
  assert.ok(!Deno.inspect(denied, { depth: 10 }).includes("SECRETKEY"));
  assert.ok(!denied.message.includes("sig"));
  assert.equal(
    toStorageError({ statusCode: 404, message: "" }, { url: "az://a/c/b", operation: "x" }).code,
    "NOT_FOUND",
  );
  assert.equal(
    toStorageError(new Error("ECONNRESET"), { url: "gs://b/o", operation: "x" }).code,
    "IO_ERROR",
  );
});

Deno.test("scrubSecrets() removes known secrets, SAS signatures and signed strings", () => {
  const text = scrubSecrets(
    "https://a.blob.core.windows.net/c?sv=1&sig=abc failed; AccountKey=KEY123; Signature did not match. String to sign used was GET\n/a/c",
    ["KEY123"],
  );
  assert.ok(!text.includes("abc") && !text.includes("KEY123") && !text.includes("String to sign"));
});
