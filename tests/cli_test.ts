/**
 * The `planetary` client verbs, run as a real subprocess (`deno run <CLI_PERMISSIONS>
 * cli/planetary.ts …`) against a real API over an in-memory store on loopback. The tests play
 * the orchestrator by moving tasks with `store.transition()`.
 */
import assert from "node:assert/strict";
import { CLI_PERMISSIONS } from "../cli/permissions.ts";
import {
  closedPort,
  startTesTestServer,
  type TesTestServer,
} from "../src/client/testdata/tes_test_server.ts";
import type { TesTask } from "../src/tes/model.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const CLI = new URL("../cli/planetary.ts", import.meta.url).pathname;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  /** Server URL put in PLANETARY_URL. */
  url?: string;
  /** Text written to the CLI's stdin. */
  stdin?: string;
}

function spawnCli(args: readonly string[], options: RunOptions = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_PERMISSIONS, CLI, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", PLANETARY_URL: options.url ?? "" },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function finish(child: Deno.ChildProcess): Promise<CliResult> {
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function cli(args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  return await finish(child);
}

function assertNoStackTrace(result: CliResult): void {
  assert.doesNotMatch(result.stderr, /^\s+at /m, `stack trace in stderr:\n${result.stderr}`);
}

function assertUsageError(result: CliResult, message: RegExp): void {
  assert.equal(result.code, 2, `exit code of a usage error; stderr:\n${result.stderr}`);
  assert.match(result.stderr, message);
  assert.match(result.stderr, /Usage: planetary /, "the usage follows the message");
  assert.equal(result.stdout, "");
  assertNoStackTrace(result);
}

/** Tests that need the API: run as steps of one test, over one server. */
const SERVER_TESTS: { name: string; run: (server: TesTestServer) => Promise<void> }[] = [];

function serverTest(name: string, run: (server: TesTestServer) => Promise<void>): void {
  SERVER_TESTS.push({ name, run });
}

async function full(server: TesTestServer, id: string): Promise<TesTask> {
  return await server.store.get(id, "FULL");
}

const ECHO: TesTask = { name: "echo", executors: [{ image: "alpine", command: ["echo", "hi"] }] };

Deno.test("planetary --help lists every verb and exits 0", async () => {
  const result = await cli(["--help"]);
  assert.equal(result.code, 0);
  for (const verb of ["serve", "submit", "list", "get", "cancel", "wait", "logs"]) {
    assert.match(result.stdout, new RegExp(`^  ${verb} `, "m"));
  }
  const version = await cli(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^planetary \d+\.\d+\.\d+/);
  const help = await cli(["help", "submit"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--input SRC:PATH/);
});

Deno.test("planetary with an unknown command exits 2 and lists the commands", async () => {
  const result = await cli(["frobnicate"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /unknown command "frobnicate"/);
  assert.match(result.stderr, /submit, list, get, cancel, wait, logs/);
  assertNoStackTrace(result);
  const none = await cli([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /missing command/);
});

serverTest("planetary submit builds the task from flags", async (server) => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a.txt`, "data");
    const result = await cli([
      "submit",
      "--image=alpine:3",
      "--name",
      "flags",
      "--input",
      `${dir}/a.txt:/data/a.txt`,
      "--input",
      "deno.json:/data/deno.json",
      "--input",
      `${dir}:/data/dir`,
      "--input",
      "s3://bucket/key:v1:/data/s3.txt",
      "--input-content",
      "hello: world:/data/inline.txt",
      "--output",
      "/data/out:file:///tmp/out",
      "--output",
      "/data/res/*.txt:s3://bucket/res",
      "--output",
      "/data/dirout/:gs://b/d",
      "--tag",
      "project=demo",
      "--tag",
      "flag=",
      "--env",
      "GREETING=a=b",
      "--workdir",
      "/data",
      "--stdout",
      "/data/stdout.txt",
      "--cpu",
      "2",
      "--ram-gb",
      "1.5",
      "--disk-gb",
      "10",
      "--",
      "sh",
      "-c",
      "echo $GREETING --json",
    ], { url: server.url });
    assert.equal(result.code, 0, result.stderr);
    const id = result.stdout.trim();
    assert.match(id, /^\S+$/);
    const task = await full(server, id);
    assert.equal(task.state, "QUEUED");
    assert.equal(task.name, "flags");
    assert.deepEqual(task.tags, { project: "demo", flag: "" });
    assert.deepEqual(task.executors, [{
      image: "alpine:3",
      command: ["sh", "-c", "echo $GREETING --json"],
      env: { GREETING: "a=b" },
      workdir: "/data",
      stdout: "/data/stdout.txt",
    }]);
    assert.deepEqual(
      task.inputs?.map(({ url, path, type, content }) => ({ url, path, type, content })),
      [
        { url: `file://${dir}/a.txt`, path: "/data/a.txt", type: "FILE", content: undefined },
        {
          url: `file://${ROOT}deno.json`,
          path: "/data/deno.json",
          type: "FILE",
          content: undefined,
        },
        { url: `file://${dir}`, path: "/data/dir", type: "DIRECTORY", content: undefined },
        { url: "s3://bucket/key:v1", path: "/data/s3.txt", type: "FILE", content: undefined },
        { url: undefined, path: "/data/inline.txt", type: "FILE", content: "hello: world" },
      ],
    );
    assert.deepEqual(task.outputs, [
      { url: "file:///tmp/out", path: "/data/out", type: "FILE" },
      {
        url: "s3://bucket/res/",
        path: "/data/res/*.txt",
        path_prefix: "/data/res/",
        type: "DIRECTORY",
      },
      { url: "gs://b/d", path: "/data/dirout", type: "DIRECTORY" },
    ]);
    assert.equal(task.resources?.cpu_cores, 2);
    assert.equal(task.resources?.ram_gb, 1.5);
    assert.equal(task.resources?.disk_gb, 10);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

serverTest(
  "planetary submit reads a task file or stdin, and --json prints {id}",
  async (server) => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/task.json`, JSON.stringify({ ...ECHO, name: "from-file" }));
      const fromFile = await cli(["submit", `${dir}/task.json`], { url: server.url });
      assert.equal(fromFile.code, 0, fromFile.stderr);
      assert.equal((await full(server, fromFile.stdout.trim())).name, "from-file");

      const fromStdin = await cli(["submit", "-", "--json"], {
        url: server.url,
        stdin: JSON.stringify({ ...ECHO, name: "from-stdin" }),
      });
      assert.equal(fromStdin.code, 0, fromStdin.stderr);
      const body = JSON.parse(fromStdin.stdout);
      assert.deepEqual(Object.keys(body), ["id"]);
      assert.equal((await full(server, body.id)).name, "from-stdin");

      const invalid = await cli(["submit", "-"], { url: server.url, stdin: '{"executors": []}' });
      assert.equal(invalid.code, 1, "a task the server refuses is a failure, not a usage error");
      assert.match(invalid.stderr, /executors/);
      assert.match(invalid.stderr, /HTTP 400/);
      assertNoStackTrace(invalid);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

serverTest(
  "planetary submit takes several files, arrays and JSON lines, ids in order",
  async (server) => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/one.json`, JSON.stringify({ ...ECHO, name: "f0" }));
      await Deno.writeTextFile(
        `${dir}/array.json`,
        JSON.stringify([{ ...ECHO, name: "f1" }, { ...ECHO, name: "f2" }]),
      );
      const lines = [3, 4, 5].map((i) => JSON.stringify({ ...ECHO, name: `f${i}` }));
      const many = await cli(["submit", `${dir}/one.json`, `${dir}/array.json`, "-"], {
        url: server.url,
        stdin: `${lines[0]}\n\n${lines[1]}\n${lines[2]}\n`,
      });
      assert.equal(many.code, 0, many.stderr);
      const ids = many.stdout.trim().split("\n");
      assert.equal(ids.length, 6);
      for (const [i, id] of ids.entries()) assert.equal((await full(server, id)).name, `f${i}`);

      const json = await cli(["submit", `${dir}/array.json`, "--json"], { url: server.url });
      assert.equal(json.code, 0, json.stderr);
      const body = JSON.parse(json.stdout);
      assert.deepEqual(Object.keys(body), ["ids"]);
      assert.equal(body.ids.length, 2);

      // one bad task refuses the whole batch, naming it; nothing is printed as created
      const bad = await cli(["submit", "-"], {
        url: server.url,
        stdin: `${lines[0]}\n{"executors": []}\n`,
      });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /tasks\[1\]\.executors/);
      assert.equal(bad.stdout, "");
      assertNoStackTrace(bad);

      const badLine = await cli(["submit", "-"], {
        url: server.url,
        stdin: `${lines[0]}\n{nope\n`,
      });
      assertUsageError(badLine, /stdin line 2 is not valid JSON/);
      const notTask = await cli(["submit", "-"], { url: server.url, stdin: "[1]" });
      assertUsageError(notTask, /stdin \[0\] must be a TES task object/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("planetary submit usage errors exit 2 and say what to do", async () => {
  const url = `http://127.0.0.1:${closedPort()}`; // never contacted
  assertUsageError(await cli(["submit", "--image", "alpine"], { url }), /put it after --/);
  assertUsageError(
    await cli(["submit", "--image", "alpine", "--"], { url }),
    /missing the command/,
  );
  assertUsageError(await cli(["submit", "--", "echo"], { url }), /missing --image/);
  assertUsageError(
    await cli(["submit", "--image", "alpine", "--input", "./no/such/file:/data/x", "--", "true"], {
      url,
    }),
    /"\.\/no\/such\/file" does not exist/,
  );
  assertUsageError(
    await cli(["submit", "--image", "alpine", "--tag", "novalue", "--", "true"], { url }),
    /--tag "novalue" must be KEY=VALUE/,
  );
  assertUsageError(
    await cli(["submit", "--image", "alpine", "--output", "relative:s3://b/k", "--", "true"], {
      url,
    }),
    /must be absolute/,
  );
  assertUsageError(
    await cli(["submit", "--image", "alpine", "--cpu", "two", "--", "true"], { url }),
    /--cpu "two" must be a whole number/,
  );
  assertUsageError(await cli(["submit", "--imagez", "alpine", "--", "true"], { url }), /--imagez/);
  assertUsageError(await cli(["submit", "no-such-task.json"], { url }), /does not exist/);
  assertUsageError(await cli(["submit", "-"], { url, stdin: "{nope" }), /not valid JSON/);
  assertUsageError(
    await cli(["submit", "-", "-"], { url, stdin: "{}" }),
    /stdin\) can be given once/,
  );
  assertUsageError(await cli(["submit", "a.json", "--", "true"], { url }), /either task files/);
});

serverTest(
  "planetary list prints a table, --json one document, --all every page",
  async (server) => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(await server.store.create({ ...ECHO, name: `list-${i}`, tags: { batch: "b1" } }));
    }
    const other = await server.store.create({ ...ECHO, name: "list-other" });
    await server.store.transition(other, "RUNNING");

    const table = await cli(["list", "--name-prefix", "list-"], { url: server.url });
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^ID\s+STATE\s+NAME\s+CREATED$/);
    assert.equal(lines.length, 7);
    const otherLine = lines.find((line) => line.startsWith(other));
    assert.match(otherLine ?? "", new RegExp(`^${other}\\s+RUNNING\\s+list-other\\s+\\d{4}-`));

    const running = await cli(["list", "--state", "running", "--name-prefix", "list-", "--json"], {
      url: server.url,
    });
    assert.equal(running.code, 0, running.stderr);
    assert.deepEqual(JSON.parse(running.stdout).tasks.map((t: TesTask) => t.id), [other]);

    const page = await cli(["list", "--page-size", "2", "--tag", "batch=b1", "--json"], {
      url: server.url,
    });
    const first = JSON.parse(page.stdout);
    assert.equal(first.tasks.length, 2);
    assert.equal(typeof first.next_page_token, "string");

    const tablePage = await cli(["list", "--page-size", "2"], { url: server.url });
    assert.match(tablePage.stderr, /--all/, "a partial table says how to get the rest");

    const all = await cli(["list", "--all", "--page-size", "2", "--tag", "batch=b1", "--json"], {
      url: server.url,
    });
    assert.equal(all.code, 0, all.stderr);
    const everything = JSON.parse(all.stdout);
    assert.deepEqual(new Set(everything.tasks.map((t: TesTask) => t.id)), new Set(ids));
    assert.equal(everything.next_page_token, undefined);

    const prefix = await cli(["list", "--name-prefix", "list-o", "--view", "MINIMAL", "--json"], {
      url: server.url,
    });
    assert.deepEqual(JSON.parse(prefix.stdout).tasks, [{ id: other, state: "RUNNING" }]);

    assertUsageError(
      await cli(["list", "--state", "DONE"], { url: server.url }),
      /not a TES state/,
    );
    assertUsageError(await cli(["list", "--page-size", "5000"], { url: server.url }), /1 to 2047/);
    assertUsageError(await cli(["list", "--tag", "=v"], { url: server.url }), /KEY=VALUE/);
  },
);

serverTest("planetary get shows a task in each view", async (server) => {
  const id = await server.store.create({ ...ECHO, tags: { k: "v" } });
  await server.store.transition(id, "EXECUTOR_ERROR", {
    executorLogs: [{ exit_code: 3, stdout: "partial\n", stderr: "boom\n" }],
    systemLogs: ["executor 0 exited with code 3"],
  });
  const human = await cli(["get", id], { url: server.url });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, new RegExp(`^id:\\s+${id}$`, "m"));
  assert.match(human.stdout, /^state:\s+EXECUTOR_ERROR$/m);
  assert.match(human.stdout, /^executor 0:\s+alpine\s+echo hi$/m);
  assert.match(human.stdout, /^\s+exit code:\s+3$/m);
  assert.match(human.stdout, /^system logs:\n\s+executor 0 exited with code 3$/m);

  const minimal = await cli(["get", id, "--view", "minimal", "--json"], { url: server.url });
  assert.deepEqual(JSON.parse(minimal.stdout), { id, state: "EXECUTOR_ERROR" });
  const basic = JSON.parse(
    (await cli(["get", id, "--view", "BASIC", "--json"], { url: server.url })).stdout,
  );
  assert.equal(basic.logs[0].logs[0].exit_code, 3);
  assert.equal(basic.logs[0].logs[0].stdout, undefined, "BASIC omits executor stdout");
  const fullTask = JSON.parse((await cli(["get", id, "--json"], { url: server.url })).stdout);
  assert.equal(fullTask.logs[0].logs[0].stdout, "partial\n");

  const missing = await cli(["get", "no-such-task"], { url: server.url });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no-such-task/);
  assert.match(missing.stderr, /HTTP 404/);
  assertNoStackTrace(missing);
  assertUsageError(await cli(["get"], { url: server.url }), /missing task id/);
  assertUsageError(
    await cli(["get", id, "--view", "ALL"], { url: server.url }),
    /MINIMAL, BASIC or FULL/,
  );
});

serverTest("planetary cancel cancels tasks and reports unknown ones", async (server) => {
  const a = await server.store.create(ECHO);
  const b = await server.store.create(ECHO);
  await server.store.transition(b, "RUNNING");
  const result = await cli(["cancel", a, b], { url: server.url });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `${a}  CANCELED\n${b}  CANCELING\n`);

  const json = await cli(["cancel", a, "no-such-task", "--json"], { url: server.url });
  assert.equal(json.code, 1);
  const body = JSON.parse(json.stdout);
  assert.deepEqual(body[0], { id: a, state: "CANCELED" });
  assert.equal(body[1].id, "no-such-task");
  assert.match(body[1].error, /HTTP 404/);
});

serverTest("planetary wait exits with the tasks' outcome", async (server) => {
  const done = await server.store.create(ECHO);
  await server.store.transition(done, "COMPLETE", { executorLogs: [{ exit_code: 0 }] });
  const failed = await server.store.create(ECHO);
  await server.store.transition(failed, "EXECUTOR_ERROR", {
    executorLogs: [{ exit_code: 1 }],
    systemLogs: ["executor 0 exited with code 1"],
  });
  const queued = await server.store.create(ECHO);

  const ok = await cli(["wait", done, "--interval-ms", "20"], { url: server.url });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `${done}  COMPLETE\n`);
  assert.equal(ok.stderr, "", "no progress when stderr is not a TTY");

  const bad = await cli(["wait", done, failed], { url: server.url });
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, `${done}  COMPLETE\n${failed}  EXECUTOR_ERROR\n`);
  assert.match(bad.stderr, /executor 0 exited with code 1/);

  const json = await cli(["wait", failed, "--json"], { url: server.url });
  assert.equal(json.code, 1);
  assert.deepEqual(JSON.parse(json.stdout), [{ id: failed, state: "EXECUTOR_ERROR" }]);

  const timeout = await cli(
    ["wait", queued, "--timeout", "0.3", "--interval-ms", "50", "--json"],
    {
      url: server.url,
    },
  );
  assert.equal(timeout.code, 1);
  assert.deepEqual(JSON.parse(timeout.stdout), [{
    id: queued,
    state: "QUEUED",
    timed_out: true,
  }]);

  // The task finishes while the CLI polls it.
  const child = spawnCli(["wait", queued, "--interval-ms", "20"], { url: server.url });
  await server.store.transition(queued, "COMPLETE");
  const later = await finish(child);
  assert.equal(later.code, 0, later.stderr);
  assert.equal(later.stdout, `${queued}  COMPLETE\n`);

  assertUsageError(await cli(["wait"], { url: server.url }), /missing task id/);
  assertUsageError(
    await cli(["wait", done, "--timeout", "soon"], { url: server.url }),
    /--timeout/,
  );
});

serverTest(
  "planetary submit --wait waits for the task and exits with its outcome",
  async (server) => {
    const child = spawnCli([
      "submit",
      "--wait",
      "--json",
      "--interval-ms",
      "20",
      "--image",
      "alpine",
      "--name",
      "waited",
      "--",
      "false",
    ], { url: server.url });
    // Play the orchestrator: fail the task once it exists.
    const deadline = Date.now() + 120_000;
    let id: string | undefined;
    while (id === undefined) {
      assert.ok(Date.now() < deadline, "the CLI never submitted the task");
      const page = await server.store.list({ namePrefix: "waited", pageSize: 10, view: "MINIMAL" });
      id = page.tasks[0]?.id;
      if (id === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await server.store.transition(id, "EXECUTOR_ERROR", { executorLogs: [{ exit_code: 1 }] });
    const result = await finish(child);
    assert.equal(result.code, 1, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { id, state: "EXECUTOR_ERROR" });
  },
);

serverTest(
  "planetary logs prints executor stdout and stderr apart, and why a task failed",
  async (server) => {
    const ok = await server.store.create({
      ...ECHO,
      executors: [ECHO.executors[0]!, { image: "alpine", command: ["date"] }],
    });
    await server.store.transition(ok, "COMPLETE", {
      executorLogs: [
        { exit_code: 0, stdout: "first out\n", stderr: "first err\n" },
        { exit_code: 0, stdout: "second out\n", stderr: "" },
      ],
    });
    const both = await cli(["logs", ok], { url: server.url });
    assert.equal(both.code, 0, both.stderr);
    assert.equal(both.stdout, "first out\nsecond out\n");
    assert.match(both.stderr, /first err/);
    assert.doesNotMatch(both.stderr, /out/);

    const second = await cli(["logs", ok, "--executor", "1"], { url: server.url });
    assert.equal(second.stdout, "second out\n");
    const errOnly = await cli(["logs", ok, "--stderr"], { url: server.url });
    assert.equal(errOnly.stdout, "");
    assert.match(errOnly.stderr, /first err/);

    const failed = await server.store.create(ECHO);
    await server.store.transition(failed, "SYSTEM_ERROR", {
      systemLogs: ["image pull failed: alpine:nope not found"],
    });
    const why = await cli(["logs", failed], { url: server.url });
    assert.equal(why.code, 0);
    assert.match(why.stderr, /SYSTEM_ERROR/);
    assert.match(why.stderr, /image pull failed: alpine:nope not found/);

    const json = await cli(["logs", ok, "--json"], { url: server.url });
    const body = JSON.parse(json.stdout);
    assert.equal(body.executors.length, 2);
    assert.equal(body.executors[0].stderr, "first err\n");

    assertUsageError(await cli(["logs", ok, "--executor", "5"], { url: server.url }), /2 executor/);
    assertUsageError(
      await cli(["logs", ok, "--stdout", "--stderr"], { url: server.url }),
      /exclude/,
    );
  },
);

Deno.test("planetary verbs exit 1 with a hint when the server is down", async () => {
  const url = `http://127.0.0.1:${closedPort()}`;
  for (
    const args of [["list"], ["get", "x"], ["submit", "--image", "a", "--", "true"], ["wait", "x"]]
  ) {
    const result = await cli(args, { url });
    assert.equal(result.code, 1, `${args[0]}: ${result.stderr}`);
    assert.match(
      result.stderr,
      new RegExp(`cannot reach the TES server at ${url}: is \`planetary serve\` running\\?`),
    );
    assert.match(result.stderr, /--server or PLANETARY_URL/);
    assertNoStackTrace(result);
  }
});

serverTest("planetary --server wins over PLANETARY_URL", async (server) => {
  const id = await server.store.create(ECHO);
  const down = `http://127.0.0.1:${closedPort()}`;
  const result = await cli([
    "get",
    id,
    "--server",
    `${server.url}/ga4gh/tes/v1`,
    "--view",
    "MINIMAL",
  ], {
    url: down,
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /QUEUED/);
  assertUsageError(await cli(["list", "--server", "localhost"], { url: down }), /--server/);
});

Deno.test("planetary client verbs against a real Planetary API", async (t) => {
  const server = await startTesTestServer();
  try {
    for (const { name, run } of SERVER_TESTS) await t.step(name, () => run(server));
  } finally {
    await server.close();
  }
});
