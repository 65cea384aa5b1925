import assert from "node:assert/strict";
import { cloudStorageFromEnv } from "./cloud_storage_from_env.ts";
import { storageForUrl } from "./storage_for_url.ts";
import { S3Storage } from "./s3/s3_storage.ts";
import { AzureBlobStorage } from "./azure/azure_blob_storage.ts";
import { GcsStorage } from "./gcs/gcs_storage.ts";
import { HttpStorage } from "./http/http_storage.ts";

const from = (env: Record<string, string>) => cloudStorageFromEnv((name) => env[name]);

Deno.test("cloudStorageFromEnv() turns S3 and GCS on with no variables (default chains)", () => {
  const setup = from({});
  assert.deepEqual(setup.schemes, ["s3", "gs"]);
  assert.deepEqual(setup.prefixes, ["s3://", "gs://"]);
  assert.ok(setup.adapters.s3 instanceof S3Storage);
  assert.ok(setup.adapters.gs instanceof GcsStorage);
  // Public https objects on storage.googleapis.com stay anonymous https by default.
  assert.ok(
    storageForUrl("https://storage.googleapis.com/b/o", { adapters: setup.adapters }) instanceof
      HttpStorage,
  );
  assert.deepEqual(from({ PLANETARY_S3: "false", PLANETARY_GCS: "off" }), {
    adapters: {},
    schemes: [],
    prefixes: [],
  });
  assert.deepEqual(from({ PLANETARY_S3: "0" }).schemes, ["gs"]);
});

Deno.test("cloudStorageFromEnv() turns each store on from its standard variables", () => {
  const setup = from({
    AWS_ACCESS_KEY_ID: "AKID",
    AWS_SECRET_ACCESS_KEY: "secret",
    AZURE_STORAGE_ACCOUNT: "acct",
    AZURE_STORAGE_SAS_TOKEN: "?sv=1&sig=x",
    GOOGLE_APPLICATION_CREDENTIALS: "/var/run/sa.json",
  });
  assert.deepEqual(setup.schemes, ["s3", "az", "gs"]);
  assert.deepEqual(setup.prefixes, [
    "s3://",
    "az://",
    "https://*.blob.core.windows.net/",
    "gs://",
    "https://storage.googleapis.com/",
  ]);
  assert.ok(setup.adapters.s3 instanceof S3Storage);
  assert.ok(setup.adapters.az instanceof AzureBlobStorage);
  assert.ok(setup.adapters.gs instanceof GcsStorage);
  assert.deepEqual(from({ AZURE_STORAGE_ACCOUNT: "acct" }).schemes, ["s3", "gs"], "no key: no az");
});

Deno.test("storageForUrl() routes provider https URLs to the cloud adapters", () => {
  const { adapters } = from({
    AZURE_STORAGE_CONNECTION_STRING: "AccountName=acct;AccountKey=a2V5",
    PLANETARY_GCS_ENDPOINT: "http://127.0.0.1:1",
  });
  const pick = (url: string) => storageForUrl(url, { adapters });
  assert.ok(pick("https://acct.blob.core.windows.net/c/b.txt") instanceof AzureBlobStorage);
  assert.ok(pick("https://storage.googleapis.com/bucket/o.txt") instanceof GcsStorage);
  assert.ok(pick("gs://bucket/o.txt") instanceof GcsStorage);
  // Presigned URLs (a query string) and other hosts stay with plain https.
  assert.ok(pick("https://storage.googleapis.com/b/o?X-Goog-Signature=s") instanceof HttpStorage);
  assert.ok(pick("https://acct.blob.core.windows.net/c/b?sig=s") instanceof HttpStorage);
  assert.ok(pick("https://blob.core.windows.net.evil.example/c/b") instanceof HttpStorage);
  assert.ok(pick("https://example.org/x") instanceof HttpStorage);
});
