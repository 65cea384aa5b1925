import assert from "node:assert/strict";
import { cloudStorageFromEnv } from "../storage/cloud_storage_from_env.ts";
import { isStorageVariable, storageEnvironment } from "./storage_environment.ts";

/** Values that turn every branch of cloudStorageFromEnv on (first the connection string form). */
function fullEnvironment(azure: "connection" | "key" | "sas"): (name: string) => string {
  return (name) => {
    if (name.endsWith("_ENDPOINT")) return "http://127.0.0.1:9";
    if (name === "AZURE_STORAGE_CONNECTION_STRING") {
      return azure === "connection"
        ? "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/a;"
        : "";
    }
    if (name === "AZURE_STORAGE_KEY") return azure === "key" ? "a2V5" : "";
    if (name === "AZURE_STORAGE_SAS_TOKEN") return azure === "sas" ? "sv=1&sig=x" : "";
    if (name === "PLANETARY_STORAGE_RANGED_READ_MIB") return "8";
    if (name === "GOOGLE_APPLICATION_CREDENTIALS") return "/nonexistent/key.json";
    return "true";
  };
}

Deno.test("isStorageVariable() covers every variable cloudStorageFromEnv() reads", () => {
  const read = new Set<string>();
  for (const azure of ["connection", "key", "sas"] as const) {
    const values = fullEnvironment(azure);
    const setup = cloudStorageFromEnv((name) => {
      read.add(name);
      return values(name);
    });
    assert.deepEqual(setup.schemes, ["s3", "az", "gs"]);
  }
  // Nothing set: S3 and GCS with the SDKs' default credential chains, and every variable
  // that could configure a store is asked for.
  assert.deepEqual(cloudStorageFromEnv((name) => void read.add(name)).schemes, ["s3", "gs"]);
  assert(read.size >= 17, `only ${read.size} variables read: ${[...read]}`);
  const missing = [...read].filter((name) => !isStorageVariable(name));
  assert.deepEqual(missing, [], "add these to CLOUD_STORAGE_ENV");
});

Deno.test("storageEnvironment() keeps cloud storage variables only", () => {
  const env = {
    PATH: "/usr/bin",
    HOME: "/root",
    AWS_ACCESS_KEY_ID: "id",
    AWS_SECRET_ACCESS_KEY: "secret",
    AWS_ROLE_ARN: "arn:aws:iam::1:role/r",
    AWS_PROFILE: "",
    AZURE_STORAGE_CONNECTION_STRING: "cs",
    AZURE_CLIENT_SECRET: "not ours",
    GOOGLE_APPLICATION_CREDENTIALS: "/k.json",
    GOOGLE_CLOUD_PROJECT: "p",
    GOOGLE_CLOUD_PROJECTX: "no",
    PLANETARY_S3: "true",
    PLANETARY_S3_ENDPOINT: "http://s3",
    PLANETARY_GCS_ENDPOINT: "http://gcs",
    PLANETARY_STORAGE_RANGED_READ_MIB: "64",
    PLANETARY_PORT: "8000",
    PLANETARY_FILE_ALLOW_LIST: "/tmp",
    DATABASE_URL: "postgres://u:p@h/d",
  };
  assert.deepEqual(storageEnvironment(env), {
    AWS_ACCESS_KEY_ID: "id",
    AWS_SECRET_ACCESS_KEY: "secret",
    AWS_ROLE_ARN: "arn:aws:iam::1:role/r",
    AZURE_STORAGE_CONNECTION_STRING: "cs",
    GOOGLE_APPLICATION_CREDENTIALS: "/k.json",
    GOOGLE_CLOUD_PROJECT: "p",
    PLANETARY_S3: "true",
    PLANETARY_S3_ENDPOINT: "http://s3",
    PLANETARY_GCS_ENDPOINT: "http://gcs",
    PLANETARY_STORAGE_RANGED_READ_MIB: "64",
  });
});
