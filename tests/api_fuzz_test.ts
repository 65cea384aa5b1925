/**
 * A deterministic fuzzer of the HTTP API: starting from one valid task, it replaces every string
 * of the task (values and keys) with hostile values (a NUL, 10 KB, a lone surrogate, `null`, a
 * number, an array…), mangles every list query parameter and the task id in the path, and adds
 * seeded random combinations. Every answer must be 200/400/404/413/415 with a JSON error body,
 * never a 500; a task that was accepted must read back in FULL. Run against SQLite, PGlite and
 * PostgreSQL, because the two refuse different things (PostgreSQL refuses NUL in text).
 *
 * The seed is fixed (`PLANETARY_FUZZ_SEED` overrides it); a failure lists every bad request.
 */
import assert from "node:assert/strict";
import { createApp, type PlanetaryApp } from "../src/api/app.ts";
import { createJsonLogger } from "../src/api/request_log.ts";
import { openTaskStore } from "../src/store/open_store.ts";
import type { TaskStore } from "../src/store/task_store.ts";
import { createDatabase, requirePostgres, startPostgres } from "./_harness/postgres.ts";

const SEED = Number(Deno.env.get("PLANETARY_FUZZ_SEED") ?? "20240611");
const RANDOM_CASES = 150;
const ALLOWED: ReadonlySet<number> = new Set([200, 400, 404, 413, 415]);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = readonly (string | number)[];

/** A task that uses every string field of the TES model once. */
const BASE_TASK: { [key: string]: Json } = {
  name: "fuzz",
  description: "a task to mutate",
  inputs: [
    {
      name: "in",
      description: "inline input",
      path: "/data/in.txt",
      content: "hello",
      type: "FILE",
    },
    { name: "ref", path: "/data/ref", url: "s3://bucket/ref", type: "DIRECTORY" },
  ],
  outputs: [
    { name: "out", description: "result", path: "/data/out.txt", url: "s3://bucket/out.txt" },
    { path: "/data/logs/*.log", path_prefix: "/data/logs/", url: "s3://bucket/logs/" },
  ],
  resources: {
    cpu_cores: 1,
    ram_gb: 1,
    zones: ["zone-a"],
    backend_parameters: { VmSize: "small" },
  },
  executors: [{
    image: "alpine:3.20",
    command: ["sh", "-c", "echo hi"],
    workdir: "/data",
    stdin: "/data/in.txt",
    stdout: "/data/stdout",
    stderr: "/data/stderr",
    env: { GREETING: "hello" },
  }],
  volumes: ["/scratch"],
  tags: { project: "fuzz", empty: "" },
};

/** Values put in place of a string value. */
const VALUE_SUBSTITUTES: readonly Json[] = [
  "\u0000",
  "a\u0000b",
  "x".repeat(10 * 1024),
  "\ud800",
  "a\udfffb",
  "",
  null,
  42,
  ["x"],
  { k: "v" },
];

/** Names put in place of an object key (tags, env, backend_parameters). */
const KEY_SUBSTITUTES: readonly string[] = [
  "\u0000",
  "k\u0000",
  "k".repeat(10 * 1024),
  "\ud800",
  "",
  "__proto__",
];

/** Raw (already percent-encoded) query values. */
const QUERY_VALUES: readonly string[] = [
  "%00",
  "a%00b",
  "%FF",
  "%ED%A0%80",
  "%C0%80",
  "%",
  "%zz",
  "x".repeat(10 * 1024),
  "%E2%82%AC".repeat(2000),
  "-1",
  "1e3",
  "99999999999999999999",
  "%20",
  "MINIMAL%00",
  "QUEUED%00",
  "",
];

const QUERY_PARAMETERS: readonly string[] = [
  "name_prefix",
  "tag_key",
  "tag_value",
  "page_token",
  "page_size",
  "view",
  "state",
];

/** Raw (already percent-encoded) path segments used as task ids. */
const ID_VALUES: readonly string[] = [
  "abc%00",
  "%00",
  "%FF",
  "%ED%A0%80",
  "%",
  "%zz",
  "x".repeat(10 * 1024),
  "%E2%82%AC".repeat(200),
  "..",
  "%2e%2e",
  "a%2Fb",
  "a%20b",
];

const MINIMAL_EXECUTORS = '"executors":[{"image":"alpine","command":["true"]}]';

/** Whole bodies that no substitution of one field produces. */
const RAW_BODIES: readonly [label: string, body: string][] = [
  ["100k nested arrays", `{"executors":${"[".repeat(100_000)}${"]".repeat(100_000)}}`],
  ["100k nested objects", `${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`],
  ["100k inputs", `{${MINIMAL_EXECUTORS},"inputs":[${Array(100_000).fill("{}").join(",")}]}`],
  ["__proto__ member", `{${MINIMAL_EXECUTORS},"__proto__":{"name":"polluted"}}`],
  ["constructor member", `{${MINIMAL_EXECUTORS},"constructor":{"prototype":{"x":1}}}`],
  ["cpu_cores 1e400", `{${MINIMAL_EXECUTORS},"resources":{"cpu_cores":1e400}}`],
  ["ram_gb -0", `{${MINIMAL_EXECUTORS},"resources":{"ram_gb":-0}}`],
  ["disk_gb 1e308", `{${MINIMAL_EXECUTORS},"resources":{"disk_gb":1e308}}`],
  ["null tag values (Cromwell)", `{${MINIMAL_EXECUTORS},"tags":{"a":null}}`],
  ["duplicate keys", `{${MINIMAL_EXECUTORS},"name":"a","name":"\u0000"}`],
  ["lone surrogate key", `{${MINIMAL_EXECUTORS},"tags":{"\udc00":"v"}}`],
  ["escaped NUL in image", '{"executors":[{"image":"a\u0000","command":["true"]}]}'],
  [
    "10k tags",
    `{${MINIMAL_EXECUTORS},"tags":{${
      Array.from({ length: 10_000 }, (_, i) => `"k${i}":"v"`).join(",")
    }}}`,
  ],
];

/** Seeded PRNG (mulberry32): the same seed gives the same cases. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/** Every place in `value` that holds a string, and every key of a string map. */
function stringPositions(value: Json, path: Path = []): { path: Path; key: boolean }[] {
  if (typeof value === "string") return [{ path, key: false }];
  if (Array.isArray(value)) return value.flatMap((item, i) => stringPositions(item, [...path, i]));
  if (value === null || typeof value !== "object") return [];
  const out: { path: Path; key: boolean }[] = [];
  const isMap = ["tags", "env", "backend_parameters"].includes(String(path.at(-1)));
  for (const [key, item] of Object.entries(value)) {
    if (isMap) out.push({ path: [...path, key], key: true });
    out.push(...stringPositions(item, [...path, key]));
  }
  return out;
}

function clone<T extends Json>(value: T): T {
  return structuredClone(value);
}

/** Returns a copy of `task` with the value (or the key) at `path` replaced. */
function substitute(task: Json, path: Path, replacement: Json, key: boolean): Json {
  const copy = clone(task);
  let parent: Json = copy;
  for (const step of path.slice(0, -1)) {
    parent = (parent as Record<string | number, Json>)[step as string]!;
  }
  const last = path.at(-1)!;
  const container = parent as Record<string, Json>;
  if (key) {
    const entries = Object.entries(container).map((
      [k, v],
    ): [string, Json] => [k === last ? String(replacement) : k, v]);
    for (const k of Object.keys(container)) delete container[k];
    // defineProperty, so that a `__proto__` key stays an own key in the JSON text.
    for (const [k, v] of entries) {
      Object.defineProperty(container, k, {
        value: v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  } else {
    container[last as string] = replacement;
  }
  return copy;
}

function describe(value: Json): string {
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…(${text.length})` : text;
}

interface FuzzRequest {
  label: string;
  method: string;
  path: string;
  body?: string;
}

/** All requests of one run, in a fixed order for a given seed. */
function fuzzRequests(seed: number): FuzzRequest[] {
  const random = prng(seed);
  const requests: FuzzRequest[] = [];
  const positions = stringPositions(BASE_TASK);
  const post = (label: string, task: Json): void => {
    requests.push({ label, method: "POST", path: "/v1/tasks", body: JSON.stringify(task) });
  };
  for (const { path, key } of positions) {
    const at = `${key ? "key of " : ""}${path.join(".")}`;
    if (key) {
      for (const name of KEY_SUBSTITUTES) {
        post(`${at} = ${describe(name)}`, substitute(BASE_TASK, path, name, true));
      }
    } else {
      for (const value of VALUE_SUBSTITUTES) {
        post(`${at} = ${describe(value)}`, substitute(BASE_TASK, path, value, false));
      }
    }
  }
  for (let i = 0; i < RANDOM_CASES; i++) {
    let task: Json = BASE_TASK;
    const changes: string[] = [];
    const count = 1 + Math.floor(random() * 3);
    for (let j = 0; j < count; j++) {
      // Positions of the mutated task: an earlier change may have removed some.
      const { path, key } = pick(
        random,
        stringPositions(task).length ? stringPositions(task) : [{
          path: ["name"],
          key: false,
        }],
      );
      const replacement = key ? pick(random, KEY_SUBSTITUTES) : pick(random, VALUE_SUBSTITUTES);
      task = substitute(task, path, replacement, key);
      changes.push(`${key ? "key of " : ""}${path.join(".")} = ${describe(replacement)}`);
    }
    post(`random #${i}: ${changes.join("; ")}`, task);
  }
  for (const [label, body] of RAW_BODIES) {
    requests.push({ label, method: "POST", path: "/v1/tasks", body });
  }
  for (const parameter of QUERY_PARAMETERS) {
    for (const value of QUERY_VALUES) {
      const query = parameter === "tag_value"
        ? `tag_key=project&tag_value=${value}`
        : `${parameter}=${value}`;
      requests.push({
        label: `${parameter}=${value.slice(0, 30)}`,
        method: "GET",
        path: `/v1/tasks?${query}`,
      });
    }
  }
  for (let i = 0; i < RANDOM_CASES; i++) {
    const count = 1 + Math.floor(random() * 4);
    const parts: string[] = [];
    for (let j = 0; j < count; j++) {
      parts.push(`${pick(random, QUERY_PARAMETERS)}=${pick(random, QUERY_VALUES)}`);
    }
    const query = parts.join("&");
    requests.push({
      label: `random query #${i}: ${query.slice(0, 80)}`,
      method: "GET",
      path: `/v1/tasks?${query}`,
    });
  }
  for (const id of ID_VALUES) {
    const shown = id.slice(0, 30);
    requests.push({ label: `GET id ${shown}`, method: "GET", path: `/v1/tasks/${id}` });
    requests.push({
      label: `GET id ${shown} FULL`,
      method: "GET",
      path: `/ga4gh/tes/v1/tasks/${id}?view=FULL`,
    });
    requests.push({ label: `cancel id ${shown}`, method: "POST", path: `/v1/tasks/${id}:cancel` });
    for (const value of ["%00", "x".repeat(5000)]) {
      requests.push({
        label: `GET id ${shown} view=${value.slice(0, 10)}`,
        method: "GET",
        path: `/v1/tasks/${id}?view=${value}`,
      });
    }
  }
  return requests;
}

async function send(app: PlanetaryApp, request: FuzzRequest): Promise<[number, unknown, string]> {
  const headers: Record<string, string> = {};
  if (request.body !== undefined) headers["content-type"] = "application/json";
  const response = await app.fetch(
    new Request(`http://127.0.0.1${request.path}`, {
      method: request.method,
      headers,
      body: request.body ?? null,
    }),
  );
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return [response.status, body, text];
}

/**
 * Sends every request; returns one line per answer that breaks the rules.
 */
async function fuzz(
  store: TaskStore,
): Promise<{ failures: string[]; counts: Map<number, number> }> {
  const errors: string[] = [];
  const app = createApp({
    store,
    config: { logRequests: false, supportedBackendParameters: ["VmSize"] },
    logger: createJsonLogger((line) => errors.push(line)),
  });
  const failures: string[] = [];
  const counts = new Map<number, number>();
  for (const request of fuzzRequests(SEED)) {
    const [status, body, text] = await send(app, request);
    counts.set(status, (counts.get(status) ?? 0) + 1);
    const where = `${request.method} ${request.label}`;
    if (!ALLOWED.has(status)) {
      failures.push(`${where}: ${status} ${text.slice(0, 160)}`);
      continue;
    }
    const record = body as Record<string, unknown> | undefined;
    if (record === undefined) {
      failures.push(`${where}: ${status} with a body that is not JSON: ${text.slice(0, 80)}`);
    } else if (status !== 200 && record.status_code !== status) {
      failures.push(`${where}: ${status} with status_code ${String(record.status_code)}`);
    } else if (status === 200 && request.method === "POST" && request.body !== undefined) {
      // An accepted task must read back in every view.
      const id = String(record.id);
      for (const view of ["BASIC", "FULL"]) {
        const [readStatus, , readText] = await send(app, {
          label: "read back",
          method: "GET",
          path: `/v1/tasks/${encodeURIComponent(id)}?view=${view}`,
        });
        if (readStatus !== 200) {
          failures.push(
            `${where}: accepted, then GET ${view} ${readStatus} ${readText.slice(0, 80)}`,
          );
        }
      }
    }
  }
  const [listStatus, , listText] = await send(app, {
    label: "list all",
    method: "GET",
    path: "/v1/tasks?view=FULL&page_size=2047",
  });
  if (listStatus !== 200) failures.push(`list of every accepted task: ${listStatus} ${listText}`);
  if (failures.length > 0 && errors.length > 0) {
    failures.push(`(first logged error: ${errors[0]!.slice(0, 400)})`);
  }
  return { failures, counts };
}

function report(name: string, result: { failures: string[]; counts: Map<number, number> }): void {
  const counts = [...result.counts].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`);
  console.log(`${name}, seed ${SEED}: ${counts.join(", ")}`);
  assert.deepEqual(result.failures, [], `seed ${SEED}: ${result.failures.length} bad answers`);
}

Deno.test("fuzzRequests() is deterministic and covers every string of the task", () => {
  const a = fuzzRequests(SEED);
  assert.deepEqual(fuzzRequests(SEED), a);
  assert.notDeepEqual(fuzzRequests(SEED + 1), a);
  const positions = stringPositions(BASE_TASK);
  assert.ok(positions.length >= 30, `${positions.length} string positions`);
  assert.ok(a.length > 700, `${a.length} requests`);
  const withKeyProto = a.find((r) => r.body?.includes('"__proto__"'));
  assert.ok(withKeyProto !== undefined, "a __proto__ key reaches the JSON text");
});

for (const engine of ["sqlite", "pglite"] as const) {
  Deno.test(`createApp() never answers 500 to fuzzed requests on ${engine}`, async () => {
    const store = await openTaskStore({ engine });
    try {
      report(engine, await fuzz(store));
    } finally {
      await store.close();
    }
  });
}

Deno.test({
  name: "createApp() never answers 500 to fuzzed requests on PostgreSQL",
  ignore: !requirePostgres(),
  async fn() {
    const cluster = await startPostgres();
    let store: TaskStore | undefined;
    try {
      store = await openTaskStore({
        databaseUrl: await createDatabase(cluster, "planetary_api_fuzz"),
      });
      report("PostgreSQL", await fuzz(store));
    } finally {
      await store?.close().catch(() => {});
      await cluster.stop();
    }
  },
});
