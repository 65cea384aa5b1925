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
  const list = problems(task({ name: 5, description: null, volumes: "/data" }));
  equal(problemAt(list, "name"), "expected string, got number");
  equal(problemAt(list, "description"), "expected string, got null");
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

Deno.test("validateTask() refuses a wildcard output of type FILE", () => {
  const list = problems(task({
    outputs: [{ url: "s3://b/o", path: "/out/*", path_prefix: "/out/", type: "FILE" }],
  }));
  ok(problemAt(list, "outputs[0].type").startsWith("must be DIRECTORY"));
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
  const list = problems(withExecutor({ env: { A: 1, B: null, C: { x: "y" } } }));
  equal(problemAt(list, "executors[0].env.A"), "expected string, got number");
  equal(problemAt(list, "executors[0].env.B"), "expected string, got null");
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
