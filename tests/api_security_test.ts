/**
 * The HTTP API is safe by default: a web page cannot make it act (JSON content type required,
 * CORS off, `Host` check against DNS rebinding), a stalled body cannot hold a request, and bad
 * values in the URL are 400s naming them, never 500s. In process through `createApp().fetch`
 * against a real store (embedded SQLite, and PostgreSQL where the database itself refuses values), and
 * over a real socket for the body timeout.
 */
import assert from "node:assert/strict";
import { createApp, type PlanetaryApp } from "../src/api/app.ts";
import type { ApiConfig } from "../src/api/config.ts";
import { createJsonLogger } from "../src/api/request_log.ts";
import { openTaskStore } from "../src/store/open_store.ts";
import type { TaskStore } from "../src/store/task_store.ts";
import type { TesTask } from "../src/tes/model.ts";
import { createDatabase, requirePostgres, startPostgres } from "./_harness/postgres.ts";

const TASK: TesTask = {
  name: "security",
  executors: [{ image: "alpine:3.20", command: ["echo", "hi"] }],
  tags: { suite: "security" },
};

interface Answer {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any -- bodies are asserted field by field
  body: any;
}

interface Api {
  app: PlanetaryApp;
  store: TaskStore;
  call(method: string, path: string, init?: RequestInit): Promise<Answer>;
}

function api(store: TaskStore, config: ApiConfig = {}): Api {
  const app = createApp({ store, config: { logRequests: false, ...config }, logger: quiet() });
  const call = async (method: string, path: string, init: RequestInit = {}): Promise<Answer> => {
    const response = await app.fetch(
      new Request(`http://127.0.0.1:8000${path}`, { method, ...init }),
    );
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: JSON.parse(text) };
  };
  return { app, store, call };
}

function quiet(): ReturnType<typeof createJsonLogger> {
  return createJsonLogger(() => {});
}

const JSON_HEADERS = { "content-type": "application/json" };

async function createTask(a: Api, task: TesTask = TASK): Promise<string> {
  const res = await a.call("POST", "/v1/tasks", {
    headers: JSON_HEADERS,
    body: JSON.stringify(task),
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.id;
}

async function stateOf(a: Api, id: string): Promise<string> {
  return (await a.call("GET", `/v1/tasks/${id}`)).body.state;
}

/** A body stream that sends `start` (if not empty) and then never finishes. */
function stalledBody(start: string): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sent && start !== "") {
        controller.enqueue(new TextEncoder().encode(start));
      }
      sent = true;
      // Never enqueue again, never close: pull is not called again until this resolves.
      return new Promise(() => {});
    },
  });
}

type Case = [name: string, fn: (store: TaskStore) => Promise<void>];
const CASES: Case[] = [];
function storeCase(name: string, fn: (store: TaskStore) => Promise<void>): void {
  CASES.push([name, fn]);
}

// 1. -----------------------------------------------------------------------------------------

storeCase(
  "createApp() serves service-info at {base}/tasks/service-info (py-tes < 1)",
  async (s) => {
    const a = api(s, { authTokens: { "t-1": "alice" } });
    const root = await a.call("GET", "/service-info");
    assert.equal(root.status, 200);
    for (const base of ["/v1", "/ga4gh/tes/v1"]) {
      const res = await a.call("GET", `${base}/tasks/service-info`);
      assert.equal(res.status, 200, `${base}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(res.body, root.body, "the same document, and public like the others");
      const post = await a.call("POST", `${base}/tasks/service-info`);
      assert.equal(post.status, 405);
      assert.equal(post.headers.get("allow"), "GET");
    }
    assert.equal((await a.call("GET", "/tasks/service-info")).status, 404, "only under a base");
  },
);

// 2. -----------------------------------------------------------------------------------------

storeCase("createApp() refuses a create without a JSON content type with 415", async (s) => {
  const a = api(s);
  const before = (await a.call("GET", "/v1/tasks?tag_key=suite&tag_value=security")).body.tasks;
  const body = JSON.stringify(TASK);
  for (
    const headers of [
      {},
      { "content-type": "text/plain" },
      { "content-type": "application/x-www-form-urlencoded" },
      { "content-type": "multipart/form-data; boundary=x" },
      { "content-type": "" },
      { "content-type": "application/jsonp" },
    ]
  ) {
    const res = await a.call("POST", "/v1/tasks", {
      headers: { ...headers, origin: "https://evil.example" },
      // A stream, so that fetch adds no text/plain of its own.
      body: new Blob([body]).stream(),
    });
    assert.equal(res.status, 415, JSON.stringify(headers));
    assert.equal(res.body.status_code, 415);
    assert.match(res.body.msg, /^Content-Type/);
    assert.match(res.body.msg, /application\/json/, "says what to send");
  }
  const after = (await a.call("GET", "/v1/tasks?tag_key=suite&tag_value=security")).body.tasks;
  assert.deepEqual(after, before, "no task was created");
  for (const type of ["application/json;charset=UTF-8", "Application/JSON", "application/x+json"]) {
    const res = await a.call("POST", "/v1/tasks", { headers: { "content-type": type }, body });
    assert.equal(res.status, 200, type);
  }
});

storeCase(
  "createApp() cancels with a JSON body or Cromwell's empty undeclared body, nothing else",
  async (s) => {
    const a = api(s);
    // Refused: a page's simple request (text/plain, a form) or an undeclared non-empty body.
    const refused: RequestInit[] = [
      { headers: { "content-type": "text/plain" }, body: "" },
      { headers: { "content-type": "application/x-www-form-urlencoded" }, body: "a=b" },
      { body: new Blob(["{}"]).stream() },
    ];
    const id = await createTask(a);
    for (const init of refused) {
      const res = await a.call("POST", `/v1/tasks/${id}:cancel`, init);
      assert.equal(res.status, 415, JSON.stringify(init.headers));
      assert.match(res.body.msg, /^Content-Type/);
      assert.equal(await stateOf(a, id), "QUEUED", "the task was not canceled");
    }
    // Accepted: py-tes (`{}` as JSON), a JSON type with an empty body, and Cromwell (no
    // Content-Type, no body).
    const accepted: RequestInit[] = [
      { headers: JSON_HEADERS, body: "{}" },
      { headers: { "content-type": "application/json; charset=utf-8" } },
      {},
      { headers: { "content-length": "0" } },
    ];
    for (const init of accepted) {
      const other = await createTask(a);
      const res = await a.call("POST", `/ga4gh/tes/v1/tasks/${other}:cancel`, init);
      assert.equal(res.status, 200, `${JSON.stringify(init)}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(res.body, {});
      assert.equal(await stateOf(a, other), "CANCELED");
    }
  },
);

// 3. -----------------------------------------------------------------------------------------

storeCase("createApp() answers no CORS headers by default", async (s) => {
  const a = api(s);
  const origin = { origin: "https://evil.example" };
  const get = await a.call("GET", "/v1/tasks", { headers: origin });
  assert.equal(get.status, 200);
  assert.equal(get.headers.get("access-control-allow-origin"), null);
  const preflight = await a.call("OPTIONS", "/v1/tasks", {
    headers: {
      ...origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type",
    },
  });
  assert.notEqual(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), null);
  assert.equal(preflight.headers.get("access-control-allow-methods"), null);
  const on = api(s, { corsOrigins: ["https://ui.example"] });
  const allowed = await on.call("GET", "/v1/tasks", { headers: { origin: "https://ui.example" } });
  assert.equal(allowed.headers.get("access-control-allow-origin"), "https://ui.example");
});

// 4. -----------------------------------------------------------------------------------------

storeCase("createApp() with allowedHosts refuses other Host names with 403", async (s) => {
  const a = api(s, { allowedHosts: ["tes.example"] });
  const withHost = (host: string, method = "GET", path = "/v1/tasks", init: RequestInit = {}) =>
    a.call(method, path, { ...init, headers: { ...init.headers, host } });

  const evil = await withHost("evil.example:8000");
  assert.equal(evil.status, 403);
  assert.deepEqual(evil.body, {
    msg:
      'Host "evil.example" is not allowed; start the server with --allow-host evil.example to allow it',
    status_code: 403,
  });
  const post = await withHost("evil.example", "POST", "/v1/tasks", {
    headers: JSON_HEADERS,
    body: JSON.stringify({ ...TASK, name: "rebound" }),
  });
  assert.equal(post.status, 403);
  const rebound = await a.call("GET", "/v1/tasks?name_prefix=rebound");
  assert.deepEqual(rebound.body.tasks, [], "no task was created");
  assert.equal((await withHost("evil.example", "GET", "/service-info")).status, 403);
  for (const host of ["localhost.evil.example", "127.0.0.1.evil.example", "tes.example.evil"]) {
    assert.equal((await withHost(host)).status, 403, host);
  }

  for (
    const host of [
      "tes.example",
      "TES.example:443",
      "tes.example.",
      "localhost:8000",
      "ui.localhost",
      "127.0.0.1:8000",
      "127.8.9.10",
      "[::1]:8000",
    ]
  ) {
    assert.equal((await withHost(host)).status, 200, host);
  }
  // Health routes stay open: a kubelet probe sends the pod IP as Host.
  assert.equal((await withHost("10.1.2.3:8000", "GET", "/healthz")).status, 200);
  assert.equal((await withHost("10.1.2.3:8000", "GET", "/readyz")).status, 200);

  const any = api(s, { allowedHosts: ["*"] });
  const anyHost = await any.call("GET", "/v1/tasks", { headers: { host: "evil.example" } });
  assert.equal(anyHost.status, 200);
  const unchecked = api(s);
  const noCheck = await unchecked.call("GET", "/v1/tasks", { headers: { host: "evil.example" } });
  assert.equal(noCheck.status, 200, "no check unless configured");
});

// 5. -----------------------------------------------------------------------------------------

storeCase("createApp() answers 408 to a body that stops arriving", async (s) => {
  const a = api(s, { bodyTimeoutMs: 100 });
  const create = await a.call("POST", "/v1/tasks", {
    headers: JSON_HEADERS,
    body: stalledBody('{"na'),
  });
  assert.equal(create.status, 408);
  assert.deepEqual(create.body, {
    msg: "request body: not received within 100 ms; send the whole body without pausing",
    status_code: 408,
  });
  const id = await createTask(a);
  // Without a Content-Type a cancel body must be empty: waited for until the limit, then 408.
  const cancel = await a.call("POST", `/v1/tasks/${id}:cancel`, { body: stalledBody("") });
  assert.equal(cancel.status, 408);
  assert.equal(await stateOf(a, id), "QUEUED");
});

// 6. -----------------------------------------------------------------------------------------

/** Bad values in the URL; each must be a 400 whose message starts with the parameter. */
const BAD_URLS: [method: string, path: string, parameter: string][] = (() => {
  const long = "x".repeat(10 * 1024);
  const rows: [string, string, string][] = [];
  for (const value of ["%00", `a%00b`, long]) {
    rows.push(["GET", `/v1/tasks?name_prefix=${value}`, "name_prefix"]);
    rows.push(["GET", `/v1/tasks?tag_key=${value}`, "tag_key"]);
    rows.push(["GET", `/v1/tasks?tag_key=k&tag_value=${value}`, "tag_value"]);
    rows.push(["GET", `/v1/tasks?page_token=${value}`, "page_token"]);
    rows.push(["GET", `/v1/tasks?view=${value}`, "view"]);
    rows.push(["GET", `/v1/tasks?state=${value}`, "state"]);
    rows.push(["GET", `/v1/tasks/abc?view=${value}`, "view"]);
    rows.push(["GET", `/v1/tasks/abc${value}`, "id"]);
    rows.push(["POST", `/v1/tasks/abc${value}:cancel`, "id"]);
    rows.push(["POST", `/ga4gh/tes/v1/tasks/${value}:cancel`, "id"]);
  }
  return rows;
})();

async function assertBadUrls(store: TaskStore): Promise<void> {
  const a = api(store);
  const failures: string[] = [];
  for (const [method, path, parameter] of BAD_URLS) {
    const res = await a.call(method, path);
    const shown = `${method} ${path.slice(0, 60)}`;
    if (res.status !== 400) failures.push(`${shown}: ${res.status} ${res.body.msg}`);
    else if (!res.body.msg.startsWith(`${parameter}:`)) {
      failures.push(`${shown}: msg ${JSON.stringify(res.body.msg)} does not name ${parameter}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.equal((await a.call("GET", "/v1/tasks/no-such-task")).status, 404, "unknown is 404");
  assert.equal((await a.call("POST", "/v1/tasks/no-such-task:cancel")).status, 404);
  const lastValid = "y".repeat(256);
  assert.equal((await a.call("GET", `/v1/tasks/${lastValid}`)).status, 404, "256 bytes is fine");
}

storeCase(
  "createApp() answers 400 naming the parameter to a NUL or over-long URL value",
  (s) => assertBadUrls(s),
);

// ---------------------------------------------------------------------------------------------

Deno.test("createApp() is safe by default, against one in-memory SQLite store", async (t) => {
  const store = await openTaskStore({});
  try {
    for (const [name, fn] of CASES) await t.step(name, () => fn(store));
  } finally {
    await store.close();
  }
});

Deno.test({
  name: "createApp() answers 400, not 500, to NUL and over-long URL values on PostgreSQL",
  ignore: !requirePostgres(),
  async fn() {
    const cluster = await startPostgres();
    let store: TaskStore | undefined;
    try {
      store = await openTaskStore({
        databaseUrl: await createDatabase(cluster, "planetary_api_security"),
      });
      await assertBadUrls(store);
    } finally {
      await store?.close().catch(() => {});
      await cluster.stop();
    }
  },
});

Deno.test("Deno.serve(createApp().fetch) answers 408 over a socket to a body that stalls", async () => {
  const store = await openTaskStore({});
  const app = createApp({ store, config: { bodyTimeoutMs: 200, logRequests: false } });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    // Headers announce 1000 bytes; 4 arrive, then nothing.
    await conn.write(
      new TextEncoder().encode(
        "POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
          'Content-Length: 1000\r\n\r\n{"na',
      ),
    );
    let text = "";
    const buffer = new Uint8Array(4096);
    const decoder = new TextDecoder();
    // Read until the whole JSON answer is in (its length is in the headers).
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
      const split = text.indexOf("\r\n\r\n");
      const length = /content-length: (\d+)/i.exec(text)?.[1];
      if (split >= 0 && length !== undefined && text.length - split - 4 >= Number(length)) break;
    }
    assert.match(text, /^HTTP\/1\.1 408 /);
    const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
    assert.deepEqual(body, {
      msg: "request body: not received within 200 ms; send the whole body without pausing",
      status_code: 408,
    });
  } finally {
    conn.close();
    await server.shutdown();
    await store.close();
  }
});
