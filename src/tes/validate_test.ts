import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  DEFAULT_MAX_CONTENT_BYTES,
  formatProblems,
  MAX_PROBLEMS,
  MAX_TASK_ITEMS,
  validateTask,
  type ValidateTaskOptions,
  type ValidationProblem,
} from "./validate.ts";
import type { TesTask } from "./model.ts";
import { TES_STRING_LIMITS } from "./limits.ts";

type Json = Record<string, unknown>;

/** A minimal valid task, with `extra` merged in at the top level. */
function task(extra: Json = {}): Json {
  return { executors: [{ image: "alpine", command: ["echo", "hi"] }], ...extra };
}

/** A task whose only executor has `extra` merged in. */
function withExecutor(extra: Json): Json {
  return { executors: [{ image: "alpine", command: ["true"], ...extra }] };
}

function accepted(
  body: unknown,
  options?: ValidateTaskOptions,
): { task: TesTask; warnings: string[] } {
  const result = validateTask(body, options);
  if (!result.ok) throw new Error(`expected valid, got: ${formatProblems(result.problems)}`);
  return result;
}

function problems(body: unknown, options?: ValidateTaskOptions): ValidationProblem[] {
  const result = validateTask(body, options);
  if (result.ok) throw new Error(`expected problems, task was accepted: ${JSON.stringify(body)}`);
  return result.problems;
}

/** The message of the problem at `path`; fails when there is none. */
function problemAt(list: ValidationProblem[], path: string): string {
  const found = list.find((problem) => problem.path === path);
  if (found === undefined) {
    throw new Error(`no problem at "${path}"; got: ${formatProblems(list)}`);
  }
  return found.message;
}

function paths(list: ValidationProblem[]): string[] {
  return list.map((problem) => problem.path);
}

// --- the body itself ---------------------------------------------------------------------

Deno.test("validateTask() accepts a minimal task unchanged", () => {
  const { task: out, warnings } = accepted(task());
  deepStrictEqual(out, { executors: [{ image: "alpine", command: ["echo", "hi"] }] });
  deepStrictEqual(warnings, []);
});

Deno.test("validateTask() refuses a body that is not an object at the root path", () => {
  for (const body of [null, undefined, [], [task()], "task", 42, true]) {
    deepStrictEqual(problems(body), [{ path: "", message: "task must be a JSON object" }]);
  }
});

Deno.test("validateTask() reports missing executors as required", () => {
  equal(problemAt(problems({ name: "x" }), "executors"), "required");
});

Deno.test("validateTask() refuses an empty executor list", () => {
  equal(problemAt(problems({ executors: [] }), "executors"), "must hold at least one executor");
});

Deno.test("validateTask() names the received type of a wrongly typed field", () => {
  const list = problems(task({ name: 5, description: true, volumes: "/data" }));
  equal(problemAt(list, "name"), "expected string, got number");
  equal(problemAt(list, "description"), "expected string, got boolean");
  equal(problemAt(list, "volumes"), "expected array, got string");
});

Deno.test("validateTask() drops read-only fields sent by the client", () => {
  const { task: out } = accepted(task({
    id: "forged",
    state: "COMPLETE",
    logs: [{ logs: [], outputs: [] }],
    creation_time: "2020-01-01T00:00:00Z",
  }));
  deepStrictEqual(Object.keys(out), ["executors"]);
});

Deno.test("validateTask() drops unknown keys at every level", () => {
  const { task: out } = accepted({
    owner: "mallory",
    executors: [{ image: "alpine", command: ["true"], privileged: true }],
    inputs: [{ path: "/in", url: "s3://b/k", secret: "x" }],
    outputs: [{ path: "/out", url: "s3://b/o", mode: "0777" }],
    resources: { cpu_cores: 1, gpu: 8 },
  });
  deepStrictEqual(out, {
    inputs: [{ url: "s3://b/k", path: "/in", type: "FILE" }],
    outputs: [{ url: "s3://b/o", path: "/out", type: "FILE" }],
    resources: { cpu_cores: 1 },
    executors: [{ image: "alpine", command: ["true"] }],
  });
});

Deno.test("validateTask() keeps every spec field of a complete task", () => {
  const body = {
    name: "n",
    description: "d",
    inputs: [{
      name: "i",
      description: "in",
      url: "s3://b/k",
      path: "/in/k",
      type: "FILE",
      streamable: true,
    }],
    outputs: [{ name: "o", description: "out", url: "s3://b/o", path: "/out", type: "DIRECTORY" }],
    resources: { cpu_cores: 2, preemptible: true, ram_gb: 1.5, disk_gb: 10, zones: ["z1"] },
    executors: [{
      image: "alpine",
      command: ["sh", "-c", "echo"],
      workdir: "/w",
      stdin: "/in/k",
      stdout: "/out/o",
      stderr: "/out/e",
      env: { A: "1" },
      ignore_error: true,
    }],
    volumes: ["/vol"],
    tags: { project: "p" },
  };
  deepStrictEqual(accepted(body).task, body);
});

// --- inputs ------------------------------------------------------------------------------

Deno.test("validateTask() defaults input and output type to FILE", () => {
  const { task: out } = accepted(task({
    inputs: [{ path: "/a", url: "s3://b/a" }],
    outputs: [{ path: "/b", url: "s3://b/b" }],
  }));
  equal(out.inputs?.[0]?.type, "FILE");
  equal(out.outputs?.[0]?.type, "FILE");
});

Deno.test("validateTask() refuses a relative input path", () => {
  const list = problems(task({ inputs: [{ path: "data/a", url: "s3://b/a" }] }));
  equal(problemAt(list, "inputs[0].path"), "must be an absolute path");
});

Deno.test("validateTask() refuses an input path with .. segments", () => {
  const list = problems(task({ inputs: [{ path: "/data/../../etc/passwd", url: "s3://b/a" }] }));
  equal(problemAt(list, "inputs[0].path"), 'must not contain ".." segments');
});

Deno.test("validateTask() refuses NUL bytes in paths", () => {
  const list = problems({
    executors: [{ image: "a", command: ["x"], workdir: "/w\0", stdin: "/i\0n" }],
    inputs: [{ path: "/a\0b", url: "s3://b/a" }],
    outputs: [{ path: "/o\0", url: "s3://b/o" }],
    volumes: ["/v\0"],
  });
  for (
    const path of [
      "executors[0].workdir",
      "executors[0].stdin",
      "inputs[0].path",
      "outputs[0].path",
      "volumes[0]",
    ]
  ) {
    equal(problemAt(list, path), "must not contain NUL bytes");
  }
});

Deno.test("validateTask() requires url or content on an input", () => {
  const list = problems(task({ inputs: [{ path: "/a" }, { path: "/b", url: "" }] }));
  equal(problemAt(list, "inputs[0].url"), "required unless content is set");
  equal(problemAt(list, "inputs[1].url"), "required unless content is set");
});

Deno.test("validateTask() accepts inline content without url, empty content included", () => {
  const { task: out } = accepted(task({
    inputs: [{ path: "/a", content: "hello" }, { path: "/b", content: "" }],
  }));
  equal(out.inputs?.[0]?.content, "hello");
  equal(out.inputs?.[1]?.content, "");
});

Deno.test("validateTask() refuses content on a DIRECTORY input", () => {
  const list = problems(task({ inputs: [{ path: "/d", type: "DIRECTORY", content: "x" }] }));
  equal(problemAt(list, "inputs[0].content"), "only allowed when type is FILE");
});

Deno.test("validateTask() accepts 128 KiB of inline content", () => {
  const content = "a".repeat(128 * 1024);
  equal(DEFAULT_MAX_CONTENT_BYTES, 131072);
  equal(accepted(task({ inputs: [{ path: "/a", content }] })).task.inputs?.[0]?.content, content);
});

Deno.test("validateTask() refuses content one byte over the limit and names the limit", () => {
  const list = problems(task({ inputs: [{ path: "/a", content: "a".repeat(131073) }] }));
  const message = problemAt(list, "inputs[0].content");
  ok(message.includes("131073 bytes"), message);
  ok(message.includes("131072"), message);
});

Deno.test("validateTask() counts content in UTF-8 bytes, not characters", () => {
  // 50 000 "é" are 50 000 UTF-16 units but 100 000 UTF-8 bytes.
  const content = "é".repeat(50_000);
  accepted(task({ inputs: [{ path: "/a", content }] }), { maxContentBytes: 100_000 });
  const list = problems(task({ inputs: [{ path: "/a", content }] }), { maxContentBytes: 99_999 });
  ok(problemAt(list, "inputs[0].content").includes("100000 bytes"));
});

Deno.test("validateTask() applies a custom content limit", () => {
  accepted(task({ inputs: [{ path: "/a", content: "1234" }] }), { maxContentBytes: 4 });
  const list = problems(task({ inputs: [{ path: "/a", content: "12345" }] }), {
    maxContentBytes: 4,
  });
  ok(problemAt(list, "inputs[0].content").includes("at most 4 bytes"));
});

Deno.test("validateTask() refuses an unknown input type with the allowed values", () => {
  const list = problems(task({ inputs: [{ path: "/a", url: "s3://b", type: "LINK" }] }));
  equal(problemAt(list, "inputs[0].type"), 'expected one of FILE, DIRECTORY, got "LINK"');
});

// --- outputs -----------------------------------------------------------------------------

Deno.test("validateTask() requires url and path on an output", () => {
  const list = problems(task({ outputs: [{}] }));
  equal(problemAt(list, "outputs[0].url"), "required");
  equal(problemAt(list, "outputs[0].path"), "required");
});

Deno.test("validateTask() accepts a wildcard output with path_prefix and DIRECTORY", () => {
  const output = { url: "s3://b/o/", path: "/out/*.txt", path_prefix: "/out/", type: "DIRECTORY" };
  deepStrictEqual(accepted(task({ outputs: [output] })).task.outputs, [output]);
});

Deno.test("validateTask() defaults a wildcard output without type to DIRECTORY", () => {
  const { task: out } = accepted(task({
    outputs: [{ url: "s3://b/o/", path: "/out/x?.txt", path_prefix: "/out/" }],
  }));
  equal(out.outputs?.[0]?.type, "DIRECTORY");
});

Deno.test("validateTask() requires path_prefix for each wildcard character", () => {
  for (const path of ["/out/*", "/out/a?", "/out/[ab]"]) {
    const list = problems(task({ outputs: [{ url: "s3://b/o", path, type: "DIRECTORY" }] }));
    ok(problemAt(list, "outputs[0].path_prefix").startsWith("required"), path);
  }
});

Deno.test("validateTask() accepts a wildcard output of type FILE as Nextflow sends it", () => {
  // nf-ga4gh's TesExecutor sends glob outputs like this; py-tes' Output defaults type to FILE.
  const output = {
    path: "/work/*.csv",
    path_prefix: "/work",
    url: "file:///x/workdir",
    type: "FILE",
  };
  deepStrictEqual(accepted(task({ outputs: [output] })).task.outputs, [{
    url: "file:///x/workdir",
    path: "/work/*.csv",
    path_prefix: "/work",
    type: "FILE",
  }]);
});

Deno.test("validateTask() still requires path_prefix on a wildcard output of type FILE", () => {
  const list = problems(task({ outputs: [{ url: "s3://b/o", path: "/out/*", type: "FILE" }] }));
  ok(problemAt(list, "outputs[0].path_prefix").startsWith("required"));
});

Deno.test("validateTask() refuses a path_prefix that is not a prefix of the path", () => {
  const list = problems(task({
    outputs: [{ url: "s3://b/o", path: "/out/*", path_prefix: "/other/", type: "DIRECTORY" }],
  }));
  equal(problemAt(list, "outputs[0].path_prefix"), 'must be a prefix of path "/out/*"');
});

Deno.test("validateTask() refuses an empty output url", () => {
  equal(
    problemAt(problems(task({ outputs: [{ url: "", path: "/o" }] })), "outputs[0].url"),
    "must not be empty",
  );
});

// --- URL schemes -------------------------------------------------------------------------

Deno.test("validateTask() accepts any URL scheme when none are configured", () => {
  accepted(task({ inputs: [{ path: "/a", url: "weird+scheme://x" }] }));
});

Deno.test("validateTask() refuses URL schemes outside allowedUrlSchemes, case-insensitively", () => {
  const options = { allowedUrlSchemes: ["s3", "HTTPS"] };
  accepted(
    task({
      inputs: [{ path: "/a", url: "S3://b/a" }, { path: "/b", url: "https://h/b" }],
      outputs: [{ path: "/o", url: "s3://b/o" }],
    }),
    options,
  );
  const list = problems(
    task({
      inputs: [{ path: "/a", url: "ftp://h/a" }, { path: "/b", url: "no-scheme" }],
      outputs: [{ path: "/o", url: "gs://b/o" }],
    }),
    options,
  );
  equal(
    problemAt(list, "inputs[0].url"),
    'URL scheme "ftp" is not supported (accepted: s3, https)',
  );
  ok(problemAt(list, "inputs[1].url").startsWith("must be a URL with a scheme"));
  ok(problemAt(list, "outputs[0].url").includes('"gs"'));
});

// --- executors ---------------------------------------------------------------------------

Deno.test("validateTask() refuses an empty or blank image", () => {
  const list = problems({
    executors: [{ image: "", command: ["x"] }, { image: "   ", command: ["x"] }],
  });
  equal(problemAt(list, "executors[0].image"), "must not be empty");
  equal(problemAt(list, "executors[1].image"), "must not be empty");
});

Deno.test("validateTask() refuses a missing, empty or non-array command", () => {
  const list = problems({
    executors: [
      { image: "a" },
      { image: "a", command: [] },
      { image: "a", command: "echo hi" },
      { image: "a", command: ["echo", 1] },
      { image: "a", command: ["", "x"] },
    ],
  });
  equal(problemAt(list, "executors[0].command"), "required");
  equal(problemAt(list, "executors[1].command"), "must hold at least the program to run");
  equal(problemAt(list, "executors[2].command"), "expected array, got string");
  equal(problemAt(list, "executors[3].command[1]"), "expected string, got number");
  equal(problemAt(list, "executors[4].command[0]"), "must name the program to run");
});

Deno.test("validateTask() refuses NUL bytes in command arguments and env values", () => {
  const list = problems(withExecutor({ command: ["echo", "a\0b"], env: { A: "x\0" } }));
  equal(problemAt(list, "executors[0].command[1]"), "must not contain NUL bytes");
  equal(problemAt(list, "executors[0].env.A"), "must not contain NUL bytes");
});

Deno.test("validateTask() requires absolute workdir, stdin, stdout and stderr", () => {
  const list = problems(
    withExecutor({ workdir: "w", stdin: "in", stdout: "./out", stderr: "" }),
  );
  for (const field of ["workdir", "stdin", "stdout", "stderr"]) {
    equal(problemAt(list, `executors[0].${field}`), "must be an absolute path");
  }
});

Deno.test("validateTask() refuses relative volumes", () => {
  const list = problems(task({ volumes: ["/ok", "tmp"] }));
  deepStrictEqual(list, [{ path: "volumes[1]", message: "must be an absolute path" }]);
});

Deno.test("validateTask() refuses invalid environment variable names", () => {
  const list = problems(withExecutor({ env: { "1ABC": "x", "A-B": "x", "": "x", OK_1: "x" } }));
  equal(problemAt(list, "executors[0].env.1ABC"), "not a valid environment variable name");
  equal(problemAt(list, "executors[0].env.A-B"), "not a valid environment variable name");
  equal(problemAt(list, 'executors[0].env[""]'), "not a valid environment variable name");
  equal(list.length, 3);
});

Deno.test("validateTask() refuses non-string env values naming the key", () => {
  const list = problems(withExecutor({ env: { A: 1, B: false, C: { x: "y" } } }));
  equal(problemAt(list, "executors[0].env.A"), "expected string, got number");
  equal(problemAt(list, "executors[0].env.B"), "expected string, got boolean");
  equal(problemAt(list, "executors[0].env.C"), "expected string, got object");
});

// --- resources ---------------------------------------------------------------------------

Deno.test("validateTask() refuses cpu_cores that are not positive integers", () => {
  const cases: [unknown, string][] = [
    [1.5, "expected integer, got 1.5"],
    [0, "must be positive, got 0"],
    [-1, "must be positive, got -1"],
    ["2", "expected number, got string"],
    [true, "expected number, got boolean"],
  ];
  for (const [value, message] of cases) {
    const list = problems(task({ resources: { cpu_cores: value } }));
    equal(problemAt(list, "resources.cpu_cores"), message, `cpu_cores ${String(value)}`);
  }
  equal(accepted(task({ resources: { cpu_cores: 2.0 } })).task.resources?.cpu_cores, 2);
});

Deno.test("validateTask() refuses ram_gb and disk_gb that are not positive finite numbers", () => {
  for (const value of [0, -2, Infinity, NaN, "4"]) {
    const list = problems(task({ resources: { ram_gb: value, disk_gb: value } }));
    ok(problemAt(list, "resources.ram_gb").length > 0);
    ok(problemAt(list, "resources.disk_gb").length > 0);
  }
  const { task: out } = accepted(task({ resources: { ram_gb: 0.5, disk_gb: 100 } }));
  deepStrictEqual(out.resources, { ram_gb: 0.5, disk_gb: 100 });
});

Deno.test("validateTask() refuses zones that are not strings", () => {
  const list = problems(task({ resources: { zones: ["a", 2] } }));
  equal(problemAt(list, "resources.zones[1]"), "expected string, got number");
});

Deno.test("validateTask() drops unsupported backend parameters with a warning per key", () => {
  const { task: out, warnings } = accepted(
    task({ resources: { backend_parameters: { VM_SIZE: "big", a: "1", b: "2" } } }),
    { supportedBackendParameters: ["vm_size"] },
  );
  deepStrictEqual(out.resources?.backend_parameters, { VM_SIZE: "big" });
  deepStrictEqual(warnings, [
    "resources.backend_parameters.a: not supported by this server; ignored",
    "resources.backend_parameters.b: not supported by this server; ignored",
  ]);
});

Deno.test("validateTask() refuses unsupported backend parameters when strict", () => {
  const list = problems(
    task({
      resources: {
        backend_parameters: { Vm_Size: "big", region: "eu", "node.pool": "x" },
        backend_parameters_strict: true,
      },
    }),
    { supportedBackendParameters: ["VM_SIZE"] },
  );
  deepStrictEqual(paths(list), [
    "resources.backend_parameters.region",
    'resources.backend_parameters["node.pool"]',
  ]);
  ok(list[0]?.message.includes("supported: vm_size"));
});

Deno.test("validateTask() keeps supported backend parameters when strict", () => {
  const { task: out, warnings } = accepted(
    task({
      resources: { backend_parameters: { vm_size: "big" }, backend_parameters_strict: true },
    }),
    { supportedBackendParameters: ["VM_SIZE"] },
  );
  deepStrictEqual(out.resources, {
    backend_parameters: { vm_size: "big" },
    backend_parameters_strict: true,
  });
  deepStrictEqual(warnings, []);
});

Deno.test("validateTask() refuses non-string backend parameter values", () => {
  const list = problems(task({ resources: { backend_parameters: { vm_size: 4 } } }));
  equal(problemAt(list, "resources.backend_parameters.vm_size"), "expected string, got number");
});

// --- tags and hostile values -------------------------------------------------------------

Deno.test("validateTask() refuses non-string tag values naming the key", () => {
  const list = problems(task({ tags: { foo: 1, "with space": false } }));
  equal(problemAt(list, "tags.foo"), "expected string, got number");
  equal(problemAt(list, 'tags["with space"]'), "expected string, got boolean");
});

Deno.test("validateTask() refuses a __proto__ key instead of losing it", () => {
  const body = JSON.parse(
    '{"executors":[{"image":"a","command":["x"],"env":{"__proto__":"x"}}],' +
      '"tags":{"__proto__":"x"},"resources":{"backend_parameters":{"__proto__":"x"}}}',
  );
  const list = problems(body);
  equal(problemAt(list, "tags.__proto__"), "reserved key not allowed");
  equal(problemAt(list, "executors[0].env.__proto__"), "reserved key not allowed");
  equal(problemAt(list, "resources.backend_parameters.__proto__"), "reserved key not allowed");
  equal(({} as Json).polluted, undefined);
});

Deno.test("validateTask() reports problems deep in the third executor", () => {
  const list = problems({
    executors: [
      { image: "a", command: ["x"] },
      { image: "b", command: ["y"] },
      { image: "c", command: ["z"], env: { OK: "1", BAD: 2 }, stdout: "rel" },
    ],
  });
  deepStrictEqual(paths(list).sort(), ["executors[2].env.BAD", "executors[2].stdout"]);
});

Deno.test("validateTask() reports every problem of a body at once", () => {
  const list = problems({
    name: 1,
    executors: [{ image: "", command: [] }],
    inputs: [{ path: "rel" }],
    outputs: [{ url: "s3://b", path: "/o/*" }],
    resources: { cpu_cores: 0 },
    tags: { t: 1 },
  });
  deepStrictEqual(paths(list).sort(), [
    "executors[0].command",
    "executors[0].image",
    "inputs[0].path",
    "inputs[0].url",
    "name",
    "outputs[0].path_prefix",
    "resources.cpu_cores",
    "tags.t",
  ]);
});

Deno.test("validateTask() refuses more than MAX_TASK_ITEMS entries with a clear message", () => {
  const executor = { image: "a", command: ["x"] };
  const many = Array.from({ length: MAX_TASK_ITEMS + 1 }, () => executor);
  deepStrictEqual(problems({ executors: many }), [{
    path: "executors",
    message: `too many entries: ${MAX_TASK_ITEMS + 1} (at most ${MAX_TASK_ITEMS})`,
  }]);
  const inputs = Array.from({ length: MAX_TASK_ITEMS + 1 }, (_, i) => ({ path: `/i${i}` }));
  equal(paths(problems(task({ inputs })))[0], "inputs");
  const tags = Object.fromEntries(
    Array.from({ length: MAX_TASK_ITEMS + 1 }, (_, i) => [`k${i}`, "v"]),
  );
  ok(problemAt(problems(task({ tags })), "tags").startsWith("too many keys"));
  const exactly = Array.from({ length: MAX_TASK_ITEMS }, () => executor);
  equal(accepted({ executors: exactly }).task.executors.length, MAX_TASK_ITEMS);
});

Deno.test("validateTask() caps the number of problems it returns", () => {
  const executors = Array.from({ length: 300 }, () => ({ image: "", command: ["x"] }));
  const list = problems({ executors });
  equal(list.length, MAX_PROBLEMS + 1);
  deepStrictEqual(list.at(-1), { path: "", message: "200 more problems not shown" });
});

Deno.test("validateTask() does not modify the body it was given", () => {
  const body = task({
    inputs: [{ path: "/a", url: "s3://b/a" }],
    resources: { backend_parameters: { x: "1" } },
  });
  const copy = structuredClone(body);
  accepted(body);
  deepStrictEqual(body, copy);
});

// --- null values (Cromwell, protobuf JSON mapping) --------------------------------------

Deno.test("validateTask() stores a null tag value as an empty string", () => {
  // Cromwell's TES backend sends "parent_workflow_id": null for a root workflow.
  const { task: out } = accepted(task({ tags: { workflow_id: "w1", parent_workflow_id: null } }));
  deepStrictEqual(out.tags, { workflow_id: "w1", parent_workflow_id: "" });
});

Deno.test("validateTask() stores a null env value as an empty string", () => {
  const { task: out } = accepted(withExecutor({ env: { A: "1", B: null } }));
  deepStrictEqual(out.executors[0]?.env, { A: "1", B: "" });
});

Deno.test("validateTask() drops a null backend parameter as not set", () => {
  const options = { supportedBackendParameters: ["vm_size", "queue"] };
  const { task: out, warnings } = accepted(
    task({ resources: { backend_parameters: { vm_size: "big", queue: null } } }),
    options,
  );
  deepStrictEqual(out.resources?.backend_parameters, { vm_size: "big" });
  deepStrictEqual(warnings, []);
});

Deno.test("validateTask() reads null in every optional field as absent", () => {
  const body = {
    id: null,
    state: null,
    name: null,
    description: null,
    volumes: null,
    tags: null,
    logs: null,
    creation_time: null,
    inputs: [
      {
        name: null,
        description: null,
        url: "s3://b/a",
        path: "/a",
        type: null,
        content: null,
        streamable: null,
      },
      { url: null, path: "/b", content: "x" },
    ],
    outputs: [{
      name: null,
      description: null,
      url: "s3://b/o",
      path: "/o",
      path_prefix: null,
      type: null,
    }],
    resources: {
      cpu_cores: null,
      preemptible: null,
      ram_gb: null,
      disk_gb: null,
      zones: null,
      backend_parameters: null,
      backend_parameters_strict: null,
    },
    executors: [{
      image: "alpine",
      command: ["true"],
      workdir: null,
      stdin: null,
      stdout: null,
      stderr: null,
      env: null,
      ignore_error: null,
    }],
  };
  const copy = structuredClone(body);
  deepStrictEqual(accepted(body).task, {
    inputs: [
      { url: "s3://b/a", path: "/a", type: "FILE" },
      { path: "/b", content: "x", type: "FILE" },
    ],
    outputs: [{ url: "s3://b/o", path: "/o", type: "FILE" }],
    resources: {},
    executors: [{ image: "alpine", command: ["true"] }],
  });
  deepStrictEqual(body, copy, "the body itself is not modified");
});

Deno.test("validateTask() still refuses null in a required field", () => {
  const list = problems({
    executors: [{ image: null, command: null }],
    inputs: [{ path: null, url: "s3://b/a" }, { path: "/b", url: null }],
    outputs: [{ path: "/o", url: null }],
  });
  equal(problemAt(list, "executors[0].image"), "expected string, got null");
  equal(problemAt(list, "executors[0].command"), "expected array, got null");
  equal(problemAt(list, "inputs[0].path"), "expected string, got null");
  equal(problemAt(list, "inputs[1].url"), "required unless content is set");
  equal(problemAt(list, "outputs[0].url"), "expected string, got null");
  equal(problemAt(problems({ executors: null }), "executors"), "expected array, got null");
});

Deno.test("validateTask() refuses null inside lists", () => {
  const list = problems(task({ volumes: [null], resources: { zones: [null] } }));
  equal(problemAt(list, "volumes[0]"), "expected string, got null");
  equal(problemAt(list, "resources.zones[0]"), "expected string, got null");
});

// --- bare host paths as url (Cromwell, the specification's example) ---------------------

Deno.test("validateTask() stores a bare absolute url as a file:// URL", () => {
  const { task: out } = accepted(task({
    inputs: [{ path: "/in/file", url: "/path/to/my/file" }],
    outputs: [{ path: "/out/x", url: "/results/x" }],
  }));
  equal(out.inputs?.[0]?.url, "file:///path/to/my/file");
  equal(out.outputs?.[0]?.url, "file:///results/x");
});

Deno.test("validateTask() percent-encodes a bare path so that it reads back to the same path", () => {
  const hostPath = "/data/run 1/50% #a?b/é.txt";
  const { task: out } = accepted(task({ inputs: [{ path: "/in", url: hostPath }] }));
  const url = out.inputs?.[0]?.url ?? "";
  equal(url, "file:///data/run%201/50%25%20%23a%3Fb/%C3%A9.txt");
  // Decoded the way src/storage/file/file_storage.ts decodes it.
  equal(url.slice("file://".length).split("/").map(decodeURIComponent).join("/"), hostPath);
});

Deno.test("validateTask() leaves URLs with a scheme as they are", () => {
  const urls = ["s3://b/k", "file:///data/a%20b", "https://h/p?q=1#f"];
  const { task: out } = accepted(task({
    inputs: urls.map((url, i) => ({ path: `/in/${i}`, url })),
  }));
  deepStrictEqual(out.inputs?.map((input) => input.url), urls);
});

Deno.test("validateTask() refuses a bare url with .. segments and a relative url", () => {
  const list = problems(task({
    inputs: [
      { path: "/a", url: "/data/../etc/passwd" },
      { path: "/b", url: "data/file" },
      { path: "/c", url: "//server/share/file" },
    ],
    outputs: [{ path: "/o", url: "./out" }],
  }));
  ok(problemAt(list, "inputs[0].url").startsWith('must not contain ".." segments'));
  ok(problemAt(list, "inputs[1].url").startsWith("must be a URL with a scheme"));
  ok(problemAt(list, "inputs[2].url").startsWith("must be a URL with a scheme"));
  ok(problemAt(list, "outputs[0].url").startsWith("must be a URL with a scheme"));
});

Deno.test("validateTask() checks a bare url against allowedUrlSchemes as file", () => {
  const list = problems(task({ inputs: [{ path: "/a", url: "/data/a" }] }), {
    allowedUrlSchemes: ["s3"],
  });
  equal(problemAt(list, "inputs[0].url"), 'URL scheme "file" is not supported (accepted: s3)');
  accepted(task({ inputs: [{ path: "/a", url: "/data/a" }] }), { allowedUrlSchemes: ["file"] });
});

Deno.test("validateTask() refuses file:// URLs the file adapter would not read", () => {
  const list = problems(task({
    inputs: [
      { path: "/a", url: "file:///data/%2e%2e/etc" },
      { path: "/b", url: "file:///data/%zz" },
      { path: "/c", url: "file:///data/a?b" },
      { path: "/d", url: "file:///data/a%2Fb" },
    ],
  }));
  ok(problemAt(list, "inputs[0].url").includes('".."'));
  ok(problemAt(list, "inputs[1].url").includes("percent-encoding"));
  ok(problemAt(list, "inputs[2].url").includes("query or fragment"));
  ok(problemAt(list, "inputs[3].url").includes('encode "/"'));
});

// --- fileAllowList -----------------------------------------------------------------------

Deno.test("validateTask() accepts file URLs and bare paths inside fileAllowList", () => {
  const options = { fileAllowList: ["/data", "/tmp/work/"] };
  accepted(
    task({
      inputs: [
        { path: "/a", url: "file:///data/a" },
        { path: "/b", url: "/tmp/work/b" },
        { path: "/c", url: "file://localhost/data" },
        { path: "/d", url: "file:///tmp//work/x/" },
        { path: "/e", url: "/tmp/work/./y" },
      ],
      outputs: [{ path: "/o", url: "FILE:///data/out/" }],
    }),
    options,
  );
});

Deno.test("validateTask() refuses file URLs outside fileAllowList, naming the folders", () => {
  const options = { fileAllowList: ["/data", "/tmp"] };
  const list = problems(
    task({
      inputs: [
        { path: "/a", url: "file:///etc/passwd" },
        { path: "/b", url: "/tmpx/b" },
        { path: "/c", url: "file:///datafile" },
      ],
      outputs: [{ path: "/o", url: "file:///" }],
    }),
    options,
  );
  equal(problemAt(list, "inputs[0].url"), "outside the allowed folders (/data, /tmp)");
  equal(problemAt(list, "inputs[1].url"), "outside the allowed folders (/data, /tmp)");
  equal(problemAt(list, "inputs[2].url"), "outside the allowed folders (/data, /tmp)");
  equal(problemAt(list, "outputs[0].url"), "outside the allowed folders (/data, /tmp)");
});

Deno.test("validateTask() compares decoded paths with fileAllowList", () => {
  const options = { fileAllowList: ["/my data"] };
  accepted(task({ inputs: [{ path: "/a", url: "file:///my%20data/x" }] }), options);
  accepted(task({ inputs: [{ path: "/a", url: "/my data/x" }] }), options);
  problems(task({ inputs: [{ path: "/a", url: "file:///my%20datax" }] }), options);
});

Deno.test("validateTask() refuses a file URL with a remote host", () => {
  const list = problems(task({ inputs: [{ path: "/a", url: "file://server/data/a" }] }), {
    fileAllowList: ["/"],
  });
  ok(problemAt(list, "inputs[0].url").includes('host "server"'));
});

Deno.test("validateTask() refuses every file URL with an empty fileAllowList", () => {
  const list = problems(
    task({
      inputs: [{ path: "/a", url: "file:///data/a" }, { path: "/b", url: "/data/b" }],
    }),
    { fileAllowList: [] },
  );
  ok(problemAt(list, "inputs[0].url").startsWith("outside the allowed folders"));
  ok(problemAt(list, "inputs[1].url").startsWith("outside the allowed folders"));
  accepted(task({ inputs: [{ path: "/a", url: "s3://b/a" }] }), { fileAllowList: [] });
});

Deno.test("validateTask() allows everything local with fileAllowList ['/']", () => {
  accepted(task({ inputs: [{ path: "/a", url: "file:///etc/hosts" }] }), { fileAllowList: ["/"] });
});

// --- duplicate and root paths ------------------------------------------------------------

Deno.test("validateTask() refuses duplicate input paths, naming the first", () => {
  const list = problems(task({
    inputs: [
      { path: "/a", url: "s3://b/a" },
      { path: "/b", url: "s3://b/b" },
      { path: "/c", url: "s3://b/c" },
      { path: "/b", url: "s3://b/other" },
      { path: "//b/", content: "x" },
    ],
  }));
  equal(problemAt(list, "inputs[3].path"), "duplicates inputs[1].path");
  equal(problemAt(list, "inputs[4].path"), "duplicates inputs[1].path");
  equal(list.length, 2);
});

Deno.test("validateTask() names only the first of many equal input paths", () => {
  // One problem per duplicate (not per pair): the check stays linear in the number of inputs.
  const inputs = Array.from({ length: MAX_TASK_ITEMS }, () => ({ path: "/same", url: "s3://b/a" }));
  const list = validateTask(task({ inputs }));
  ok(!list.ok);
  equal(list.problems.length, MAX_PROBLEMS + 1);
  deepStrictEqual(list.problems[0], {
    path: "inputs[1].path",
    message: "duplicates inputs[0].path",
  });
  deepStrictEqual(list.problems.at(-1), {
    path: "",
    message: `${MAX_TASK_ITEMS - 1 - MAX_PROBLEMS} more problems not shown`,
  });
});

Deno.test("validateTask() refuses the root directory as an input or output path", () => {
  const list = problems(task({
    inputs: [{ path: "/", url: "s3://b/a" }, { path: "//", url: "s3://b/a" }],
    outputs: [{ path: "/.", url: "s3://b/o", type: "DIRECTORY" }],
  }));
  equal(problemAt(list, "inputs[0].path"), "must not be the root directory /");
  equal(problemAt(list, "inputs[1].path"), "must not be the root directory /");
  equal(problemAt(list, "outputs[0].path"), "must not be the root directory /");
});

Deno.test("validateTask() accepts path_prefix / on a wildcard output", () => {
  accepted(task({ outputs: [{ path: "/*.txt", path_prefix: "/", url: "s3://b/o/" }] }));
});

// --- NUL characters everywhere -----------------------------------------------------------

Deno.test("validateTask() refuses a NUL character in every string field, naming it", () => {
  const n = "x\u0000y";
  const body = {
    name: n,
    description: n,
    tags: { [n]: "v", ok: n },
    inputs: [
      { name: n, description: n, path: "/a", url: n },
      { path: "/b", content: n },
    ],
    outputs: [{ name: n, description: n, path: `/o${n}`, path_prefix: n, url: n }],
    resources: { zones: [n], backend_parameters: { [n]: "v", ok: n } },
    executors: [{
      image: n,
      command: [n],
      workdir: `/${n}`,
      stdin: `/${n}`,
      stdout: `/${n}`,
      stderr: `/${n}`,
      env: { [n]: "v", OK: n },
    }],
    volumes: [`/${n}`],
  };
  const list = problems(body);
  const key = JSON.stringify(n);
  for (
    const path of [
      "name",
      "description",
      "tags.ok",
      "inputs[0].name",
      "inputs[0].description",
      "inputs[0].url",
      "inputs[1].content",
      "outputs[0].name",
      "outputs[0].description",
      "outputs[0].path",
      "outputs[0].path_prefix",
      "outputs[0].url",
      "resources.zones[0]",
      "resources.backend_parameters.ok",
      "executors[0].image",
      "executors[0].command[0]",
      "executors[0].workdir",
      "executors[0].stdin",
      "executors[0].stdout",
      "executors[0].stderr",
      "executors[0].env.OK",
      "volumes[0]",
    ]
  ) {
    equal(problemAt(list, path), "must not contain NUL bytes", path);
  }
  for (const map of ["tags", "resources.backend_parameters", "executors[0].env"]) {
    equal(problemAt(list, `${map}[${key}]`), "key must not contain NUL bytes", map);
  }
});

// --- size limits -------------------------------------------------------------------------

Deno.test("validateTask() refuses every string field over its limit, naming the limit", () => {
  const L = TES_STRING_LIMITS;
  const over = (limit: number): string => "a".repeat(limit + 1);
  const body = {
    name: over(L.name),
    description: over(L.description),
    tags: { t: over(L.tagValue) },
    inputs: [{
      name: over(L.name),
      description: over(L.description),
      path: `/${over(L.path)}`,
      url: `s3://${over(L.url)}`,
    }],
    outputs: [{ path: "/o", path_prefix: `/${over(L.path)}`, url: "s3://b/o" }],
    resources: { zones: [over(L.zone)], backend_parameters: { p: over(L.backendParameterValue) } },
    executors: [{ image: over(L.image), command: ["x"], workdir: `/${over(L.path)}` }],
    volumes: [`/${over(L.path)}`],
  };
  const list = problems(body);
  const expect: [string, number, number][] = [
    ["name", L.name + 1, L.name],
    ["description", L.description + 1, L.description],
    ["tags.t", L.tagValue + 1, L.tagValue],
    ["inputs[0].name", L.name + 1, L.name],
    ["inputs[0].description", L.description + 1, L.description],
    ["inputs[0].path", L.path + 2, L.path],
    ["inputs[0].url", L.url + 6, L.url],
    ["outputs[0].path_prefix", L.path + 2, L.path],
    ["resources.zones[0]", L.zone + 1, L.zone],
    ["resources.backend_parameters.p", L.backendParameterValue + 1, L.backendParameterValue],
    ["executors[0].image", L.image + 1, L.image],
    ["executors[0].workdir", L.path + 2, L.path],
    ["volumes[0]", L.path + 2, L.path],
  ];
  for (const [path, size, limit] of expect) {
    equal(problemAt(list, path), `too long: ${size} bytes (at most ${limit})`, path);
  }
});

Deno.test("validateTask() accepts every string field exactly at its limit", () => {
  const L = TES_STRING_LIMITS;
  const at = (limit: number): string => "a".repeat(limit);
  accepted({
    name: at(L.name),
    description: at(L.description),
    tags: { [at(L.tagKey)]: at(L.tagValue) },
    inputs: [{ name: at(L.name), path: `/${at(L.path - 1)}`, url: `s3://${at(L.url - 5)}` }],
    resources: {
      zones: [at(L.zone)],
      backend_parameters: { [at(L.backendParameterKey)]: at(L.backendParameterValue) },
    },
    executors: [{ image: at(L.image), command: ["x"], env: { [at(L.envKey)]: "v" } }],
  }, { supportedBackendParameters: [at(L.backendParameterKey)] });
});

Deno.test("validateTask() counts limits in UTF-8 bytes", () => {
  // 1025 "é" are 1025 UTF-16 units but 2050 UTF-8 bytes, over the 2048 of a name.
  const list = problems(task({ name: "é".repeat(1025) }));
  equal(problemAt(list, "name"), `too long: 2050 bytes (at most ${TES_STRING_LIMITS.name})`);
  accepted(task({ name: "é".repeat(1024) }));
});

Deno.test("validateTask() reports an over-long map key at the map, not echoing it whole", () => {
  const L = TES_STRING_LIMITS;
  const key = (limit: number): string => "k".repeat(limit + 1);
  const list = problems({
    tags: { [key(L.tagKey)]: "v" },
    resources: { backend_parameters: { [key(L.backendParameterKey)]: "v" } },
    executors: [{ image: "a", command: ["x"], env: { [key(L.envKey)]: "v" } }],
  });
  for (
    const [path, limit] of [
      ["tags", L.tagKey],
      ["resources.backend_parameters", L.backendParameterKey],
      ["executors[0].env", L.envKey],
    ] as const
  ) {
    const message = problemAt(list, path);
    ok(message.endsWith(`too long: ${limit + 1} bytes (at most ${limit})`), message);
    ok(message.length < 200, message);
  }
});

Deno.test("validateTask() keeps the content limit separate from the string limits", () => {
  const content = "a".repeat(TES_STRING_LIMITS.description * 2);
  accepted(task({ inputs: [{ path: "/a", content }] }));
});

// --- formatProblems ----------------------------------------------------------------------

Deno.test("formatProblems() joins path and message with semicolons", () => {
  equal(
    formatProblems([
      { path: "executors[0].image", message: "must not be empty" },
      { path: "inputs[0].path", message: "must be an absolute path" },
    ]),
    "executors[0].image: must not be empty; inputs[0].path: must be an absolute path",
  );
});

Deno.test("formatProblems() writes a root problem without a path", () => {
  equal(
    formatProblems([{ path: "", message: "task must be a JSON object" }]),
    "task must be a JSON object",
  );
  equal(formatProblems([]), "");
});
