/**
 * `planetary serve` on its embedded defaults, as a user runs it: cloud URLs accepted with no
 * configuration (and a transfer without credentials failing with the reason), the safe API
 * defaults (file allow-list at submit, Host check on loopback, no CORS), shared folders.
 * Every test keeps traffic on loopback: no credentials, no metadata servers.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createDatabase, requirePostgres, startPostgres } from "./_harness/postgres.ts";
import { isolatedEnv } from "./_harness/isolated_env.ts";
import { startServe } from "./_harness/serve.ts";

interface TaskView {
  state: string;
  logs?: { system_logs?: string[] }[];
}

async function waitTerminal(url: string, id: string): Promise<TaskView> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const response = await fetch(`${url}/ga4gh/tes/v1/tasks/${id}?view=FULL`);
    const task = await response.json() as TaskView;
    if (!["QUEUED", "INITIALIZING", "RUNNING"].includes(task.state)) return task;
    if (Date.now() > deadline) throw new Error(`task ${id} still ${task.state} after 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function submit(url: string, body: unknown): Promise<Response> {
  return await fetch(`${url}/ga4gh/tes/v1/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("planetary serve accepts s3:// and gs:// unconfigured; no credentials fails the task with why", async () => {
  const { env, home } = await isolatedEnv();
  const server = await startServe({ args: ["--max-tasks", "2"], env });
  try {
    const info = await (await fetch(`${server.url}/service-info`)).json() as { storage: string[] };
    assert.ok(info.storage.includes("s3://"), JSON.stringify(info.storage));
    assert.ok(info.storage.includes("gs://"), JSON.stringify(info.storage));
    const cases = [
      { url: "s3://planetary-no-such-bucket/inputs/a.txt", reason: /no AWS credentials found/ },
      { url: "gs://planetary-no-such-bucket/inputs/a.txt", reason: /no Google Cloud credentials/ },
    ];
    const ids: string[] = [];
    for (const { url } of cases) {
      const response = await submit(server.url, {
        inputs: [{ url, path: "/data/a.txt" }],
        executors: [{ image: "alpine:3.20", command: ["cat", "/data/a.txt"] }],
      });
      const body = await response.json() as { id: string };
      assert.equal(response.status, 200, JSON.stringify(body));
      ids.push(body.id);
    }
    for (const [index, id] of ids.entries()) {
      const { url, reason } = cases[index]!;
      const task = await waitTerminal(server.url, id);
      const systemLogs = (task.logs ?? []).flatMap((log) => log.system_logs ?? []).join("\n");
      assert.equal(task.state, "SYSTEM_ERROR", systemLogs);
      assert.match(systemLogs, /input download failed|downloading inputs failed/, systemLogs);
      assert.ok(systemLogs.includes(url), systemLogs);
      assert.match(systemLogs, reason, systemLogs);
    }
  } finally {
    await server.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("planetary serve: allow-list at submit, Host check on loopback, no CORS, shared folders", async () => {
  const { env, home } = await isolatedEnv();
  const shared = await Deno.makeTempDir({ prefix: "planetary-shared-" });
  const server = await startServe({
    args: [
      "--storage-schemes",
      "file,http,https",
      "--shared-dir",
      shared,
      "--allow-host",
      "tes.example",
      "--backend",
      "local",
      "--max-tasks",
      "1",
    ],
    env,
  });
  try {
    const info = await (await fetch(`${server.url}/service-info`)).json() as { storage: string[] };
    assert.ok(info.storage.includes(`file://${shared}`), JSON.stringify(info.storage));
    assert.ok(info.storage.includes(`file://${server.storageDir}`), JSON.stringify(info.storage));
    assert.ok(!info.storage.some((prefix) => /^(s3|gs|az):/.test(prefix)), info.storage.join());

    const task = (url: string) => ({
      inputs: [{ url, path: "/data/in.txt" }],
      executors: [{ image: "alpine:3.20", command: ["true"] }],
    });
    // --storage-schemes narrows what is accepted; the file allow-list is checked at submit.
    for (const url of ["s3://bucket/key", "file:///etc/passwd"]) {
      const response = await submit(server.url, task(url));
      const text = await response.text();
      assert.equal(response.status, 400, `${url}: ${text}`);
    }
    await Deno.writeTextFile(`${shared}/in.txt`, "shared\n");
    const accepted = await submit(server.url, task(`file://${shared}/in.txt`));
    const body = await accepted.json() as { id: string };
    assert.equal(accepted.status, 200, JSON.stringify(body));
    assert.equal((await waitTerminal(server.url, body.id)).state, "COMPLETE");

    // DNS rebinding: a loopback server answers loopback names and --allow-host names only.
    // fetch() sends the URL's host whatever the headers say: write the request by hand.
    const withHost = async (host: string): Promise<number> => {
      const { hostname, port } = new URL(server.url);
      const connection = await Deno.connect({ hostname, port: Number(port) });
      try {
        const request = `GET /ga4gh/tes/v1/tasks HTTP/1.1\r\nHost: ${host}\r\n` +
          "Connection: close\r\n\r\n";
        await connection.write(new TextEncoder().encode(request));
        const answer = await new Response(connection.readable).text();
        return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
      } finally {
        try {
          connection.close();
        } catch {
          // already closed by reading to the end
        }
      }
    };
    assert.equal(await withHost("evil.example"), 403);
    assert.equal(await withHost("tes.example"), 200);
    assert.equal(await withHost(`localhost:${new URL(server.url).port}`), 200);

    // No CORS by default: a web page on another origin cannot read the answers.
    const cors = await fetch(`${server.url}/ga4gh/tes/v1/tasks`, {
      headers: { origin: "https://evil.example" },
    });
    await cors.body?.cancel();
    assert.equal(cors.headers.get("access-control-allow-origin"), null);
  } finally {
    await server.close();
    await Deno.remove(shared, { recursive: true });
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test({
  name: "planetary serve on PostgreSQL runs tasks and stops cleanly with no TimeoutNegativeWarning",
  ignore: !requirePostgres(),
  async fn() {
    const { env, home } = await isolatedEnv();
    const cluster = await startPostgres();
    try {
      const databaseUrl = await createDatabase(cluster, "planetary_serve_defaults");
      const server = await startServe({ args: ["--database-url", databaseUrl], env });
      try {
        // Several claim / reconcile / monitor cycles: tasks run one after the other.
        for (let round = 0; round < 3; round++) {
          const response = await submit(server.url, {
            executors: [{ image: "alpine:3.20", command: ["echo", `round ${round}`] }],
          });
          const { id } = await response.json() as { id: string };
          assert.equal(response.status, 200);
          assert.equal((await waitTerminal(server.url, id)).state, "COMPLETE");
        }
        const status = await server.stop("SIGTERM");
        assert.equal(status.code, 0, server.log());
        assert.doesNotMatch(server.log(), /TimeoutNegativeWarning|negative number/, server.log());
        assert.doesNotMatch(server.log(), /\[object Object\]/, server.log());
      } finally {
        await server.close();
      }
    } finally {
      await cluster.stop();
      await Deno.remove(home, { recursive: true });
    }
  },
});
