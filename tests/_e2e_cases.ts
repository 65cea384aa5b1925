/**
 * The end-to-end cases of task execution, written against the TES API only (a
 * {@linkcode TesClient}) and the files a task reads and writes through `file://` storage, so
 * that the same list runs against any backend: `planetary serve` on the local backend
 * (tests/e2e_test.ts) and, later, a Kubernetes backend.
 *
 * Every case asserts the FULL task as the server returns it and the files on disk. Cases that
 * need a particular server (one task slot, a restart) say so in `needs`; the runner gives them
 * their own server.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { TesClient } from "../src/client/mod.ts";
import type { TesState, TesTask } from "../src/tes/model.ts";
import { isTerminal } from "../src/tes/state.ts";
import { findProcesses, processAlive, type ServeHarness } from "./_harness/serve.ts";

/** What a case gets from its runner. */
export interface E2eContext {
  /** A client of the server (read it again after `restart`: the server may move). */
  readonly client: TesClient;
  /** The host folder that `file://` inputs and outputs may use. */
  readonly storageDir: string;
  /**
   * The `file://` URL of a path inside {@linkcode E2eContext.storageDir}.
   *
   * @param relativePath Path relative to the storage folder.
   */
  fileUrl(relativePath: string): string;
  /** Longest time a quick task may take from submission to its end, in ms. */
  readonly taskDeadlineMs: number;
  /**
   * Stops the server with `signal` and starts it again on the same database (only for cases
   * with `needs.restart`).
   */
  restart?: (signal: "SIGTERM" | "SIGKILL") => Promise<void>;
}

/**
 * The context of the end-to-end cases on a `planetary serve` subprocess.
 *
 * @param server The server.
 * @param taskDeadlineMs Longest time a quick task may take, in ms.
 * @returns The context (`restart` stops and starts the same server).
 */
export function serveE2eContext(server: ServeHarness, taskDeadlineMs: number): E2eContext {
  return {
    get client() {
      return server.client;
    },
    storageDir: server.storageDir,
    fileUrl: (relativePath) => `file://${server.storageDir}/${relativePath}`,
    taskDeadlineMs,
    async restart(signal) {
      await server.stop(signal);
      await server.restart();
    },
  };
}

/**
 * Runs `cases` as concurrent steps of `t` against one context.
 *
 * @param t The test.
 * @param cases The cases.
 * @param ctx Their context.
 * @returns Whether every case passed.
 */
export async function runE2eSteps(
  t: Deno.TestContext,
  cases: readonly E2eCase[],
  ctx: E2eContext,
): Promise<boolean> {
  const results = await Promise.all(cases.map((c) =>
    t.step({
      name: c.name,
      fn: () => c.run(ctx),
      sanitizeOps: false,
      sanitizeResources: false,
      sanitizeExit: false,
    })
  ));
  return !results.includes(false);
}

/** One end-to-end case. */
export interface E2eCase {
  /** Test name: what the server does. */
  name: string;
  /**
   * What the case needs of its server: `maxTasks: 1` (exactly one task runs at a time),
   * `restart` (a server of its own that `ctx.restart` stops and starts).
   */
  needs?: { maxTasks?: 1; restart?: boolean };
  /** Runs the case; throws on failure. */
  run(ctx: E2eContext): Promise<void>;
}

const TASK_KEYS = new Set([
  "id",
  "state",
  "name",
  "description",
  "inputs",
  "outputs",
  "resources",
  "executors",
  "volumes",
  "tags",
  "logs",
  "creation_time",
]);
const TASK_LOG_KEYS = new Set([
  "logs",
  "metadata",
  "start_time",
  "end_time",
  "outputs",
  "system_logs",
]);
const EXECUTOR_LOG_KEYS = new Set(["start_time", "end_time", "stdout", "stderr", "exit_code"]);
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

function assertKeys(value: object, allowed: Set<string>, what: string): void {
  for (const key of Object.keys(value)) {
    assert.ok(allowed.has(key), `${what} has a key outside the TES spec: ${key}`);
  }
}

function assertTime(value: unknown, what: string): void {
  assert.equal(typeof value, "string", `${what} is missing`);
  assert.match(value as string, RFC3339, `${what} is not RFC 3339`);
}

/**
 * Checks the shape every FULL task of a finished run must have: only spec keys, one task log
 * with `logs` and `outputs` arrays, every executor log with an integer `exit_code`, sizes as
 * decimal strings, RFC 3339 times.
 */
function assertFullTaskShape(task: TesTask, id: string): void {
  assertKeys(task, TASK_KEYS, "task");
  assert.equal(task.id, id);
  assertTime(task.creation_time, "creation_time");
  // A task canceled before it was ever picked up has no run, hence no task log.
  if (task.logs === undefined && task.state === "CANCELED") return;
  assert.ok(Array.isArray(task.logs) && task.logs.length >= 1, "task has no logs");
  for (const log of task.logs) {
    assertKeys(log, TASK_LOG_KEYS, "task log");
    assert.ok(Array.isArray(log.logs), "task log has no logs array");
    assert.ok(Array.isArray(log.outputs), "task log has no outputs array");
    for (const executorLog of log.logs) {
      assertKeys(executorLog, EXECUTOR_LOG_KEYS, "executor log");
      assert.ok(Number.isInteger(executorLog.exit_code), "executor log without exit_code");
      if (executorLog.start_time !== undefined) assertTime(executorLog.start_time, "start_time");
      if (executorLog.end_time !== undefined) assertTime(executorLog.end_time, "end_time");
    }
    for (const output of log.outputs) {
      assert.match(output.size_bytes, /^\d+$/, "size_bytes is not a decimal string");
      assert.equal(typeof output.url, "string");
      assert.equal(typeof output.path, "string");
    }
  }
}

/** The single task log of a task. */
function taskLog(task: TesTask): NonNullable<TesTask["logs"]>[number] {
  const log = task.logs?.[0];
  assert.ok(log, `task ${task.id} has no task log`);
  return log;
}

/**
 * Submits a task, waits for its end, and returns it (FULL) after the shape checks. The deadline
 * (a hang guard, never a timing check) grows with the task's containers: they run one after
 * another, and on a busy machine each start takes seconds (a real kubelet starts the next init
 * container only after its next pod sync).
 */
async function runTask(ctx: E2eContext, task: TesTask): Promise<TesTask> {
  const id = await ctx.client.createTask(task);
  const containers = task.executors.length + 2; // the inputs and outputs transporters
  return await waitDone(ctx, id, ctx.taskDeadlineMs * Math.max(1, Math.ceil(containers / 6)));
}

/** Waits (poll, deadline) for a task to end and returns it FULL, after the shape checks. */
async function waitDone(ctx: E2eContext, id: string, deadlineMs = ctx.taskDeadlineMs) {
  const done = await ctx.client.waitForTask(id, {
    intervalMs: 100,
    signal: AbortSignal.timeout(deadlineMs),
  });
  assertFullTaskShape(done, id);
  return done;
}

/** Polls (deadline) until `check` returns a value other than undefined. */
async function poll<T>(
  what: string,
  check: () => Promise<T | undefined>,
  deadlineMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Polls (deadline) until the task reaches one of `states`; returns the state seen. */
function waitState(ctx: E2eContext, id: string, states: TesState[]): Promise<TesState> {
  return poll(`task ${id} to reach ${states.join("|")}`, async () => {
    const state = (await ctx.client.getTask(id, "MINIMAL")).state ?? "UNKNOWN";
    if (states.includes(state)) return state;
    if (isTerminal(state)) throw new Error(`task ${id} ended ${state}, expected ${states}`);
    return undefined;
  }, ctx.taskDeadlineMs);
}

async function readStorage(ctx: E2eContext, relativePath: string): Promise<string> {
  return await Deno.readTextFile(`${ctx.storageDir}/${relativePath}`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function writeStorage(ctx: E2eContext, relativePath: string, text: string): Promise<void> {
  const path = `${ctx.storageDir}/${relativePath}`;
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, text);
}

function sortedOutputs(task: TesTask): { url: string; path: string; size_bytes: string }[] {
  return [...taskLog(task).outputs].sort((a, b) => (a.url < b.url ? -1 : 1));
}

/** A unique name for per-case folders. */
function unique(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

const ALPINE = "alpine:3.20";

/** The cases. */
export const E2E_CASES: readonly E2eCase[] = [
  {
    name: "a single executor's stdout reaches logs[0].logs[0] and the task is COMPLETE",
    async run(ctx) {
      const before = Date.now();
      const task = await runTask(ctx, {
        name: "e2e single",
        executors: [{ image: ALPINE, command: ["echo", "hello from planetary"] }],
      });
      assert.equal(task.state, "COMPLETE", JSON.stringify(task));
      assert.equal(task.name, "e2e single");
      assert.deepEqual(task.executors, [
        { image: ALPINE, command: ["echo", "hello from planetary"] },
      ]);
      const log = taskLog(task);
      assert.equal(log.logs.length, 1);
      const executorLog = log.logs[0]!;
      assert.equal(executorLog.exit_code, 0);
      assert.equal(executorLog.stdout, "hello from planetary\n");
      assert.equal(executorLog.stderr ?? "", "");
      assertTime(log.start_time, "logs[0].start_time");
      assertTime(log.end_time, "logs[0].end_time");
      assertTime(executorLog.start_time, "executor start_time");
      assertTime(executorLog.end_time, "executor end_time");
      const start = Date.parse(log.start_time!);
      const end = Date.parse(log.end_time!);
      assert.ok(start <= end, "start_time after end_time");
      assert.ok(start >= before - 5_000, "start_time before the task was submitted");
      assert.ok(Date.parse(executorLog.start_time!) <= Date.parse(executorLog.end_time!));
      assert.deepEqual(log.outputs, []);
    },
  },
  {
    name: "executor 2 reads what executor 1 wrote in a shared volume",
    async run(ctx) {
      const task = await runTask(ctx, {
        volumes: ["/shared"],
        executors: [
          { image: ALPINE, command: ["sh", "-c", "echo first > /shared/note; echo one"] },
          { image: ALPINE, command: ["sh", "-c", "cat /shared/note; echo two >&2"] },
        ],
      });
      assert.equal(task.state, "COMPLETE", JSON.stringify(task));
      const logs = taskLog(task).logs;
      assert.deepEqual(
        logs.map((l) => [l.exit_code, l.stdout, l.stderr ?? ""]),
        [[0, "one\n", ""], [0, "first\n", "two\n"]],
      );
      assert.ok(Date.parse(logs[0]!.end_time!) <= Date.parse(logs[1]!.start_time!));
    },
  },
  {
    name: "stdin comes from an input, stdout/stderr paths are uploaded, and kept apart",
    async run(ctx) {
      const dir = unique("stdio");
      await writeStorage(ctx, `${dir}/in.txt`, "shout this\nand this\n");
      const task = await runTask(ctx, {
        inputs: [{ url: ctx.fileUrl(`${dir}/in.txt`), path: "/in/stdin.txt" }],
        outputs: [
          { url: ctx.fileUrl(`${dir}/out/stdout.txt`), path: "/io/stdout.txt" },
          { url: ctx.fileUrl(`${dir}/out/stderr.txt`), path: "/io/stderr.txt" },
        ],
        executors: [{
          image: ALPINE,
          command: ["sh", "-c", "tr a-z A-Z; echo to-stderr >&2"],
          stdin: "/in/stdin.txt",
          stdout: "/io/stdout.txt",
          stderr: "/io/stderr.txt",
        }],
      });
      assert.equal(task.state, "COMPLETE", JSON.stringify(task));
      const executorLog = taskLog(task).logs[0]!;
      assert.equal(executorLog.stdout, "SHOUT THIS\nAND THIS\n");
      assert.equal(executorLog.stderr, "to-stderr\n");
      assert.equal(await readStorage(ctx, `${dir}/out/stdout.txt`), "SHOUT THIS\nAND THIS\n");
      assert.equal(await readStorage(ctx, `${dir}/out/stderr.txt`), "to-stderr\n");
      assert.deepEqual(sortedOutputs(task), [
        { url: ctx.fileUrl(`${dir}/out/stderr.txt`), path: "/io/stderr.txt", size_bytes: "10" },
        { url: ctx.fileUrl(`${dir}/out/stdout.txt`), path: "/io/stdout.txt", size_bytes: "20" },
      ]);
    },
  },
  {
    name: "env values, argv and workdir reach the program literally",
    async run(ctx) {
      const tricky = {
        QUOTES: `it's "quoted"`,
        SUBST: "$(echo injected) `date` ${HOME} $HOME $(HOME)",
        SPACES: "  two  spaces  ",
        NEWLINES: "line1\nline2\n",
        BACKSLASH: "a\\nb\\",
      };
      const task = await runTask(ctx, {
        executors: [{
          image: ALPINE,
          command: [
            "sh",
            "-c",
            'for v in QUOTES SUBST SPACES NEWLINES BACKSLASH; do eval "printf \'%s|\' \\"\\$$v\\""; done; pwd; printf "%s|" "$@"',
            "argv0",
            "$(echo no)",
            "a b",
            "'x'",
            "$(HOME)",
          ],
          env: tricky,
          workdir: "/work dir/a'b",
        }],
      });
      assert.equal(task.state, "COMPLETE", JSON.stringify(task));
      const executorLog = taskLog(task).logs[0]!;
      const expected = Object.values(tricky).map((v) => `${v}|`).join("") +
        "/work dir/a'b\n" + "$(echo no)|a b|'x'|$(HOME)|";
      assert.equal(executorLog.stdout, expected);
      assert.deepEqual(task.executors[0]!.env, tricky);
    },
  },
  {
    name: "ignore_error lets the next executor run and the task is COMPLETE",
    async run(ctx) {
      const task = await runTask(ctx, {
        executors: [
          { image: ALPINE, command: ["sh", "-c", "echo failing >&2; exit 1"], ignore_error: true },
          { image: ALPINE, command: ["echo", "still ran"] },
        ],
      });
      assert.equal(task.state, "COMPLETE", JSON.stringify(task));
      assert.deepEqual(
        taskLog(task).logs.map((l) => [l.exit_code, l.stdout ?? "", l.stderr ?? ""]),
        [[1, "", "failing\n"], [0, "still ran\n", ""]],
      );
    },
  },
  {
    name: "a failing executor gives EXECUTOR_ERROR, skips later ones, and still uploads outputs",
    async run(ctx) {
      const dir = unique("fail");
      const task = await runTask(ctx, {
        outputs: [
          { url: ctx.fileUrl(`${dir}/command.err`), path: "/work/.command.err" },
          { url: ctx.fileUrl(`${dir}/never`), path: "/work/never" },
        ],
        executors: [
          {
            image: ALPINE,
            command: ["sh", "-c", "echo partial; echo boom | tee /work/.command.err >&2; exit 3"],
          },
          { image: ALPINE, command: ["sh", "-c", "echo x > /work/never"] },
        ],
      });
      assert.equal(task.state, "EXECUTOR_ERROR", JSON.stringify(task));
      const log = taskLog(task);
      assert.equal(log.logs.length, 1, "the skipped executor has a log entry");
      assert.equal(log.logs[0]!.exit_code, 3);
      assert.equal(log.logs[0]!.stdout, "partial\n");
      assert.equal(log.logs[0]!.stderr, "boom\n");
      assert.equal(await readStorage(ctx, `${dir}/command.err`), "boom\n");
      assert.equal(await exists(`${ctx.storageDir}/${dir}/never`), false);
      assert.deepEqual(log.outputs, [
        { url: ctx.fileUrl(`${dir}/command.err`), path: "/work/.command.err", size_bytes: "5" },
      ]);
      const systemLogs = (log.system_logs ?? []).join("\n");
      assert.match(systemLogs, /executor 0 exited with code 3/);
    },
  },
  {
    name: "a missing file:// input gives SYSTEM_ERROR naming the input",
    async run(ctx) {
      const dir = unique("missing");
      const url = ctx.fileUrl(`${dir}/does-not-exist.txt`);
      const task = await runTask(ctx, {
        inputs: [{ url, path: "/in/needed.txt" }],
        executors: [{ image: ALPINE, command: ["cat", "/in/needed.txt"] }],
      });
      assert.equal(task.state, "SYSTEM_ERROR", JSON.stringify(task));
      const log = taskLog(task);
      assert.deepEqual(log.logs, [], "an executor ran although its input was missing");
      const systemLogs = (log.system_logs ?? []).join("\n");
      assert.ok(systemLogs.includes("does-not-exist.txt"), systemLogs);
      assert.ok(systemLogs.includes("/in/needed.txt"), systemLogs);
    },
  },
  {
    name: "DIRECTORY inputs and outputs carry nested files; inline content is written",
    async run(ctx) {
      const dir = unique("dirs");
      await writeStorage(ctx, `${dir}/in/a.txt`, "A");
      await writeStorage(ctx, `${dir}/in/sub/b.txt`, "BB");
      await writeStorage(ctx, `${dir}/in/sub/deeper/c.txt`, "CCC");
      const task = await runTask(ctx, {
        inputs: [
          { url: ctx.fileUrl(`${dir}/in`), path: "/data/in", type: "DIRECTORY" },
          { path: "/data/inline.txt", content: "inline ✓\n" },
        ],
        outputs: [{ url: ctx.fileUrl(`${dir}/out`), path: "/data/out", type: "DIRECTORY" }],
        executors: [{
          image: ALPINE,
          command: [
            "sh",
            "-c",
            "cd /data/in && find . -type f | sort > /data/listing && mkdir -p /data/out/x/y && " +
            "cat a.txt sub/b.txt sub/deeper/c.txt > /data/out/x/y/all.txt && " +
            "cp /data/listing /data/out/listing && cp /data/inline.txt /data/out/inline.txt",
          ],
        }],
      });
      assert.equal(task.state, "COMPLETE", JSON.stringify(task));
      assert.equal(
        await readStorage(ctx, `${dir}/out/listing`),
        "./a.txt\n./sub/b.txt\n./sub/deeper/c.txt\n",
      );
      assert.equal(await readStorage(ctx, `${dir}/out/x/y/all.txt`), "ABBCCC");
      assert.equal(await readStorage(ctx, `${dir}/out/inline.txt`), "inline ✓\n");
      assert.deepEqual(sortedOutputs(task), [
        {
          url: ctx.fileUrl(`${dir}/out/inline.txt`),
          path: "/data/out/inline.txt",
          size_bytes: String(new TextEncoder().encode("inline ✓\n").length),
        },
        { url: ctx.fileUrl(`${dir}/out/listing`), path: "/data/out/listing", size_bytes: "39" },
        {
          url: ctx.fileUrl(`${dir}/out/x/y/all.txt`),
          path: "/data/out/x/y/all.txt",
          size_bytes: "6",
        },
      ]);
    },
  },
  {
    name: "wildcard outputs upload only the matches, at url + match minus path_prefix",
    async run(ctx) {
      const dir = unique("wild");
      const task = await runTask(ctx, {
        outputs: [{
          url: ctx.fileUrl(`${dir}/results`),
          path: "/results/run*/part-*.txt",
          path_prefix: "/results/",
        }],
        executors: [{
          image: ALPINE,
          command: [
            "sh",
            "-c",
            "mkdir -p /results/run1 /results/run2 /results/other && " +
            "echo 1 > /results/run1/part-1.txt && echo 22 > /results/run2/part-2.txt && " +
            "echo no > /results/run1/part-1.log && echo no > /results/other/part-3.txt",
          ],
        }],
      });
      assert.equal(task.state, "COMPLETE", JSON.stringify(task));
      assert.deepEqual(sortedOutputs(task), [
        {
          url: ctx.fileUrl(`${dir}/results/run1/part-1.txt`),
          path: "/results/run1/part-1.txt",
          size_bytes: "2",
        },
        {
          url: ctx.fileUrl(`${dir}/results/run2/part-2.txt`),
          path: "/results/run2/part-2.txt",
          size_bytes: "3",
        },
      ]);
      assert.equal(await readStorage(ctx, `${dir}/results/run1/part-1.txt`), "1\n");
      assert.equal(await readStorage(ctx, `${dir}/results/run2/part-2.txt`), "22\n");
      const uploaded: string[] = [];
      for await (const entry of Deno.readDir(`${ctx.storageDir}/${dir}/results`)) {
        uploaded.push(entry.name);
      }
      assert.deepEqual(uploaded.sort(), ["run1", "run2"]);
      assert.equal(await exists(`${ctx.storageDir}/${dir}/results/run1/part-1.log`), false);
    },
  },
  {
    name: "cancel while downloading an input ends CANCELED and the download stops",
    async run(ctx) {
      const requested = Promise.withResolvers<void>();
      let disconnected = false;
      let stalled: ReadableStreamDefaultController<Uint8Array> | undefined;
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
        requested.resolve();
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            stalled = controller;
            controller.enqueue(new TextEncoder().encode("the first bytes, then nothing"));
          },
          cancel() {
            disconnected = true;
          },
        });
        return new Response(body, { headers: { "content-length": "1000000" } });
      });
      try {
        const id = await ctx.client.createTask({
          inputs: [{ url: `http://127.0.0.1:${server.addr.port}/big.bin`, path: "/in/big.bin" }],
          executors: [{ image: ALPINE, command: ["echo", "must not run"] }],
        });
        await requested.promise;
        assert.equal(await waitState(ctx, id, ["INITIALIZING"]), "INITIALIZING");
        await ctx.client.cancelTask(id);
        const task = await waitDone(ctx, id);
        assert.equal(task.state, "CANCELED", JSON.stringify(task));
        assert.deepEqual(taskLog(task).logs, []);
        await poll(
          "the stalled download to be dropped",
          () => Promise.resolve(disconnected ? true : undefined),
          20_000,
        );
      } finally {
        try {
          stalled?.close();
        } catch {
          // already closed
        }
        await server.shutdown();
      }
    },
  },
  {
    name: "cancel while running ends CANCELED and kills every process of the task",
    async run(ctx) {
      const marker = crypto.randomUUID();
      const dir = unique("cancel-run");
      const id = await ctx.client.createTask({
        outputs: [{ url: ctx.fileUrl(`${dir}/after`), path: "/out/after" }],
        executors: [
          {
            image: ALPINE,
            command: ["sh", "-c", "sleep 300 & echo $! > /out/pid; wait; echo late > /out/after"],
            env: { E2E_MARKER: marker },
          },
          { image: ALPINE, command: ["sh", "-c", "echo never > /out/after"] },
        ],
      });
      const pids = await poll("the task's processes to run", async () => {
        const found = await findProcesses((p) => p.environ.includes(`E2E_MARKER=${marker}`));
        return found.length >= 2 ? found : undefined;
      }, ctx.taskDeadlineMs);
      assert.equal((await ctx.client.getTask(id)).state, "RUNNING");
      await ctx.client.cancelTask(id);
      const task = await waitDone(ctx, id);
      assert.equal(task.state, "CANCELED", JSON.stringify(task));
      const alive = pids.filter((pid) => processAlive(pid));
      assert.deepEqual(alive, [], `processes of a CANCELED task still run: ${alive}`);
      assert.equal(await exists(`${ctx.storageDir}/${dir}/after`), false);
    },
  },
  {
    name: "cancel while QUEUED ends CANCELED and the task never runs",
    needs: { maxTasks: 1 },
    async run(ctx) {
      const dir = unique("cancel-queued");
      await Deno.mkdir(`${ctx.storageDir}/${dir}`, { recursive: true });
      const blocker = await ctx.client.createTask({
        executors: [{ image: ALPINE, command: ["sleep", "300"] }],
      });
      await waitState(ctx, blocker, ["RUNNING"]);
      const queued = await ctx.client.createTask({
        outputs: [{ url: ctx.fileUrl(`${dir}/marker`), path: "/out/marker" }],
        executors: [{ image: ALPINE, command: ["sh", "-c", "echo ran > /out/marker"] }],
      });
      assert.equal((await ctx.client.getTask(queued)).state, "QUEUED");
      await ctx.client.cancelTask(queued);
      const task = await waitDone(ctx, queued);
      assert.equal(task.state, "CANCELED", JSON.stringify(task));
      await ctx.client.cancelTask(blocker);
      const blocked = await waitDone(ctx, blocker);
      assert.equal(blocked.state, "CANCELED");
      // The slot is free now: a task submitted after both ends runs, and the canceled one
      // still has not (its marker would have been uploaded by now).
      const after = await runTask(ctx, {
        executors: [{ image: ALPINE, command: ["echo", "ok"] }],
      });
      assert.equal(after.state, "COMPLETE");
      assert.equal(await exists(`${ctx.storageDir}/${dir}/marker`), false);
      assert.equal((await ctx.client.getTask(queued)).state, "CANCELED");
      assert.deepEqual(task.logs?.flatMap((log) => log.logs) ?? [], []);
    },
  },
  {
    name: "a task with 20 executors runs them all in order",
    async run(ctx) {
      const executors = Array.from({ length: 20 }, (_, i) => ({
        image: ALPINE,
        command: ["sh", "-c", `echo ${i} >> /shared/order; echo ${i}`],
      }));
      const dir = unique("many-exec");
      const task = await runTask(ctx, {
        volumes: ["/shared"],
        outputs: [{ url: ctx.fileUrl(`${dir}/order`), path: "/shared/order" }],
        executors,
      });
      assert.equal(task.state, "COMPLETE", JSON.stringify(task));
      const logs = taskLog(task).logs;
      assert.deepEqual(
        logs.map((l) => [l.exit_code, l.stdout]),
        executors.map((_, i) => [0, `${i}\n`]),
      );
      assert.equal(
        await readStorage(ctx, `${dir}/order`),
        executors.map((_, i) => `${i}\n`).join(""),
      );
    },
  },
  {
    name: "20 tasks submitted at once all COMPLETE with their own results",
    async run(ctx) {
      const dir = unique("burst");
      const ids = await Promise.all(Array.from({ length: 20 }, (_, i) =>
        ctx.client.createTask({
          name: `burst-${i}`,
          inputs: [{ path: "/in/n", content: String(i) }],
          outputs: [{ url: ctx.fileUrl(`${dir}/${i}.txt`), path: "/out/n" }],
          executors: [{ image: ALPINE, command: ["sh", "-c", "cat /in/n > /out/n; cat /in/n"] }],
        })));
      assert.equal(new Set(ids).size, 20);
      const tasks = await Promise.all(ids.map((id) => waitDone(ctx, id, ctx.taskDeadlineMs * 3)));
      for (const [i, task] of tasks.entries()) {
        assert.equal(task.state, "COMPLETE", JSON.stringify(task));
        assert.equal(task.name, `burst-${i}`);
        assert.equal(taskLog(task).logs[0]!.stdout, String(i));
        assert.equal(await readStorage(ctx, `${dir}/${i}.txt`), String(i));
      }
    },
  },
  ...restartCases(),
];

function restartCases(): E2eCase[] {
  const live: TesState[] = ["QUEUED", "INITIALIZING", "RUNNING", "PAUSED", "CANCELING"];
  const scenario = (signal: "SIGTERM" | "SIGKILL"): E2eCase => ({
    name: `a ${signal} restart of the server leaves every task in a truthful final state`,
    needs: { restart: true },
    async run(ctx) {
      const restart = ctx.restart;
      assert.ok(restart, "this case needs ctx.restart");
      const dir = unique(`restart-${signal}`);
      const ids: string[] = [];
      for (const seconds of [5, 10, 20]) {
        ids.push(
          await ctx.client.createTask({
            name: `sleep-${seconds}`,
            outputs: [{ url: ctx.fileUrl(`${dir}/${seconds}`), path: "/out/done" }],
            executors: [{
              image: ALPINE,
              command: ["sh", "-c", `sleep ${seconds}; echo done > /out/done`],
            }],
          }),
        );
      }
      // Seen RUNNING, or already COMPLETE on a busy machine (the waits run one after another):
      // the restart still comes while the longer ones run, and a COMPLETE task is checked below.
      for (const id of ids) await waitState(ctx, id, ["RUNNING", "COMPLETE"]);
      await restart(signal);
      const tasks: TesTask[] = [];
      for (const id of ids) {
        // Leases of a killed server expire before another orchestrator adopts the task.
        tasks.push(await waitDone(ctx, id, ctx.taskDeadlineMs + 60_000));
      }
      for (const [i, task] of tasks.entries()) {
        assert.ok(!live.includes(task.state!), `task ${task.id} stays ${task.state}`);
        const log = taskLog(task);
        const uploaded = await exists(`${ctx.storageDir}/${dir}/${[5, 10, 20][i]}`);
        if (task.state === "COMPLETE") {
          assert.equal(log.logs[0]?.exit_code, 0);
          assert.ok(uploaded, "a COMPLETE task whose output is missing");
        } else {
          assert.equal(task.state, "SYSTEM_ERROR", JSON.stringify(task));
          assert.ok((log.system_logs ?? []).length > 0, "SYSTEM_ERROR without a reason");
        }
      }
      const after = await runTask(ctx, {
        executors: [{ image: ALPINE, command: ["echo", "after restart"] }],
      });
      assert.equal(after.state, "COMPLETE", JSON.stringify(after));
      assert.equal(taskLog(after).logs[0]!.stdout, "after restart\n");
      // Nothing of the old tasks may change after they are final (no late uploads).
      for (const [i, task] of tasks.entries()) {
        if (task.state === "COMPLETE") continue;
        assert.equal(
          await exists(`${ctx.storageDir}/${dir}/${[5, 10, 20][i]}`),
          false,
          `task ${task.id} is ${task.state} but uploaded its output`,
        );
      }
    },
  });
  return [scenario("SIGTERM"), scenario("SIGKILL")];
}
