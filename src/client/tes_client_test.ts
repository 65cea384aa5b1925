import assert from "node:assert/strict";
import {
  TesApiError,
  tesBaseUrl,
  TesBatchCreateError,
  TesClient,
  TesConnectionError,
} from "./mod.ts";
import { closedPort, startTesTestServer } from "./testdata/tes_test_server.ts";
import { createApp } from "../api/app.ts";
import type { TesState, TesTask } from "../tes/model.ts";

/** Awaits a rejection of the given class and returns the error. */
async function rejects<E extends Error>(
  run: () => Promise<unknown>,
  errorClass: new (...args: never[]) => E,
): Promise<E> {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof errorClass, `expected ${errorClass.name}, got ${error}`);
    return error;
  }
  throw new assert.AssertionError({ message: `expected a ${errorClass.name} rejection` });
}

const TASK: TesTask = {
  name: "hello",
  executors: [{ image: "alpine", command: ["echo", "hello"] }],
  tags: { project: "demo" },
};

Deno.test("tesBaseUrl() adds the TES path to a server root and keeps a TES base URL", () => {
  assert.deepEqual(tesBaseUrl("http://h:8000"), "http://h:8000/ga4gh/tes/v1");
  assert.deepEqual(tesBaseUrl("http://h:8000/"), "http://h:8000/ga4gh/tes/v1");
  assert.deepEqual(tesBaseUrl("http://h:8000/ga4gh/tes/v1/"), "http://h:8000/ga4gh/tes/v1");
  assert.deepEqual(tesBaseUrl("https://h/proxy/v1"), "https://h/proxy/v1");
  assert.deepEqual(tesBaseUrl("https://h/v1/tasks"), "https://h/v1");
  assert.deepEqual(tesBaseUrl("http://h/prefix"), "http://h/prefix/ga4gh/tes/v1");
});

Deno.test("tesBaseUrl() refuses what is not an http(s) URL", () => {
  for (const bad of ["localhost:8000", "ftp://h/", "not a url"]) {
    assert.throws(() => tesBaseUrl(bad), TypeError, bad);
  }
});

Deno.test("TesClient against a real Planetary API", async (t) => {
  const server = await startTesTestServer();
  try {
    const client = new TesClient(server.url);

    await t.step("serviceInfo() reads the TES service-info", async () => {
      const info = await client.serviceInfo();
      assert.deepEqual(info.type.artifact, "tes");
    });

    const id = await client.createTask(TASK);
    await t.step("getTask() answers MINIMAL by default and FULL on request", async () => {
      assert.deepEqual(await client.getTask(id), { id, state: "QUEUED" });
      const full = await client.getTask(id, "FULL");
      assert.deepEqual(full.name, "hello");
      assert.deepEqual(full.executors[0]?.command, ["echo", "hello"]);
    });

    await t.step(
      "getTask() of an unknown id throws TesApiError 404 with the server's msg",
      async () => {
        const error = await rejects(() => client.getTask("no-such-task"), TesApiError);
        assert.deepEqual(error.status, 404);
        assert.ok(error.serverMessage.includes("no-such-task"), error.serverMessage);
        assert.deepEqual(error.code, "TES_API_ERROR");
      },
    );

    await t.step("createTask() of an invalid task throws TesApiError 400", async () => {
      const error = await rejects(() => client.createTask({ executors: [] }), TesApiError);
      assert.deepEqual(error.status, 400);
      assert.ok(error.serverMessage.includes("executors"), error.serverMessage);
    });

    await t.step("listTasks() filters by state, name prefix and tag", async () => {
      const other = await client.createTask({ ...TASK, name: "other", tags: { project: "x" } });
      await server.store.transition(other, "RUNNING");
      const byState = await client.listTasks({ state: "RUNNING" });
      assert.deepEqual(byState.tasks.map((task) => task.id), [other]);
      const byName = await client.listTasks({ namePrefix: "hel", view: "BASIC" });
      assert.deepEqual(byName.tasks.map((task) => task.name), ["hello"]);
      const byTag = await client.listTasks({ tags: { project: "demo" } });
      assert.deepEqual(byTag.tasks.map((task) => task.id), [id]);
      const anyValue = await client.listTasks({ tags: { project: "" } });
      assert.deepEqual(new Set(anyValue.tasks.map((task) => task.id)), new Set([id, other]));
    });

    await t.step("cancelTask() cancels a queued task", async () => {
      await client.cancelTask(id);
      assert.deepEqual((await client.getTask(id)).state, "CANCELED");
    });

    await t.step("listAllTasks() follows next_page_token over every page", async () => {
      const v1 = new TesClient(`${server.url}/v1`);
      const ids = new Set<string>();
      for (let i = 0; i < 5; i++) {
        ids.add(await v1.createTask({ ...TASK, name: `paged-${i}`, tags: { paged: "yes" } }));
      }
      const query = { pageSize: 2, tags: { paged: "yes" } };
      const first = await v1.listTasks(query);
      assert.deepEqual(first.tasks.length, 2);
      assert.ok(first.next_page_token, "a first page of 2 out of 5 has a next page");
      const all = await Array.fromAsync(v1.listAllTasks(query));
      assert.deepEqual(all.length, 5);
      assert.deepEqual(new Set(all.map((task) => task.id)), ids);
    });

    await t.step("waitForTask() returns the FULL task once it is terminal", async () => {
      const waited = await client.createTask(TASK);
      const seen: TesState[] = [];
      const task = await client.waitForTask(waited, {
        intervalMs: 10,
        onState: (state) => {
          seen.push(state);
          // The test plays the orchestrator: the task finishes once the client saw it queued.
          if (state === "QUEUED") {
            void server.store.transition(waited, "COMPLETE", {
              executorLogs: [{ exit_code: 0, stdout: "hello\n" }],
            });
          }
        },
      });
      assert.deepEqual(task.state, "COMPLETE");
      assert.deepEqual(task.logs?.[0]?.logs[0]?.stdout, "hello\n");
      assert.deepEqual(seen, ["QUEUED", "COMPLETE"]);
    });

    await t.step("waitForTask() stops with the signal's reason when aborted", async () => {
      const waited = await client.createTask(TASK);
      const controller = new AbortController();
      const reason = new Error("enough");
      const waiting = client.waitForTask(waited, {
        intervalMs: 10,
        signal: controller.signal,
        onState: () => controller.abort(reason),
      });
      assert.equal(await waiting.catch((error) => error), reason);
    });

    await t.step("createTasks() creates many tasks in batches, ids in order", async () => {
      const tasks = [0, 1, 2, 3, 4].map((i) => ({ ...TASK, name: `many-${i}` }));
      const ids = await client.createTasks(tasks, { batchSize: 2 });
      assert.equal(new Set(ids).size, 5);
      for (const [i, id] of ids.entries()) {
        assert.equal((await client.getTask(id, "BASIC")).name, `many-${i}`);
      }
      assert.deepEqual(await client.createTasks([]), []);
      await assert.rejects(client.createTasks([TASK], { batchSize: 0 }), RangeError);
    });

    await t.step("createTasks() reports what was created when a later batch fails", async () => {
      const bad = { ...TASK, executors: [] };
      const first = await rejects(() => client.createTasks([TASK, bad]), TesApiError);
      assert.equal(first.status, 400);
      assert.match(first.serverMessage, /^tasks\[1\]\.executors/);
      const later = await rejects(
        () => client.createTasks([TASK, TASK, TASK, bad], { batchSize: 2 }),
        TesBatchCreateError,
      );
      assert.equal(later.createdIds.length, 2);
      for (const id of later.createdIds) {
        assert.equal((await client.getTask(id)).state, "QUEUED");
      }
      assert.ok(later.cause instanceof TesApiError);
      assert.match(later.message, /stopped after 2 tasks: tasks\[1\]\.executors/);
    });

    await t.step("createTasks() creates one by one on a server without batches", async () => {
      // A hand-written stand-in for a TES server without the extension (Funnel, TESK…): the
      // real Planetary API behind a fetch that answers 404 to `tasks:batch`.
      const posts: string[] = [];
      const plain = new TesClient(server.url, {
        fetch: (input, init) => {
          const url = String(input);
          if (init?.method === "POST") posts.push(new URL(url).pathname);
          return url.endsWith("/tasks:batch")
            ? Promise.resolve(Response.json({ msg: "not found" }, { status: 404 }))
            : fetch(input, init);
        },
      });
      const ids = await plain.createTasks([TASK, TASK, TASK]);
      assert.equal(new Set(ids).size, 3);
      assert.deepEqual(posts, [
        "/ga4gh/tes/v1/tasks:batch",
        "/ga4gh/tes/v1/tasks",
        "/ga4gh/tes/v1/tasks",
        "/ga4gh/tes/v1/tasks",
      ]);
      await plain.createTasks([TASK, TASK]);
      assert.equal(posts.filter((p) => p.endsWith(":batch")).length, 1, "asked once only");
    });

    await t.step("the bearer token is sent, and a missing one is reported", async () => {
      const app = createApp({
        store: server.store,
        config: { logRequests: false, authTokens: { s3cret: "alice" } },
      });
      const secured = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        (request) => app.fetch(request),
      );
      try {
        const url = `http://127.0.0.1:${secured.addr.port}`;
        const error = await rejects(() => new TesClient(url).listTasks(), TesApiError);
        assert.deepEqual(error.status, 401);
        const alice = new TesClient(url, { token: "s3cret" });
        const own = await alice.createTask(TASK);
        assert.deepEqual((await alice.getTask(own)).state, "QUEUED");
      } finally {
        await secured.shutdown();
      }
    });
  } finally {
    await server.close();
  }
});

Deno.test("TesClient throws TesConnectionError when nothing listens", async () => {
  const url = `http://127.0.0.1:${closedPort()}`;
  const client = new TesClient(url, { retries: 2, retryDelayMs: 1 });
  const error = await rejects(() => client.getTask("x"), TesConnectionError);
  assert.deepEqual(error.serverUrl, url);
  assert.deepEqual(error.code, "TES_CONNECTION");
  await rejects(() => client.createTask(TASK), TesConnectionError);
});

/** A hand-written fake server: answers 503 to the first `failures` requests, then 200. */
function startFlakyServer(
  failures: number,
): { url: string; hits: () => number; close(): Promise<void> } {
  let count = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    count++;
    return count <= failures
      ? Response.json({ msg: "database unavailable", status_code: 503 }, { status: 503 })
      : Response.json({ id: "abc" });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    hits: () => count,
    close: () => server.shutdown(),
  };
}

Deno.test("TesClient retries a GET after 503 answers", async () => {
  const flaky = startFlakyServer(2);
  try {
    const client = new TesClient(flaky.url, { retries: 3, retryDelayMs: 1 });
    assert.deepEqual(await client.getTask("abc"), { id: "abc" });
    assert.deepEqual(flaky.hits(), 3);
  } finally {
    await flaky.close();
  }
});

Deno.test("TesClient never retries a POST and reports the 503 with its msg", async () => {
  const flaky = startFlakyServer(1);
  try {
    const client = new TesClient(flaky.url, { retries: 3, retryDelayMs: 1 });
    const error = await rejects(() => client.createTask(TASK), TesApiError);
    assert.deepEqual(error.status, 503);
    assert.deepEqual(error.serverMessage, "database unavailable");
    assert.deepEqual(flaky.hits(), 1);
  } finally {
    await flaky.close();
  }
});

Deno.test("TesClient gives up on a GET after its retries", async () => {
  const flaky = startFlakyServer(10);
  try {
    const client = new TesClient(flaky.url, { retries: 2, retryDelayMs: 1 });
    const error = await rejects(() => client.getTask("abc"), TesApiError);
    assert.deepEqual(error.status, 503);
    assert.deepEqual(flaky.hits(), 3);
  } finally {
    await flaky.close();
  }
});
