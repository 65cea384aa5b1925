import assert from "node:assert/strict";
import { parseServeConfig, resolveServeOptions, ServeConfigError } from "./serve_config.ts";
import { isLoopbackHost } from "./start_server.ts";

const noEnv = (): undefined => undefined;

Deno.test("resolveServeOptions() prefers flags over environment over the config file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/planetary.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({ host: "0.0.0.0", port: 9000, dataDir: "/file", api: { maxBodyBytes: 10 } }),
    );
    const env: Record<string, string> = { PLANETARY_PORT: "9100", DATABASE_URL: "postgres://x/y" };
    const options = await resolveServeOptions(
      { config: file, port: "9200", logRequests: "false" },
      (name) => env[name],
    );
    assert.equal(options.host, "0.0.0.0");
    assert.equal(options.port, 9200);
    assert.equal(options.dataDir, "/file");
    assert.equal(options.databaseUrl, "postgres://x/y");
    assert.deepEqual(options.api, { maxBodyBytes: 10, logRequests: false });
    assert.equal(options.handleSignals, true);
    const fromEnv = await resolveServeOptions({}, (name) => env[name]);
    assert.equal(fromEnv.port, 9100);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveServeOptions() refuses a bad port or boolean with the flag's name", async () => {
  await assert.rejects(resolveServeOptions({ port: "http" }, noEnv), /--port/);
  await assert.rejects(resolveServeOptions({ port: "70000" }, noEnv), ServeConfigError);
  await assert.rejects(resolveServeOptions({ logRequests: "no" }, noEnv), /--log-requests/);
  await assert.rejects(resolveServeOptions({ config: "/does/not/exist.json" }, noEnv), /--config/);
});

Deno.test("resolveServeOptions() reads --max-running-per-owner, its env and execution.maxRunningPerOwner", async () => {
  const flag = await resolveServeOptions({ maxRunningPerOwner: "3" }, noEnv);
  assert.ok(flag.execution !== false);
  assert.equal(flag.execution?.maxRunningPerOwner, 3);
  const env: Record<string, string> = { PLANETARY_MAX_RUNNING_PER_OWNER: "0" };
  const fromEnv = await resolveServeOptions({}, (name) => env[name]);
  assert.ok(fromEnv.execution !== false);
  assert.equal(fromEnv.execution?.maxRunningPerOwner, 0, "0: no limit");
  const none = await resolveServeOptions({}, noEnv);
  assert.ok(none.execution !== false);
  assert.equal(none.execution?.maxRunningPerOwner, undefined, "default: no limit");
  const file = parseServeConfig('{"execution": {"maxRunningPerOwner": 5}}', "f.json");
  assert.ok(file.execution !== false);
  assert.equal(file.execution?.maxRunningPerOwner, 5);
  for (const bad of ["-1", "two", "1.5", ""]) {
    await assert.rejects(
      resolveServeOptions({ maxRunningPerOwner: bad }, noEnv),
      (error: unknown) => {
        assert.ok(error instanceof ServeConfigError);
        assert.match(error.message, /^--max-running-per-owner: must be a whole number/);
        return true;
      },
      bad,
    );
  }
  await assert.rejects(
    resolveServeOptions({}, (name) => name === "PLANETARY_MAX_RUNNING_PER_OWNER" ? "x" : undefined),
    /--max-running-per-owner/,
  );
  assert.throws(
    () => parseServeConfig('{"execution": {"maxRunningPerOwner": -1}}', "f.json"),
    /f\.json: execution\.maxRunningPerOwner/,
  );
});

Deno.test("parseServeConfig() names unknown or mistyped fields", () => {
  assert.throws(() => parseServeConfig('{"prot": 1}', "f.json"), /f\.json: .*prot/);
  assert.throws(() => parseServeConfig('{"port": "80"}', "f.json"), /port/);
  assert.throws(() => parseServeConfig("{", "f.json"), /not valid JSON/);
  assert.deepEqual(parseServeConfig('{"api": {"corsOrigins": []}}', "f.json"), {
    api: { corsOrigins: [] },
  });
});

Deno.test("resolveServeOptions() hands the cloud storage variables to execution only", async () => {
  const env = {
    PLANETARY_PORT: "9100",
    PATH: "/usr/bin",
    DATABASE_URL: "postgres://u:p@h/d",
    PLANETARY_S3_ENDPOINT: "http://127.0.0.1:9",
    AWS_ACCESS_KEY_ID: "id",
    AWS_SECRET_ACCESS_KEY: "secret",
    AWS_ROLE_SESSION_NAME: "planetary",
  };
  const storageEnv = {
    PLANETARY_S3_ENDPOINT: "http://127.0.0.1:9",
    AWS_ACCESS_KEY_ID: "id",
    AWS_SECRET_ACCESS_KEY: "secret",
    AWS_ROLE_SESSION_NAME: "planetary",
  };
  const options = await resolveServeOptions({}, env);
  assert.deepEqual(options.cloudStorage, { schemes: ["s3", "gs"], prefixes: ["s3://", "gs://"] });
  assert.deepEqual(options.execution && options.execution.storageEnv, storageEnv);
  assert.equal(options.port, 9100);
  // A reader cannot be listed: what cloudStorageFromEnv asked for is handed over.
  const read = await resolveServeOptions({}, (name) => env[name as keyof typeof env]);
  const { AWS_ROLE_SESSION_NAME: _, ...asked } = storageEnv;
  assert.deepEqual(read.execution && read.execution.storageEnv, asked);
  // Nothing configured: no storage environment; API only: none either.
  const bare = await resolveServeOptions({}, { PATH: "/bin" });
  assert.deepEqual(bare.execution, {});
  assert.equal((await resolveServeOptions({ backend: "none" }, env)).execution, false);
});

Deno.test("resolveServeOptions() reads --storage-schemes, --cors-origin, --allow-host and their env", async () => {
  const flags = await resolveServeOptions({
    storageSchemes: "file,HTTPS,s3://",
    corsOrigin: ["https://app.example"],
    allowHost: ["tes.example", "*"],
  }, noEnv);
  assert.deepEqual(flags.api, {
    allowedUrlSchemes: ["file", "https", "s3"],
    corsOrigins: ["https://app.example"],
    allowedHosts: ["tes.example", "*"],
  });
  const env: Record<string, string> = {
    PLANETARY_STORAGE_SCHEMES: " file , http ",
    PLANETARY_CORS_ORIGINS: "https://a.example,https://b.example",
    PLANETARY_ALLOWED_HOSTS: "tes.example",
  };
  const fromEnv = await resolveServeOptions({}, env);
  assert.deepEqual(fromEnv.api, {
    allowedUrlSchemes: ["file", "http"],
    corsOrigins: ["https://a.example", "https://b.example"],
    allowedHosts: ["tes.example"],
  });
  // The server's own setting is not handed to the transporter.
  assert.deepEqual(fromEnv.execution, {});
  // Flags win over the environment, which wins over the config file.
  const wins = await resolveServeOptions({ corsOrigin: ["https://flag.example"] }, env);
  assert.deepEqual(wins.api?.corsOrigins, ["https://flag.example"]);
  await assert.rejects(
    resolveServeOptions({ storageSchemes: "ftp" }, noEnv),
    /unknown scheme "ftp"/,
  );
  assert.equal((await resolveServeOptions({}, noEnv)).api, undefined, "nothing set: API defaults");
});

Deno.test("resolveServeOptions() checks --shared-dir / PLANETARY_SHARED_DIRS / execution.sharedDirs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/a`);
    await Deno.mkdir(`${dir}/b`);
    await Deno.writeTextFile(`${dir}/file`, "");
    const flag = await resolveServeOptions({ sharedDir: [`${dir}/a`] }, noEnv);
    assert.deepEqual(flag.execution && flag.execution.sharedDirs, [`${dir}/a`]);
    const env = await resolveServeOptions({}, { PLANETARY_SHARED_DIRS: `${dir}/a:${dir}/b` });
    assert.deepEqual(env.execution && env.execution.sharedDirs, [`${dir}/a`, `${dir}/b`]);
    await Deno.writeTextFile(
      `${dir}/c.json`,
      JSON.stringify({ execution: { sharedDirs: [`${dir}/b`] }, api: { allowedHosts: ["x"] } }),
    );
    const file = await resolveServeOptions({ config: `${dir}/c.json` }, noEnv);
    assert.deepEqual(file.execution && file.execution.sharedDirs, [`${dir}/b`]);
    assert.deepEqual(file.api, { allowedHosts: ["x"] });
    await assert.rejects(resolveServeOptions({ sharedDir: ["rel"] }, noEnv), /absolute/);
    await assert.rejects(
      resolveServeOptions({ sharedDir: [`${dir}/missing`] }, noEnv),
      /missing: does not exist; create it first/,
    );
    await assert.rejects(
      resolveServeOptions({ sharedDir: [`${dir}/file`] }, noEnv),
      /file: is not a folder/,
    );
    assert.throws(
      () => parseServeConfig('{"execution": {"sharedDirs": ["rel"]}}', "f.json"),
      /sharedDirs/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("isLoopbackHost() knows loopback names and addresses", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "a.localhost"]) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (
    const host of ["0.0.0.0", "::", "10.0.0.1", "example.org", "localhost.example", "128.0.0.1"]
  ) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});
