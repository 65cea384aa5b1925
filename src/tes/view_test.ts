import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { parseView, renderServiceInfo, renderTask, UNKNOWN_EXIT_CODE } from "./view.ts";
import type { TesServiceInfo, TesTask } from "./model.ts";

/** A stored task with every spec field, and extra keys a store might carry. */
function storedTask(): TesTask {
  const task = {
    owner: "alice",
    claim_owner: "orchestrator-1",
    creation_time: "2024-05-01T10:00:00Z",
    tags: { project: "p", internal: "x" },
    volumes: ["/vol"],
    logs: [{
      system_logs: ["image pulled"],
      outputs: [{ url: "s3://b/o/a.txt", path: "/out/a.txt", size_bytes: "12", etag: "abc" }],
      end_time: "2024-05-01T10:05:00Z",
      start_time: "2024-05-01T10:01:00Z",
      metadata: { pod: "task-t1" },
      logs: [{
        exit_code: 0,
        stderr: "warn",
        stdout: "hello",
        end_time: "2024-05-01T10:04:00Z",
        start_time: "2024-05-01T10:02:00Z",
        container_id: "docker://x",
      }],
      lease: 123,
    }],
    executors: [{
      ignore_error: false,
      env: { A: "1" },
      stderr: "/out/err",
      stdout: "/out/log",
      stdin: "/in/a",
      workdir: "/work",
      command: ["echo", "hi"],
      image: "alpine",
      pull_policy: "Always",
    }],
    resources: {
      backend_parameters_strict: false,
      backend_parameters: { vm_size: "big" },
      zones: ["z1"],
      disk_gb: 10,
      ram_gb: 1.5,
      preemptible: true,
      cpu_cores: 2,
      gpu: 1,
    },
    outputs: [{
      type: "DIRECTORY",
      path_prefix: "/out/",
      path: "/out/*.txt",
      url: "s3://b/o/",
      description: "od",
      name: "o",
      mode: "0777",
    }],
    inputs: [{
      streamable: false,
      content: "inline",
      type: "FILE",
      path: "/in/a",
      url: "s3://b/a",
      description: "id",
      name: "i",
      sha: "x",
    }],
    description: "d",
    name: "n",
    state: "COMPLETE",
    id: "t1",
    lease_expires_at: new Date(0),
  };
  return task as unknown as TesTask;
}

const FULL_EXPECTED = {
  id: "t1",
  state: "COMPLETE",
  name: "n",
  description: "d",
  inputs: [{
    name: "i",
    description: "id",
    url: "s3://b/a",
    path: "/in/a",
    type: "FILE",
    content: "inline",
    streamable: false,
  }],
  outputs: [{
    name: "o",
    description: "od",
    url: "s3://b/o/",
    path: "/out/*.txt",
    path_prefix: "/out/",
    type: "DIRECTORY",
  }],
  resources: {
    cpu_cores: 2,
    preemptible: true,
    ram_gb: 1.5,
    disk_gb: 10,
    zones: ["z1"],
    backend_parameters: { vm_size: "big" },
    backend_parameters_strict: false,
  },
  executors: [{
    image: "alpine",
    command: ["echo", "hi"],
    workdir: "/work",
    stdin: "/in/a",
    stdout: "/out/log",
    stderr: "/out/err",
    env: { A: "1" },
    ignore_error: false,
  }],
  volumes: ["/vol"],
  tags: { project: "p", internal: "x" },
  logs: [{
    logs: [{
      start_time: "2024-05-01T10:02:00Z",
      end_time: "2024-05-01T10:04:00Z",
      stdout: "hello",
      stderr: "warn",
      exit_code: 0,
    }],
    metadata: { pod: "task-t1" },
    start_time: "2024-05-01T10:01:00Z",
    end_time: "2024-05-01T10:05:00Z",
    outputs: [{ url: "s3://b/o/a.txt", path: "/out/a.txt", size_bytes: "12" }],
    system_logs: ["image pulled"],
  }],
  creation_time: "2024-05-01T10:00:00Z",
};

/** Every key path of a JSON value, in order (`logs[0].logs[0].exit_code`, …). */
function keyPaths(value: unknown, prefix = ""): string[] {
  if (Array.isArray(value)) return value.flatMap((item, i) => keyPaths(item, `${prefix}[${i}]`));
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([key, item]) => {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    return [path, ...keyPaths(item, path)];
  });
}

// --- parseView ---------------------------------------------------------------------------

Deno.test("parseView() defaults to MINIMAL when absent or empty", () => {
  equal(parseView(undefined), "MINIMAL");
  equal(parseView(null), "MINIMAL");
  equal(parseView(""), "MINIMAL");
});

Deno.test("parseView() reads the three views in any letter case", () => {
  equal(parseView("MINIMAL"), "MINIMAL");
  equal(parseView("BASIC"), "BASIC");
  equal(parseView("FULL"), "FULL");
  equal(parseView("full"), "FULL");
});

Deno.test("parseView() answers undefined for an unknown view", () => {
  for (const value of ["EVERYTHING", "FULL ", " BASIC", "0", "__proto__", "toString"]) {
    equal(parseView(value), undefined, value);
  }
});

// --- renderTask --------------------------------------------------------------------------

Deno.test("renderTask() renders MINIMAL as id and state only", () => {
  deepStrictEqual(renderTask(storedTask(), "MINIMAL"), { id: "t1", state: "COMPLETE" });
});

Deno.test("renderTask() renders FULL with every spec field and nothing else", () => {
  const out = renderTask(storedTask(), "FULL");
  deepStrictEqual(out, FULL_EXPECTED);
});

Deno.test("renderTask() writes fields in the order of the specification", () => {
  // deepStrictEqual ignores key order; the stored task above lists its keys in reverse.
  deepStrictEqual(keyPaths(renderTask(storedTask(), "FULL")), keyPaths(FULL_EXPECTED));
  deepStrictEqual(Object.keys(renderTask(storedTask(), "MINIMAL")), ["id", "state"]);
});

Deno.test("renderTask() renders BASIC without logs' stdout/stderr, content and system_logs", () => {
  const out = renderTask(storedTask(), "BASIC");
  const expected = structuredClone(FULL_EXPECTED) as Partial<typeof FULL_EXPECTED>;
  const input = expected.inputs?.[0] as Record<string, unknown>;
  delete input.content;
  const log = expected.logs?.[0] as Record<string, unknown>;
  delete log.system_logs;
  const executorLog = expected.logs?.[0]?.logs[0] as Record<string, unknown>;
  delete executorLog.stdout;
  delete executorLog.stderr;
  deepStrictEqual(out, expected);
  const paths = keyPaths(out);
  ok(!paths.some((path) => /content|system_logs|logs\[0\]\.logs\[0\]\.std(out|err)/.test(path)));
  // executor stdout/stderr are paths to capture, not logs: BASIC keeps them.
  equal(out.executors[0]?.stdout, "/out/log");
});

Deno.test("renderTask() never lets an unknown key through in any view", () => {
  const stored = storedTask() as unknown as Record<string, unknown>;
  stored.secret_token = "s3cr3t";
  for (const view of ["MINIMAL", "BASIC", "FULL"] as const) {
    const json = JSON.stringify(renderTask(stored as unknown as TesTask, view));
    for (const leak of ["s3cr3t", "owner", "claim_owner", "etag", "container_id", "lease", "gpu"]) {
      ok(!json.includes(leak), `${view} leaked ${leak}: ${json}`);
    }
    for (const leak of ["pull_policy", "mode", "sha"]) ok(!json.includes(`"${leak}"`), leak);
  }
});

Deno.test("renderTask() returns a new object that shares nothing with the stored task", () => {
  const stored = storedTask();
  const out = renderTask(stored, "FULL");
  ok(out !== stored);
  out.executors[0]?.command.push("mutated");
  out.tags!.project = "mutated";
  equal(stored.executors[0]?.command.length, 2);
  equal(stored.tags?.project, "p");
});

Deno.test("renderTask() renders cpu_cores 2.0 and 2.7 as integers", () => {
  const stored = { ...storedTask(), resources: { cpu_cores: 2.0 } };
  const json = JSON.stringify(renderTask(stored, "BASIC"));
  ok(json.includes('"cpu_cores":2}'), json);
  equal(renderTask({ ...stored, resources: { cpu_cores: 2.7 } }, "FULL").resources?.cpu_cores, 2);
});

Deno.test("renderTask() renders size_bytes as a string even when stored as a number", () => {
  const stored = storedTask();
  const outputs = [
    { url: "s3://b/1", path: "/1", size_bytes: 1234 },
    { url: "s3://b/2", path: "/2", size_bytes: 2n ** 40n },
    { url: "s3://b/3", path: "/3" },
  ];
  stored.logs = [{ logs: [], outputs: outputs as never }];
  const out = renderTask(stored, "FULL");
  deepStrictEqual(out.logs?.[0]?.outputs.map((o) => o.size_bytes), ["1234", "1099511627776", "0"]);
});

Deno.test("renderTask() gives every task log logs and outputs arrays", () => {
  const stored = { ...storedTask(), logs: [{ start_time: "2024-05-01T10:00:00Z" }] };
  for (const view of ["BASIC", "FULL"] as const) {
    deepStrictEqual(renderTask(stored as unknown as TesTask, view).logs, [{
      logs: [],
      start_time: "2024-05-01T10:00:00Z",
      outputs: [],
    }]);
  }
});

Deno.test("renderTask() gives every executor log an integer exit_code", () => {
  const stored = storedTask();
  stored.logs = [{
    logs: [{ start_time: "2024-05-01T10:00:00Z" }, { exit_code: 137 }] as never,
    outputs: [],
  }];
  const logs = renderTask(stored, "BASIC").logs?.[0]?.logs;
  deepStrictEqual(logs, [
    { start_time: "2024-05-01T10:00:00Z", exit_code: UNKNOWN_EXIT_CODE },
    { exit_code: 137 },
  ]);
});

Deno.test("renderTask() converts Date times to RFC 3339 and passes strings through", () => {
  const stored = storedTask() as unknown as Record<string, unknown>;
  stored.creation_time = new Date("2024-05-01T10:00:00.000Z");
  stored.logs = [{
    start_time: new Date("2024-05-01T10:01:00Z"),
    end_time: "2024-05-01T12:05:00+02:00",
    logs: [{ start_time: new Date("2024-05-01T10:02:00Z"), exit_code: 0 }],
    outputs: [],
  }];
  const out = renderTask(stored as unknown as TesTask, "FULL");
  equal(out.creation_time, "2024-05-01T10:00:00.000Z");
  equal(out.logs?.[0]?.start_time, "2024-05-01T10:01:00.000Z");
  equal(out.logs?.[0]?.end_time, "2024-05-01T12:05:00+02:00");
  equal(out.logs?.[0]?.logs[0]?.start_time, "2024-05-01T10:02:00.000Z");
  stored.creation_time = new Date("not a date");
  equal("creation_time" in renderTask(stored as unknown as TesTask, "FULL"), false);
});

Deno.test("renderTask() leaves undefined fields out instead of writing them", () => {
  const out = renderTask({
    id: "t2",
    state: "QUEUED",
    executors: [{ image: "alpine", command: ["true"] }],
    name: undefined,
  } as unknown as TesTask, "FULL");
  deepStrictEqual(out, {
    id: "t2",
    state: "QUEUED",
    executors: [{ image: "alpine", command: ["true"] }],
  });
  ok(!("name" in out));
});

Deno.test("renderTask() drops values of the wrong type instead of passing them on", () => {
  const out = renderTask({
    id: "t3",
    state: "NOT_A_STATE",
    name: 42,
    tags: { ok: "v", bad: 1, nested: { x: 1 } },
    executors: [{ image: "alpine", command: ["echo", 5, "x"], env: "A=1" }],
    resources: { cpu_cores: "4", ram_gb: Infinity },
  } as unknown as TesTask, "FULL");
  deepStrictEqual(out, {
    id: "t3",
    tags: { ok: "v" },
    resources: {},
    executors: [{ image: "alpine", command: ["echo", "x"] }],
  });
});

Deno.test("renderTask() keeps a __proto__ tag as plain data", () => {
  const tags = JSON.parse('{"__proto__": "x", "a": "b"}');
  const out = renderTask({ ...storedTask(), tags }, "BASIC");
  deepStrictEqual(Object.keys(out.tags ?? {}), ["__proto__", "a"]);
  equal(Object.getPrototypeOf(out.tags), Object.prototype);
  ok(JSON.stringify(out).includes('"tags":{"__proto__":"x","a":"b"}'));
});

// --- renderServiceInfo -------------------------------------------------------------------

Deno.test("renderServiceInfo() keeps only spec fields, in spec order", () => {
  const info = {
    internal_db_url: "postgres://secret",
    tesResources_backend_parameters: ["vm_size"],
    storage: ["s3://bucket"],
    version: "0.1.0",
    environment: "test",
    updatedAt: "2024-05-02T00:00:00Z",
    createdAt: new Date("2024-05-01T00:00:00Z"),
    documentationUrl: "https://docs.example.org",
    contactUrl: "mailto:ops@example.org",
    organization: { url: "https://example.org", name: "Example", extra: 1 },
    description: "TES on Kubernetes",
    type: { version: "1.1.0", artifact: "tes", group: "org.ga4gh", x: "y" },
    name: "Planetary",
    id: "org.example.planetary",
  };
  const out = renderServiceInfo(info as unknown as TesServiceInfo);
  const expected = {
    id: "org.example.planetary",
    name: "Planetary",
    type: { group: "org.ga4gh", artifact: "tes", version: "1.1.0" },
    description: "TES on Kubernetes",
    organization: { name: "Example", url: "https://example.org" },
    contactUrl: "mailto:ops@example.org",
    documentationUrl: "https://docs.example.org",
    createdAt: "2024-05-01T00:00:00.000Z",
    updatedAt: "2024-05-02T00:00:00Z",
    environment: "test",
    version: "0.1.0",
    storage: ["s3://bucket"],
    tesResources_backend_parameters: ["vm_size"],
  };
  deepStrictEqual(out, expected);
  deepStrictEqual(keyPaths(out), keyPaths(expected));
});

Deno.test("renderServiceInfo() leaves optional fields out when absent", () => {
  const info: TesServiceInfo = {
    id: "x",
    name: "y",
    type: { group: "org.ga4gh", artifact: "tes", version: "1.1.0" },
    organization: { name: "o", url: "https://o" },
    version: "1",
  };
  deepStrictEqual(Object.keys(renderServiceInfo(info)), [
    "id",
    "name",
    "type",
    "organization",
    "version",
  ]);
});
