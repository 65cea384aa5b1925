/**
 * Durability: every task acknowledged with a 200 survives a SIGKILL of `planetary serve`. The
 * server runs as a subprocess (the real CLI, with only the permissions it documents), is
 * killed right after the last 200, restarted on the same database, and every task must be
 * there, complete and QUEUED. Run with the embedded database (SQLite) and with PostgreSQL.
 */
import { assertEquals } from "./_api_assert.ts";
import { createDatabase, requirePostgres, startPostgres } from "./_harness/postgres.ts";
import { SERVE_PERMISSIONS } from "../cli/commands/serve.ts";

const CLI = new URL("../cli/planetary.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const STARTUP_DEADLINE_MS = 120_000;

interface ServeProcess {
  url: string;
  child: Deno.ChildProcess;
  /** Everything the server wrote to stderr so far. */
  log(): string;
  /** Resolves once stderr is closed (the process is gone). */
  drained: Promise<void>;
}

/** Starts `planetary serve` on a free port and waits for its "listening" line. */
async function spawnServe(args: string[]): Promise<ServeProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      CONFIG,
      ...SERVE_PERMISSIONS,
      CLI,
      "serve",
      "--port",
      "0",
      "--log-requests=false",
      // The API and its database alone: every acknowledged task must still be QUEUED after the
      // restart, which an orchestrator claiming tasks would change.
      "--backend",
      "none",
      ...args,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let text = "";
  const listening = Promise.withResolvers<string>();
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk, { stream: true });
      const match = /Planetary listening on (http:\/\/\S+)/.exec(text);
      if (match) listening.resolve(match[1]!);
    }
    listening.reject(new Error(`planetary serve exited before listening:\n${text}`));
  })();
  const timer = setTimeout(
    () =>
      listening.reject(
        new Error(`planetary serve not listening after ${STARTUP_DEADLINE_MS} ms:\n${text}`),
      ),
    STARTUP_DEADLINE_MS,
  );
  try {
    const url = await listening.promise;
    return { url, child, log: () => text, drained };
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    await drained;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function taskBody(i: number): Record<string, unknown> {
  return {
    name: `durable-${i}`,
    inputs: [{ path: "/data/in.txt", content: `content ${i}` }],
    executors: [{ image: "alpine:3.20", command: ["echo", String(i)], env: { I: String(i) } }],
    tags: { suite: "durability", index: String(i) },
  };
}

async function createTasks(url: string, count: number): Promise<Map<string, number>> {
  const acknowledged = new Map<string, number>();
  // Sequential and concurrent submissions both: 8 waves of `count / 8` parallel requests.
  const wave = Math.max(1, Math.floor(count / 8));
  for (let start = 0; start < count; start += wave) {
    const indexes = Array.from({ length: Math.min(wave, count - start) }, (_, k) => start + k);
    await Promise.all(indexes.map(async (i) => {
      const res = await fetch(`${url}/ga4gh/tes/v1/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(taskBody(i)),
      });
      const body = await res.json();
      assertEquals(res.status, 200, JSON.stringify(body));
      acknowledged.set(body.id, i);
    }));
  }
  return acknowledged;
}

async function killHard(server: ServeProcess): Promise<void> {
  server.child.kill("SIGKILL");
  const status = await server.child.status;
  await server.drained;
  assertEquals(status.signal, "SIGKILL", "the server was killed, not stopped");
}

async function stopGracefully(server: ServeProcess): Promise<void> {
  server.child.kill("SIGTERM");
  const status = await server.child.status;
  await server.drained;
  assertEquals(status.code, 0, `graceful shutdown on SIGTERM:\n${server.log()}`);
}

async function assertAllThere(url: string, acknowledged: Map<string, number>): Promise<void> {
  for (const [id, i] of acknowledged) {
    const res = await fetch(`${url}/v1/tasks/${id}?view=FULL`);
    const task = await res.json();
    assertEquals(res.status, 200, `task ${id} (#${i}) lost: ${JSON.stringify(task)}`);
    assertEquals(task.state, "QUEUED");
    assertEquals(task.name, `durable-${i}`);
    assertEquals(task.inputs[0].content, `content ${i}`);
    assertEquals(task.executors[0].command, ["echo", String(i)]);
    assertEquals(task.tags, { suite: "durability", index: String(i) });
  }
  const listed = await fetch(`${url}/v1/tasks?tag_key=suite&tag_value=durability&page_size=2047`);
  const page = await listed.json();
  assertEquals(page.tasks.length, acknowledged.size);
}

async function killAndRestart(serveArgs: string[]): Promise<void> {
  const first = await spawnServe(serveArgs);
  let acknowledged: Map<string, number>;
  try {
    acknowledged = await createTasks(first.url, 40);
  } finally {
    await killHard(first); // right after the last 200
  }
  assertEquals(acknowledged.size, 40);
  const second = await spawnServe(serveArgs);
  try {
    await assertAllThere(second.url, acknowledged);
  } catch (error) {
    await killHard(second);
    throw error;
  }
  await stopGracefully(second);
}

Deno.test("planetary serve keeps every acknowledged task across SIGKILL (embedded SQLite)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "planetary-durability-" });
  try {
    await killAndRestart(["--data-dir", `${dir}/data`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "planetary serve keeps every acknowledged task across SIGKILL (PostgreSQL)",
  ignore: !requirePostgres(),
  async fn() {
    const cluster = await startPostgres();
    try {
      const url = await createDatabase(cluster, "planetary_durability");
      await killAndRestart(["--database-url", url]);
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test("planetary serve exits 2 with its usage on a bad flag", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", CONFIG, ...SERVE_PERMISSIONS, CLI, "serve", "--port", "nope"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 2, stderr);
  assertEquals(/--port: must be an integer/.test(stderr), true, stderr);
  assertEquals(stderr.includes("Usage: planetary serve"), true, stderr);
});
