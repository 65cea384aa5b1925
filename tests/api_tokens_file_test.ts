/**
 * `planetary-api` with a bearer tokens file (`PLANETARY_AUTH_TOKENS_FILE`, as the Helm chart
 * mounts it from a Secret), started under `deno run` with exactly its permission flags on a real
 * PostgreSQL: requests without a valid token get a 401, requests with one are served, and no
 * token reaches the service's output.
 *
 * @module
 */
import assert from "node:assert/strict";
import { API_PERMISSIONS } from "../cli/api.ts";
import { AUTH_TOKENS_FILE_ENV } from "../src/api/auth_tokens_file.ts";
import { createDatabase, requirePostgres, startPostgres } from "./_harness/postgres.ts";

const REPO = new URL("../", import.meta.url).pathname;
const TOKEN = `tok-${crypto.randomUUID()}`;

/** A running `planetary-api` child process and everything it wrote to stderr. */
interface ApiProcess {
  child: Deno.ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code once the process has exited and its stderr is read. */
  exited(): Promise<number>;
}

function spawnApi(env: Record<string, string>, args: string[] = []): ApiProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--config",
      `${REPO}deno.json`,
      ...API_PERMISSIONS,
      `${REPO}cli/api.ts`,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--log-requests=false",
      ...args,
    ],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const read = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write(chunk) {
        text += chunk;
      },
    }),
  );
  return {
    child,
    stderr: () => text,
    exited: async () => {
      const { code } = await child.status;
      await read;
      return code;
    },
  };
}

/** Waits for the `Planetary listening on URL` line (or the process's exit). */
async function listeningUrl(api: ApiProcess): Promise<string> {
  let exited = false;
  void api.child.status.then(() => (exited = true));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const url = /Planetary listening on (http:\/\/\S+)/.exec(api.stderr())?.[1];
    if (url) return url.replace(/\/$/, "");
    if (exited || Date.now() > deadline) {
      throw new Error(`planetary-api did not start:\n${api.stderr()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

Deno.test({
  name: "planetary-api with PLANETARY_AUTH_TOKENS_FILE refuses requests without the token",
  ignore: !requirePostgres(),
  async fn() {
    const pg = await startPostgres();
    const dir = await Deno.makeTempDir();
    let api: ApiProcess | undefined;
    try {
      const file = `${dir}/tokens.json`;
      await Deno.writeTextFile(file, JSON.stringify({ [TOKEN]: "alice", "tok-other": "bob" }));
      api = spawnApi({
        DATABASE_URL: await createDatabase(pg, "planetary_api_tokens"),
        [AUTH_TOKENS_FILE_ENV]: file,
      });
      const url = await listeningUrl(api);
      const call = async (
        method: string,
        path: string,
        token?: string,
        body?: unknown,
      ): Promise<{ status: number; json: Record<string, unknown> }> => {
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (token !== undefined) headers.authorization = `Bearer ${token}`;
        const response = await fetch(`${url}${path}`, {
          method,
          headers,
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return { status: response.status, json: await response.json() };
      };
      const task = { executors: [{ image: "alpine", command: ["true"] }] };
      assert.equal((await call("GET", "/v1/tasks")).status, 401, "no token");
      assert.equal((await call("GET", "/ga4gh/tes/v1/tasks", "tok-wrong")).status, 401, "wrong");
      assert.equal((await call("POST", "/v1/tasks", undefined, task)).status, 401);
      assert.equal((await call("GET", "/v1/service-info")).status, 200, "service-info is public");

      const created = await call("POST", "/v1/tasks", TOKEN, task);
      assert.equal(created.status, 200, JSON.stringify(created.json));
      const id = created.json.id;
      assert.equal(typeof id, "string");
      const listed = await call("GET", "/v1/tasks", TOKEN);
      assert.equal(listed.status, 200);
      assert.deepEqual((listed.json.tasks as { id: string }[]).map((t) => t.id), [id]);
      // the file's other owner sees none of alice's tasks
      assert.deepEqual((await call("GET", "/v1/tasks", "tok-other")).json.tasks, []);
      assert.match(api.stderr(), /bearer authentication on \(2 tokens\)/);
    } finally {
      if (api) {
        try {
          api.child.kill("SIGTERM");
        } catch { /* already gone */ }
        await api.exited();
        assert.ok(!api.stderr().includes(TOKEN), `no token in the output:\n${api.stderr()}`);
      }
      await Deno.remove(dir, { recursive: true });
      await pg.stop();
    }
  },
});

Deno.test("planetary-api refuses to start on a bad tokens file, naming the line, not the token", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/tokens.json`;
    // no database is reached: the tokens file is checked first
    const env = { DATABASE_URL: "postgres://planetary@127.0.0.1:1/none" };
    await Deno.writeTextFile(file, `{\n  "${TOKEN}": "alice",\n  "${TOKEN}": 7\n}\n`);
    const bad = spawnApi({ ...env, [AUTH_TOKENS_FILE_ENV]: file });
    assert.equal(await bad.exited(), 2);
    assert.match(bad.stderr(), new RegExp(`^planetary-api: ${file}: line 3, column \\d+: `));
    assert.ok(!bad.stderr().includes(TOKEN), bad.stderr());

    // the flag wins over the variable, and a missing file names the variable and the path
    const missing = spawnApi({ ...env, [AUTH_TOKENS_FILE_ENV]: file }, [
      "--auth-tokens-file",
      `${dir}/absent.json`,
    ]);
    assert.equal(await missing.exited(), 2);
    assert.match(
      missing.stderr(),
      new RegExp(`^planetary-api: ${AUTH_TOKENS_FILE_ENV} ${dir}/absent\\.json: no such file`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
