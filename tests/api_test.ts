/**
 * The HTTP API end to end against a real store (SQLite in memory): every route under both
 * prefixes, views, filters, pagination, cancel semantics, errors, logs, auth; in process
 * through the fetch handler, and once over a real socket.
 */
import { assert, assertEquals, assertMatch, assertNotEquals } from "./_api_assert.ts";
import { createApp, type PlanetaryApp } from "../src/api/app.ts";
import type { ApiConfig } from "../src/api/config.ts";
import type { ApiLogger, RequestLogLine } from "../src/api/request_log.ts";
import { openTaskStore } from "../src/store/open_store.ts";
import type { TaskStore } from "../src/store/task_store.ts";
import { startServer } from "../src/server/start_server.ts";
import { createDatabase, requirePostgres, startPostgres } from "./_harness/postgres.ts";
import type { TesTask } from "../src/tes/model.ts";
import denoJson from "../deno.json" with { type: "json" };

const PREFIXES = ["/ga4gh/tes/v1", "/v1"] as const;

/** A logger that keeps what it is given, to assert on it. */
class RecordingLogger implements ApiLogger {
  requests: RequestLogLine[] = [];
  warnings: { message: string; fields: Record<string, unknown> | undefined }[] = [];
  errors: { message: string; fields: Record<string, unknown> | undefined }[] = [];
  request(line: RequestLogLine): void {
    this.requests.push(line);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.warnings.push({ message, fields });
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.errors.push({ message, fields });
  }
}

interface Harness {
  app: PlanetaryApp;
  store: TaskStore;
  logger: RecordingLogger;
  call(method: string, path: string, init?: CallInit): Promise<CallResult>;
}

interface CallInit {
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
}

interface CallResult {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any -- response bodies are asserted field by field
  body: any;
  text: string;
}

type ApiCase = [name: string, config: ApiConfig, fn: (h: Harness) => Promise<void>];
const API_CASES: ApiCase[] = [];

/** Registers a case run against the one shared store (one store for every case). */
function apiCase(name: string, config: ApiConfig, fn: (h: Harness) => Promise<void>): void {
  API_CASES.push([name, config, fn]);
}

async function withApi(
  store: TaskStore,
  config: ApiConfig,
  fn: (h: Harness) => Promise<void>,
): Promise<void> {
  const logger = new RecordingLogger();
  const app = createApp({ store, config, logger });
  const call = async (method: string, path: string, init: CallInit = {}): Promise<CallResult> => {
    const headers = new Headers(init.headers);
    let body = init.body;
    if (init.json !== undefined) {
      body = JSON.stringify(init.json);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
    }
    const response = await app.fetch(
      new Request(`http://planetary.test${path}`, { method, headers, body: body ?? null }),
    );
    const text = await response.text();
    let parsed: unknown = undefined;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, headers: response.headers, body: parsed, text };
  };
  await fn({ app, store, logger, call });
}

function sampleTask(overrides: Partial<TesTask> = {}): TesTask {
  return {
    name: "sample",
    description: "a sample task",
    inputs: [
      { path: "/data/in.txt", content: "inline secret-ish content" },
      { path: "/data/ref.fa", url: "s3://bucket/ref.fa" },
    ],
    outputs: [{ path: "/data/out.txt", url: "s3://bucket/out.txt" }],
    resources: { cpu_cores: 2, ram_gb: 4, disk_gb: 10, preemptible: false, zones: ["z1"] },
    executors: [{
      image: "alpine:3.20",
      command: ["sh", "-c", "cat /data/in.txt > /data/out.txt"],
      workdir: "/data",
      env: { GREETING: "hello" },
    }],
    volumes: ["/scratch"],
    tags: { project: "api-test" },
    ...overrides,
  };
}

async function create(h: Harness, task: TesTask, prefix = "/v1"): Promise<string> {
  const res = await h.call("POST", `${prefix}/tasks`, { json: task });
  assertEquals(res.status, 200, res.text);
  assertEquals(Object.keys(res.body), ["id"]);
  assertEquals(typeof res.body.id, "string");
  return res.body.id;
}

apiCase("createApp() serves service-info at the root and under both prefixes", {
  supportedBackendParameters: ["VmSize"],
  serviceInfo: {
    id: "org.example.tes",
    name: "Example TES",
    description: "test instance",
    organization: { name: "Example", url: "https://example.org" },
    contactUrl: "mailto:ops@example.org",
    environment: "test",
    storage: ["s3://bucket"],
  },
}, async (h) => {
  const root = await h.call("GET", "/service-info");
  assertEquals(root.status, 200);
  assertEquals(root.body, {
    id: "org.example.tes",
    name: "Example TES",
    type: { group: "org.ga4gh", artifact: "tes", version: "1.1.0" },
    description: "test instance",
    organization: { name: "Example", url: "https://example.org" },
    contactUrl: "mailto:ops@example.org",
    environment: "test",
    version: denoJson.version,
    storage: ["s3://bucket"],
    tesResources_backend_parameters: ["VmSize"],
  });
  assertMatch(root.headers.get("content-type") ?? "", /^application\/json/);
  for (const prefix of PREFIXES) {
    const res = await h.call("GET", `${prefix}/service-info`);
    assertEquals(res.status, 200);
    assertEquals(res.body, root.body);
  }
});

apiCase("createApp() creates and gets tasks in every view under both prefixes", {}, async (h) => {
  for (const prefix of PREFIXES) {
    const id = await create(h, sampleTask(), prefix);
    for (const other of PREFIXES) {
      const minimal = await h.call("GET", `${other}/tasks/${id}`);
      assertEquals(minimal.status, 200);
      assertEquals(minimal.body, { id, state: "QUEUED" });
      const explicitMinimal = await h.call("GET", `${other}/tasks/${id}?view=MINIMAL`);
      assertEquals(explicitMinimal.body, { id, state: "QUEUED" });
    }
    const basic = await h.call("GET", `${prefix}/tasks/${id}?view=BASIC`);
    assertEquals(basic.status, 200);
    assertEquals(basic.body.id, id);
    assertEquals(basic.body.state, "QUEUED");
    assertEquals(basic.body.name, "sample");
    assertEquals(basic.body.executors[0].command, [
      "sh",
      "-c",
      "cat /data/in.txt > /data/out.txt",
    ]);
    assertEquals(basic.body.resources.cpu_cores, 2);
    assertEquals(basic.body.tags, { project: "api-test" });
    assertEquals(basic.body.inputs[0].content, undefined, "BASIC omits input content");
    assertEquals(basic.body.inputs[1].url, "s3://bucket/ref.fa");
    assertMatch(
      basic.body.creation_time,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/,
    );

    const full = await h.call("GET", `${prefix}/tasks/${id}?view=FULL`);
    assertEquals(full.status, 200);
    assertEquals(full.body.inputs[0].content, "inline secret-ish content");
    assertEquals(full.body.executors[0].env, { GREETING: "hello" });
    assertEquals(full.body.volumes, ["/scratch"]);
    const lower = await h.call("GET", `${prefix}/tasks/${id}?view=full`);
    assertEquals(lower.body, full.body, "view names are case-insensitive");
  }
});

apiCase(
  "createApp() accepts json with a charset and refuses a body without a content type",
  {},
  async (h) => {
    const body = JSON.stringify(sampleTask());
    const withCharset = await h.call("POST", "/v1/tasks", {
      body,
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    assertEquals(withCharset.status, 200, withCharset.text);
    // A Request with a string body defaults to text/plain; build one without any content type:
    // a web page can send that without a CORS preflight, so it must not create a task.
    const res = await h.app.fetch(
      new Request("http://planetary.test/v1/tasks", {
        method: "POST",
        body: new Blob([body]).stream(),
      }),
    );
    assertEquals(res.status, 415, await res.clone().text());
    assertMatch((await res.json()).msg, /Content-Type: missing/);
  },
);

apiCase("createApp() drops unsupported backend parameters with a logged warning", {
  supportedBackendParameters: ["VmSize"],
}, async (h) => {
  const id = await create(
    h,
    sampleTask({
      resources: { backend_parameters: { VmSize: "large", Unknown: "x" } },
    }),
  );
  const full = await h.call("GET", `/v1/tasks/${id}?view=FULL`);
  assertEquals(full.body.resources.backend_parameters, { VmSize: "large" });
  const warning = h.logger.warnings.find((w) => w.fields?.task_id === id);
  assert(warning !== undefined, "a warning names the task");
  assertMatch(String(warning.fields?.warnings), /backend_parameters\.Unknown/);
  assertEquals(typeof warning.fields?.request_id, "string");
});

apiCase("createApp() lists tasks with filters, views and keyset pages", {}, async (h) => {
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push(
      await create(
        h,
        sampleTask({
          name: `batch-${i}`,
          tags: {
            run: "r1",
            parity: i % 2 === 0 ? "even" : "odd",
            ...(i === 0 ? { first: "" } : {}),
          },
        }),
      ),
    );
  }
  const other = await create(h, sampleTask({ name: "other", tags: { run: "r2" } }));
  await h.call("POST", `/v1/tasks/${ids[4]}:cancel`);

  for (const prefix of PREFIXES) {
    const all = await h.call("GET", `${prefix}/tasks`);
    assertEquals(all.status, 200);
    assertEquals(all.body.next_page_token, undefined);
    const listed = all.body.tasks.map((t: TesTask) => t.id);
    for (const id of [...ids, other]) assert(listed.includes(id), `lists ${id}`);
    for (const task of all.body.tasks) {
      assertEquals(Object.keys(task).sort(), ["id", "state"], "MINIMAL by default");
    }

    const prefixed = await h.call("GET", `${prefix}/tasks?name_prefix=batch-`);
    assertEquals(new Set(prefixed.body.tasks.map((t: TesTask) => t.id)), new Set(ids));

    const canceled = await h.call("GET", `${prefix}/tasks?state=CANCELED&name_prefix=batch-`);
    assertEquals(canceled.body.tasks.map((t: TesTask) => t.id), [ids[4]]);

    const even = await h.call(
      "GET",
      `${prefix}/tasks?tag_key=run&tag_value=r1&tag_key=parity&tag_value=even`,
    );
    assertEquals(
      new Set(even.body.tasks.map((t: TesTask) => t.id)),
      new Set([ids[0], ids[2], ids[4]]),
    );
    // A tag_key without a tag_value asks only that the key exists.
    const hasParity = await h.call("GET", `${prefix}/tasks?tag_key=parity`);
    assertEquals(new Set(hasParity.body.tasks.map((t: TesTask) => t.id)), new Set(ids));
    const hasFirst = await h.call(
      "GET",
      `${prefix}/tasks?tag_key=parity&tag_value=even&tag_key=first`,
    );
    assertEquals(hasFirst.body.tasks.map((t: TesTask) => t.id), [ids[0]]);
    const noMatch = await h.call("GET", `${prefix}/tasks?tag_key=run&tag_value=nope`);
    assertEquals(noMatch.body, { tasks: [] });

    const basic = await h.call("GET", `${prefix}/tasks?view=BASIC&name_prefix=other`);
    assertEquals(basic.body.tasks.length, 1);
    assertEquals(basic.body.tasks[0].name, "other");
    assertEquals(basic.body.tasks[0].inputs[0].content, undefined);
    const full = await h.call("GET", `${prefix}/tasks?view=FULL&name_prefix=other`);
    assertEquals(full.body.tasks[0].inputs[0].content, "inline secret-ish content");

    // Walk pages of 2: every task once, newest first, a token on all but the last page.
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const query = `page_size=2&name_prefix=batch-${
        token === undefined ? "" : `&page_token=${encodeURIComponent(token)}`
      }`;
      const page = await h.call("GET", `${prefix}/tasks?${query}`);
      assertEquals(page.status, 200, page.text);
      assert(page.body.tasks.length <= 2);
      seen.push(...page.body.tasks.map((t: TesTask) => t.id));
      token = page.body.next_page_token;
      pages++;
      assert(pages < 10, "pagination ends");
    } while (token !== undefined);
    assertEquals(seen, [...ids].reverse());
    assert(pages >= 3);
  }
});

apiCase("createApp() cancels tasks idempotently and routes the colon verb", {}, async (h) => {
  for (const prefix of PREFIXES) {
    const queued = await create(h, sampleTask(), prefix);
    const res = await h.call("POST", `${prefix}/tasks/${queued}:cancel`);
    assertEquals(res.status, 200, res.text);
    assertEquals(res.body, {});
    assertEquals((await h.call("GET", `${prefix}/tasks/${queued}`)).body.state, "CANCELED");
    const again = await h.call("POST", `${prefix}/tasks/${queued}:cancel`);
    assertEquals(again.status, 200, "cancel of a terminal task is not an error");
    assertEquals(again.body, {});
    assertEquals((await h.call("GET", `${prefix}/tasks/${queued}`)).body.state, "CANCELED");

    const running = await create(h, sampleTask(), prefix);
    assert(await h.store.transition(running, "RUNNING"));
    assertEquals((await h.call("POST", `${prefix}/tasks/${running}:cancel`)).status, 200);
    assertEquals((await h.call("GET", `${prefix}/tasks/${running}`)).body.state, "CANCELING");

    const done = await create(h, sampleTask(), prefix);
    assert(await h.store.transition(done, "COMPLETE"));
    assertEquals((await h.call("POST", `${prefix}/tasks/${done}:cancel`)).body, {});
    assertEquals((await h.call("GET", `${prefix}/tasks/${done}`)).body.state, "COMPLETE");

    const unknown = await h.call("POST", `${prefix}/tasks/no-such-task:cancel`);
    assertEquals(unknown.status, 404);
    assertMatch(unknown.body.msg, /no-such-task/);
  }
});

apiCase(
  "createApp() serves task logs and outputs written by the orchestrator in FULL",
  {},
  async (h) => {
    const id = await create(h, sampleTask());
    assert(
      await h.store.transition(id, "RUNNING", { startTime: new Date("2024-01-02T03:04:05Z") }),
    );
    assert(
      await h.store.transition(id, "EXECUTOR_ERROR", {
        executorLogs: [{ exit_code: 3, stdout: "out", stderr: "err" }],
        outputs: [{ url: "s3://bucket/out.txt", path: "/data/out.txt", size_bytes: "12" }],
        systemLogs: ["executor 0 exited with code 3"],
        endTime: new Date("2024-01-02T03:05:05Z"),
      }),
    );
    const full = await h.call("GET", `/ga4gh/tes/v1/tasks/${id}?view=FULL`);
    assertEquals(full.body.state, "EXECUTOR_ERROR");
    const log = full.body.logs[0];
    assertEquals(log.logs[0].exit_code, 3);
    assertEquals(log.logs[0].stdout, "out");
    assertEquals(log.outputs, [{
      url: "s3://bucket/out.txt",
      path: "/data/out.txt",
      size_bytes: "12",
    }]);
    assertEquals(log.system_logs, ["executor 0 exited with code 3"]);
    const basic = await h.call("GET", `/ga4gh/tes/v1/tasks/${id}?view=BASIC`);
    assertEquals(basic.body.logs[0].logs[0].exit_code, 3);
    assertEquals(basic.body.logs[0].logs[0].stdout, undefined, "BASIC omits stdout");
    assertEquals(basic.body.logs[0].system_logs, undefined, "BASIC omits system_logs");
  },
);

apiCase(
  "createApp() answers wrong methods with 405 and Allow, unknown routes with 404",
  {},
  async (h) => {
    for (const prefix of PREFIXES) {
      const cases: [string, string, string][] = [
        ["PUT", `${prefix}/tasks`, "GET, POST"],
        ["DELETE", `${prefix}/tasks`, "GET, POST"],
        ["DELETE", `${prefix}/tasks/abc`, "GET"],
        ["POST", `${prefix}/tasks/abc`, "GET"],
        ["GET", `${prefix}/tasks/abc:cancel`, "POST"],
        ["POST", `${prefix}/service-info`, "GET"],
      ];
      for (const [method, path, allow] of cases) {
        const res = await h.call(method, path);
        assertEquals(res.status, 405, `${method} ${path}`);
        assertEquals(res.headers.get("allow"), allow);
        assertEquals(res.body.status_code, 405);
        assertMatch(res.body.msg, new RegExp(method));
      }
      const unknown = await h.call("GET", `${prefix}/nothing-here`);
      assertEquals(unknown.status, 404);
      assertEquals(unknown.body, {
        msg: `No route for GET ${prefix}/nothing-here`,
        status_code: 404,
      });
    }
    assertEquals((await h.call("GET", "/tasks")).status, 404, "tasks only under a prefix");
  },
);

apiCase(
  "createApp() sets request ids, CORS headers and one log line per request",
  { corsOrigins: ["*"] },
  async (h) => {
    const generated = await h.call("GET", "/service-info");
    assertMatch(generated.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    const given = await h.call("GET", "/service-info", { headers: { "x-request-id": "req-42" } });
    assertEquals(given.headers.get("x-request-id"), "req-42");
    const unsafe = await h.call("GET", "/service-info", {
      headers: { "x-request-id": "bad id\twith spaces" },
    });
    assertNotEquals(unsafe.headers.get("x-request-id"), "bad id\twith spaces");

    const cors = await h.call("GET", "/v1/service-info", {
      headers: { origin: "https://ui.example" },
    });
    assertEquals(cors.headers.get("access-control-allow-origin"), "*");
    assertEquals(cors.headers.get("access-control-allow-credentials"), null);
    const preflight = await h.call("OPTIONS", "/v1/tasks", {
      headers: {
        origin: "https://ui.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
      },
    });
    assertEquals(preflight.status, 204);
    assertMatch(preflight.headers.get("access-control-allow-methods") ?? "", /POST/);

    h.logger.requests.length = 0;
    const secret = "s3cr3t-value-never-logged";
    const id = await create(
      h,
      sampleTask({ executors: [{ image: "alpine", command: ["echo", secret] }] }),
    );
    await h.call("GET", `/v1/tasks/${id}?view=FULL`, { headers: { "x-request-id": "req-full" } });
    await h.call("GET", "/v1/tasks/missing");
    assertEquals(h.logger.requests.length, 3, "one line per request");
    const [post, get, missing] = h.logger.requests;
    assertEquals(post?.method, "POST");
    assertEquals(post?.path, "/v1/tasks");
    assertEquals(post?.status, 200);
    assertEquals(get?.request_id, "req-full");
    assertEquals(get?.path, `/v1/tasks/${id}`, "path without query string");
    assert((get?.bytes ?? 0) > 0, "response size is logged");
    assert((get?.duration_ms ?? -1) >= 0);
    assertEquals(missing?.status, 404);
    assert(!JSON.stringify(h.logger.requests).includes(secret), "no request bodies in logs");
  },
);

apiCase(
  "createApp() writes no request log lines when logRequests is false",
  { logRequests: false },
  async (h) => {
    await h.call("GET", "/service-info");
    await h.call("GET", "/v1/tasks/missing");
    assertEquals(h.logger.requests, []);
  },
);

apiCase(
  "createApp() restricts CORS to configured origins",
  { corsOrigins: ["https://ok.example"] },
  async (h) => {
    const ok = await h.call("GET", "/v1/service-info", {
      headers: { origin: "https://ok.example" },
    });
    assertEquals(ok.headers.get("access-control-allow-origin"), "https://ok.example");
    const other = await h.call("GET", "/v1/service-info", {
      headers: { origin: "https://evil.example" },
    });
    assertNotEquals(other.headers.get("access-control-allow-origin"), "https://evil.example");
    assertNotEquals(other.headers.get("access-control-allow-origin"), "*");
  },
);

Deno.test("createApp() serves health checks; readyz and task routes fail safely once the store is gone", async () => {
  const store = await openTaskStore({});
  const logger = new RecordingLogger();
  const app = createApp({ store, logger });
  const get = async (path: string): Promise<Response> =>
    await app.fetch(
      new Request(`http://planetary.test${path}`, { headers: { "x-request-id": "req-down" } }),
    );
  try {
    assertEquals(await (await get("/healthz")).json(), { status: "ok" });
    const ready = await get("/readyz");
    assertEquals(ready.status, 200);
    assertEquals(await ready.json(), { status: "ready" });
  } finally {
    await store.close();
  }
  assertEquals((await get("/healthz")).status, 200, "the process is still up");
  const notReady = await get("/readyz");
  assertEquals(notReady.status, 503);
  assertEquals((await notReady.json()).status_code, 503);
  const list = await get("/v1/tasks");
  assert([500, 503].includes(list.status), `status ${list.status}`);
  const text = await list.text();
  const body = JSON.parse(text);
  assert(
    ["Internal server error", "The task database is unavailable; retry later"].includes(body.msg),
    `reveals nothing: ${text}`,
  );
  assert(!/\bat\s+\S+:\d+/.test(text), "no stack trace");
  const logged = logger.errors.find((e) =>
    e.fields?.request_id === "req-down" && e.fields?.path === "/v1/tasks"
  );
  assert(logged !== undefined, "the error is logged with the request id");
});

apiCase("createApp() with authTokens requires a bearer token and scopes tasks to their owner", {
  authTokens: { "token-alice": "alice", "token-bob": "bob" },
}, async (h) => {
  const alice = { authorization: "Bearer token-alice" };
  const bob = { authorization: "Bearer token-bob" };
  const anonymous = await h.call("GET", "/v1/tasks");
  assertEquals(anonymous.status, 401);
  assertMatch(anonymous.headers.get("www-authenticate") ?? "", /^Bearer/);
  assertEquals(anonymous.body.status_code, 401);
  assertEquals((await h.call("POST", "/v1/tasks", { json: sampleTask() })).status, 401);
  const wrong = await h.call("GET", "/ga4gh/tes/v1/tasks", {
    headers: { authorization: "Bearer nope" },
  });
  assertEquals(wrong.status, 401);
  assertEquals((await h.call("GET", "/v1/service-info")).status, 200, "service-info is public");
  assertEquals((await h.call("GET", "/healthz")).status, 200, "health is public");

  const created = await h.call("POST", "/v1/tasks", { json: sampleTask(), headers: alice });
  assertEquals(created.status, 200);
  const id = created.body.id;
  assertEquals((await h.call("GET", `/v1/tasks/${id}`, { headers: alice })).status, 200);
  assertEquals((await h.call("GET", `/v1/tasks/${id}`, { headers: bob })).status, 404);
  assertEquals((await h.call("POST", `/v1/tasks/${id}:cancel`, { headers: bob })).status, 404);
  const bobList = await h.call("GET", "/v1/tasks", { headers: bob });
  assertEquals(bobList.body.tasks, []);
  const aliceList = await h.call("GET", "/v1/tasks", { headers: alice });
  assertEquals(aliceList.body.tasks.map((t: TesTask) => t.id), [id]);
  assertEquals(h.logger.requests.at(-1)?.user, "alice");
});

apiCase("createApp() creates a batch of tasks in order under both prefixes (tasks:batch)", {
  maxBatchTasks: 5,
  authTokens: { "token-alice": "alice", "token-bob": "bob" },
}, async (h) => {
  const alice = { authorization: "Bearer token-alice" };
  for (const prefix of PREFIXES) {
    const marker = crypto.randomUUID();
    const tasks = [0, 1, 2].map((i) => sampleTask({ name: `b${i}`, tags: { batch: marker } }));
    const created = await h.call("POST", `${prefix}/tasks:batch`, {
      json: { tasks },
      headers: alice,
    });
    assertEquals(created.status, 200, created.text);
    const ids: string[] = created.body.ids;
    assertEquals(ids.length, 3);
    for (const [i, id] of ids.entries()) {
      const got = await h.call("GET", `${prefix}/tasks/${id}?view=FULL`, { headers: alice });
      assertEquals(got.body.name, `b${i}`, got.text);
      assertEquals(got.body.inputs[0].content, "inline secret-ish content");
    }
    const listed = await h.call("GET", `${prefix}/tasks?tag_key=batch&tag_value=${marker}`, {
      headers: alice,
    });
    assertEquals(listed.body.tasks.map((t: TesTask) => t.id), [...ids].reverse());
    // the owner applies to every task of the batch
    const bob = await h.call("GET", `${prefix}/tasks/${ids[0]}`, {
      headers: { authorization: "Bearer token-bob" },
    });
    assertEquals(bob.status, 404);
  }
  assertEquals((await h.call("POST", "/v1/tasks:batch", { json: { tasks: [] } })).status, 401);

  // one bad task refuses the whole batch, naming its index; nothing is created
  const marker = crypto.randomUUID();
  const bad = await h.call("POST", "/v1/tasks:batch", {
    headers: alice,
    json: {
      tasks: [
        sampleTask({ tags: { batch: marker } }),
        sampleTask({ tags: { batch: marker } }),
        { ...sampleTask({ tags: { batch: marker } }), executors: [] },
      ],
    },
  });
  assertEquals(bad.status, 400);
  assertMatch(bad.body.msg, /^tasks\[2\]\.executors: /);
  const none = await h.call("GET", `/v1/tasks?tag_key=batch&tag_value=${marker}`, {
    headers: alice,
  });
  assertEquals(none.body.tasks, [], "a refused batch creates nothing");

  const cases: [unknown, RegExp][] = [
    [[sampleTask()], /^request body: expected an object/],
    [{}, /^tasks: required/],
    [{ tasks: sampleTask() }, /^tasks: expected an array/],
    [{ tasks: [] }, /^tasks: must hold at least one task/],
    [{ tasks: Array.from({ length: 6 }, () => sampleTask()) }, /at most 5 tasks per batch, got 6/],
    [{ tasks: [sampleTask(), "x"] }, /^tasks\[1\]: /],
  ];
  for (const [json, message] of cases) {
    const refused = await h.call("POST", "/ga4gh/tes/v1/tasks:batch", { json, headers: alice });
    assertEquals(refused.status, 400, JSON.stringify(json).slice(0, 80));
    assertMatch(refused.body.msg, message);
  }
  const get = await h.call("GET", "/v1/tasks:batch", { headers: alice });
  assertEquals(get.status, 405);
  assertEquals(get.headers.get("allow"), "POST");
});

apiCase("createApp() refuses a streamed body past the limit without reading it all", {
  maxBodyBytes: 64 * 1024,
}, async (h) => {
  let pulled = 0;
  const chunk = new TextEncoder().encode(" ".repeat(16 * 1024));
  const total = 16 * 1024 * 1024;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled >= total) return controller.close();
      pulled += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  const res = await h.app.fetch(
    new Request("http://planetary.test/v1/tasks", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: stream,
    }),
  );
  assertEquals(res.status, 413);
  assertMatch((await res.json()).msg, /65536/);
  assert(pulled < 1024 * 1024, `stopped reading early (read ${pulled} bytes)`);
});

// ---------------------------------------------------------------------------------------------
// Bad input: every malformed request gets a 4xx that names the problem, never a 500.

interface BadCase {
  name: string;
  method: string;
  path: string;
  body?: string | Uint8Array<ArrayBuffer>;
  contentType?: string | null;
  status: number;
  msg: RegExp;
}

function taskWith(patch: (task: Record<string, unknown>) => void): string {
  const task = JSON.parse(JSON.stringify(sampleTask())) as Record<string, unknown>;
  patch(task);
  return JSON.stringify(task);
}

// deno-lint-ignore no-explicit-any -- the patches build deliberately wrong shapes
type Loose = any;

const BAD_CASES: BadCase[] = [
  {
    name: "bad JSON",
    method: "POST",
    path: "/v1/tasks",
    body: '{"executors": [',
    status: 400,
    msg: /not valid JSON/,
  },
  {
    name: "JSON array body",
    method: "POST",
    path: "/v1/tasks",
    body: "[]",
    status: 400,
    msg: /object/,
  },
  {
    name: "JSON string body",
    method: "POST",
    path: "/v1/tasks",
    body: '"hello"',
    status: 400,
    msg: /object/,
  },
  {
    name: "JSON null body",
    method: "POST",
    path: "/v1/tasks",
    body: "null",
    status: 400,
    msg: /object/,
  },
  { name: "empty body", method: "POST", path: "/v1/tasks", body: "", status: 400, msg: /empty/ },
  {
    name: "invalid UTF-8",
    method: "POST",
    path: "/v1/tasks",
    body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    status: 400,
    msg: /UTF-8/,
  },
  {
    name: "missing executors",
    method: "POST",
    path: "/v1/tasks",
    body: "{}",
    status: 400,
    msg: /executors/,
  },
  {
    name: "empty executors",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t) => (t.executors = [])),
    status: 400,
    msg: /executors/,
  },
  {
    name: "executors not an array",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t) => (t.executors = "alpine")),
    status: 400,
    msg: /executors/,
  },
  {
    name: "empty image",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.executors[0].image = "")),
    status: 400,
    msg: /executors\[0\]\.image/,
  },
  {
    name: "missing command",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => delete t.executors[0].command),
    status: 400,
    msg: /executors\[0\]\.command/,
  },
  {
    name: "command as a string",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.executors[0].command = "echo hi")),
    status: 400,
    msg: /executors\[0\]\.command/,
  },
  {
    name: "empty command",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.executors[0].command = [])),
    status: 400,
    msg: /executors\[0\]\.command/,
  },
  {
    name: "relative workdir",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.executors[0].workdir = "data")),
    status: 400,
    msg: /executors\[0\]\.workdir/,
  },
  {
    name: "relative stdout",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.executors[0].stdout = "out.log")),
    status: 400,
    msg: /executors\[0\]\.stdout/,
  },
  {
    name: "env value not a string",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.executors[0].env = { N: 1 })),
    status: 400,
    msg: /executors\[0\]\.env/,
  },
  {
    name: "cpu_cores 1.5",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.resources.cpu_cores = 1.5)),
    status: 400,
    msg: /resources\.cpu_cores/,
  },
  {
    name: "cpu_cores as a string",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.resources.cpu_cores = "2")),
    status: 400,
    msg: /resources\.cpu_cores/,
  },
  {
    name: "negative ram_gb",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.resources.ram_gb = -1)),
    status: 400,
    msg: /resources\.ram_gb/,
  },
  {
    name: "relative input path",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.inputs[1].path = "data/ref.fa")),
    status: 400,
    msg: /inputs\[1\]\.path/,
  },
  {
    name: "input without url or content",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.inputs = [{ path: "/data/x" }])),
    status: 400,
    msg: /inputs\[0\]\.url/,
  },
  {
    name: "relative output path",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.outputs[0].path = "out.txt")),
    status: 400,
    msg: /outputs\[0\]\.path/,
  },
  {
    name: "output without url",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => delete t.outputs[0].url),
    status: 400,
    msg: /outputs\[0\]\.url/,
  },
  {
    name: "relative volume",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.volumes = ["scratch"])),
    status: 400,
    msg: /volumes\[0\]/,
  },
  {
    name: "tag value not a string",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.tags = { n: 1 })),
    status: 400,
    msg: /tags/,
  },
  {
    name: "name not a string",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.name = 42)),
    status: 400,
    msg: /name/,
  },
  {
    name: "inline content over 128 KiB",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.inputs[0].content = "x".repeat(200 * 1024))),
    status: 400,
    msg: /inputs\[0\]\.content/,
  },
  {
    name: "strict unknown backend parameter",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((
      t: Loose,
    ) => (t.resources = { backend_parameters: { Bogus: "1" }, backend_parameters_strict: true })),
    status: 400,
    msg: /backend_parameters\.Bogus/,
  },
  {
    name: "several problems at once",
    method: "POST",
    path: "/v1/tasks",
    body: JSON.stringify({
      inputs: [{ path: "in.txt", url: "s3://b/k" }],
      resources: { cpu_cores: 1.5 },
      executors: [{ image: "", command: ["true"] }],
    }),
    status: 400,
    msg: /inputs\[0\]\.path.*resources\.cpu_cores|resources\.cpu_cores.*inputs\[0\]\.path/,
  },
  {
    name: "10 MB body over a 1 MB limit",
    method: "POST",
    path: "/v1/tasks",
    body: taskWith((t: Loose) => (t.description = "x".repeat(10 * 1024 * 1024))),
    status: 413,
    msg: /limit/,
  },
  {
    name: "wrong content type",
    method: "POST",
    path: "/v1/tasks",
    body: JSON.stringify(sampleTask()),
    contentType: "text/plain",
    status: 415,
    msg: /Content-Type/,
  },
  {
    name: "form content type",
    method: "POST",
    path: "/ga4gh/tes/v1/tasks",
    body: "a=b",
    contentType: "application/x-www-form-urlencoded",
    status: 415,
    msg: /Content-Type/,
  },
  {
    name: "unknown view on list",
    method: "GET",
    path: "/v1/tasks?view=EVERYTHING",
    status: 400,
    msg: /view/,
  },
  {
    name: "unknown view on get",
    method: "GET",
    path: "/v1/tasks/{id}?view=bogus",
    status: 400,
    msg: /view/,
  },
  {
    name: "page_size 0",
    method: "GET",
    path: "/v1/tasks?page_size=0",
    status: 400,
    msg: /page_size/,
  },
  {
    name: "page_size 5000",
    method: "GET",
    path: "/v1/tasks?page_size=5000",
    status: 400,
    msg: /page_size/,
  },
  {
    name: "page_size abc",
    method: "GET",
    path: "/v1/tasks?page_size=abc",
    status: 400,
    msg: /page_size/,
  },
  {
    name: "page_size -1",
    method: "GET",
    path: "/ga4gh/tes/v1/tasks?page_size=-1",
    status: 400,
    msg: /page_size/,
  },
  {
    name: "garbage page_token",
    method: "GET",
    path: "/v1/tasks?page_token=not-a-token",
    status: 400,
    msg: /page_token/,
  },
  {
    name: "unknown state filter",
    method: "GET",
    path: "/v1/tasks?state=DONE",
    status: 400,
    msg: /state/,
  },
  {
    name: "empty tag_key",
    method: "GET",
    path: "/v1/tasks?tag_key=&tag_value=x",
    status: 400,
    msg: /tag_key/,
  },
  { name: "unknown route", method: "GET", path: "/v1/nothing", status: 404, msg: /No route/ },
  { name: "unknown root route", method: "GET", path: "/", status: 404, msg: /No route/ },
  { name: "PUT /tasks", method: "PUT", path: "/v1/tasks", body: "{}", status: 405, msg: /PUT/ },
  {
    name: "DELETE /tasks/{id}",
    method: "DELETE",
    path: "/v1/tasks/{id}",
    status: 405,
    msg: /DELETE/,
  },
  {
    name: "unknown task id",
    method: "GET",
    path: "/v1/tasks/no-such-task",
    status: 404,
    msg: /no-such-task/,
  },
  {
    name: "cancel unknown task id",
    method: "POST",
    path: "/ga4gh/tes/v1/tasks/no-such-task:cancel",
    status: 404,
    msg: /no-such-task/,
  },
  {
    name: "unknown custom verb",
    method: "POST",
    path: "/v1/tasks/{id}:pause",
    status: 404,
    msg: /No route/,
  },
];

apiCase("createApp() answers every malformed request with a 4xx naming the problem", {
  maxBodyBytes: 1024 * 1024,
  supportedBackendParameters: ["VmSize"],
}, async (h) => {
  assert(BAD_CASES.length >= 25);
  const id = await create(h, sampleTask());
  const rows: string[] = [];
  const failures: string[] = [];
  for (const bad of BAD_CASES) {
    const headers: Record<string, string> = {};
    const contentType = bad.contentType === undefined
      ? (bad.body === undefined ? null : "application/json")
      : bad.contentType;
    if (contentType !== null) headers["content-type"] = contentType;
    const path = bad.path.replace("{id}", id);
    const res = await h.call(bad.method, path, {
      headers,
      ...(bad.body === undefined ? {} : { body: bad.body }),
    });
    const msg = typeof res.body?.msg === "string"
      ? res.body.msg
      : `(no msg) ${res.text.slice(0, 200)}`;
    rows.push(
      `| ${rows.length + 1} | ${bad.name} | \`${bad.method} ${bad.path}\` | ${res.status} | ${
        msg.replaceAll("|", "\\|").slice(0, 300)
      } |`,
    );
    if (res.status !== bad.status) {
      failures.push(`${bad.name}: status ${res.status}, want ${bad.status} (${msg})`);
    } else if (!bad.msg.test(msg)) {
      failures.push(`${bad.name}: msg ${JSON.stringify(msg)} does not match ${bad.msg}`);
    }
    if (res.status >= 500) failures.push(`${bad.name}: answered ${res.status}`);
    if (res.body?.status_code !== res.status) {
      failures.push(`${bad.name}: status_code ${res.body?.status_code}`);
    }
  }
  const out = Deno.env.get("PLANETARY_BAD_INPUT_TABLE");
  if (out) {
    await Deno.writeTextFile(
      out,
      [
        `Bad-input table (${BAD_CASES.length} requests; generated by tests/api_test.ts)`,
        "",
        "| # | case | request | status | msg |",
        "|---|---|---|---|---|",
        ...rows,
        "",
      ].join("\n"),
    );
  }
  assertEquals(failures, []);
  assertEquals(h.logger.errors, [], "no unexpected errors were logged");
});

Deno.test("startServer() with execution keeps exactly the backend parameters the pod builder applies", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "planetary-api-bp-" });
  const server = await startServer({
    port: 0,
    dataDir: `${dataDir}/data`,
    announce: false,
    api: { logRequests: false },
    // The task may well run; only what the API stored and announces matters here.
    execution: { maxConcurrentTasks: 1, fileAllowList: [], runtime: "host" },
  });
  try {
    const info = await (await fetch(`${server.url}/service-info`)).json();
    assertEquals(info.tesResources_backend_parameters, ["machine_type"]);
    const created = await fetch(`${server.url}/ga4gh/tes/v1/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        executors: [{ image: "alpine", command: ["true"] }],
        resources: { backend_parameters: { machine_type: "m6i.large", VmSize: "D64" } },
      }),
    });
    assertEquals(created.status, 200);
    const { id } = await created.json();
    const task = await (await fetch(`${server.url}/ga4gh/tes/v1/tasks/${id}?view=BASIC`)).json();
    assertEquals(task.resources.backend_parameters, { machine_type: "m6i.large" });
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("startServer() serves the API over a real socket", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "planetary-api-" });
  const server = await startServer({
    port: 0,
    dataDir: `${dataDir}/data`,
    announce: false,
    api: { logRequests: false, maxBodyBytes: 256 * 1024 },
    // The API alone: with an orchestrator a task could be claimed before the cancel below.
    execution: false,
  });
  try {
    assertMatch(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const info = await fetch(`${server.url}/service-info`);
    assertEquals(info.status, 200);
    assertEquals((await info.json()).type.artifact, "tes");

    const created = await fetch(`${server.url}/ga4gh/tes/v1/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(sampleTask()),
    });
    assertEquals(created.status, 200);
    const { id } = await created.json();
    const got = await fetch(`${server.url}/v1/tasks/${id}?view=BASIC`);
    assertEquals((await got.json()).name, "sample");
    const canceled = await fetch(`${server.url}/v1/tasks/${id}:cancel`, { method: "POST" });
    assertEquals(canceled.status, 200);
    assertEquals(await canceled.json(), {});
    const after = await fetch(`${server.url}/v1/tasks/${id}`);
    assertEquals(await after.json(), { id, state: "CANCELED" });

    const tooBig = await fetch(`${server.url}/v1/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(sampleTask({ description: "x".repeat(1024 * 1024) })),
    });
    assertEquals(tooBig.status, 413);
    assertEquals((await tooBig.json()).status_code, 413);
    const ready = await fetch(`${server.url}/readyz`);
    assertEquals(ready.status, 200);
    await ready.body?.cancel();
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("createApp() against one in-memory SQLite store", async (t) => {
  const store = await openTaskStore({});
  try {
    for (const [name, config, fn] of API_CASES) {
      await t.step(name, () => withApi(store, config, fn));
    }
  } finally {
    await store.close();
  }
});

Deno.test({
  name: "createApp() answers 503 without details while PostgreSQL is down",
  ignore: !requirePostgres(),
  async fn() {
    const cluster = await startPostgres();
    let store: TaskStore | undefined;
    try {
      store = await openTaskStore({ databaseUrl: await createDatabase(cluster, "planetary_api") });
      const logger = new RecordingLogger();
      const app = createApp({ store, logger, config: { logRequests: false } });
      const get = (path: string): Promise<Response> =>
        app.fetch(
          new Request(`http://planetary.test${path}`, { headers: { "x-request-id": "req-pg" } }),
        );
      const before = await get("/v1/tasks");
      assertEquals(before.status, 200);
      await before.body?.cancel();
      await cluster.stop();
      for (const path of ["/v1/tasks", "/v1/tasks/some-id?view=FULL", "/readyz"]) {
        const res = await get(path);
        const text = await res.text();
        assertEquals(res.status, 503, `${path}: ${text}`);
        assertEquals(JSON.parse(text).status_code, 503);
        assert(
          !text.includes("ECONNREFUSED") && !text.includes("127.0.0.1"),
          `reveals nothing: ${text}`,
        );
      }
      assert(
        logger.errors.some((e) => e.fields?.request_id === "req-pg"),
        "logged with the request id",
      );
    } finally {
      await cluster.stop();
      await store?.close().catch(() => {});
    }
  },
});
