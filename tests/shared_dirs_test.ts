/**
 * Shared dirs of the local backend (`ExecutionOptions.sharedDirs`, `planetary serve
 * --shared-dir`): host folders that every executor sees read-write at the same path, as
 * workflow engines expect of a shared file system (Toil's file job store, Snakemake's `fs`
 * storage). Real server, real store, real host-runtime tasks.
 */
import assert from "node:assert/strict";
import { checkSharedDirs } from "../src/server/execution.ts";
import { type RunningServer, startServer } from "../src/server/start_server.ts";
import { TesClient } from "../src/client/mod.ts";
import type { TesTask } from "../src/tes/model.ts";
import { requireHostRuntime } from "./_harness/host_runtime.ts";

const ENABLED = await requireHostRuntime();

interface Fixture {
  server: RunningServer;
  client: TesClient;
  /** The shared dir (under /tmp: tasks get a private /tmp, the shared dir is mounted over it). */
  shared: string;
  /** A host folder next to it that is NOT shared. */
  outside: string;
}

/** Owner of the shared dir when the tests run as root. */
const SHARED_OWNER = 4242;

async function withServer(fn: (fixture: Fixture) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "planetary-shared-dirs-" });
  const shared = `${root}/shared`;
  const outside = `${root}/outside`;
  await Deno.mkdir(shared);
  await Deno.mkdir(outside);
  // The shared dir belongs to a user of its own: executors run as its owner by default.
  if (Deno.uid() === 0) await Deno.chown(shared, SHARED_OWNER, SHARED_OWNER);
  await Deno.chmod(root, 0o755);
  // Writable by anyone, so that only the host runtime's copy-on-write keeps a task out of it.
  await Deno.chmod(outside, 0o777);
  const server = await startServer({
    port: 0,
    dataDir: `${root}/data`,
    announce: false,
    api: { logRequests: false },
    execution: { sharedDirs: [shared], fileAllowList: [], pollIntervalMs: 100, runtime: "host" },
  });
  try {
    await fn({ server, client: new TesClient(server.url, { retries: 0 }), shared, outside });
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
  }
}

async function run(client: TesClient, task: TesTask): Promise<TesTask> {
  const id = await client.createTask(task);
  return await client.waitForTask(id, { intervalMs: 100 });
}

function stdoutOf(task: TesTask): string {
  return task.logs?.at(-1)?.logs?.map((log) => log.stdout ?? "").join("") ?? "";
}

function describe(task: TesTask): string {
  return JSON.stringify({ state: task.state, logs: task.logs }, null, 1);
}

Deno.test({
  name: "a shared dir: one task writes <shared>/x at the host path, the next one reads it",
  ignore: !ENABLED,
  async fn() {
    await withServer(async ({ client, shared, outside }) => {
      await Deno.writeTextFile(`${outside}/secret`, "not for tasks\n");
      const writer = await run(client, {
        name: "writer",
        // An input at /tmp makes /tmp the task's data volume: the shared dir, under /tmp,
        // must still be mounted over it.
        inputs: [{ path: "/tmp/in.txt", content: "from the input\n" }],
        executors: [{
          image: "debian:12",
          command: [
            "/bin/sh",
            "-c",
            'echo hello > "$1/x" && cat /tmp/in.txt > "$1/y" && ' +
            '{ { mkdir -p "$2" && echo leak > "$2/z"; } 2>/dev/null || true; }',
            "sh",
            shared,
            outside,
          ],
        }],
      });
      assert.equal(writer.state, "COMPLETE", describe(writer));
      assert.equal(await Deno.readTextFile(`${shared}/x`), "hello\n");
      assert.equal(await Deno.readTextFile(`${shared}/y`), "from the input\n");
      if (Deno.uid() === 0) {
        assert.equal((await Deno.stat(`${shared}/x`)).uid, SHARED_OWNER, "written as its owner");
      }
      // Outside the shared dirs a task writes into its own copy, never into the host's folder.
      await assert.rejects(Deno.stat(`${outside}/z`), Deno.errors.NotFound);

      const reader = await run(client, {
        name: "reader",
        executors: [{
          image: "debian:12",
          command: [
            "/bin/sh",
            "-c",
            'cat "$1/x"; if [ -e "$2/secret" ]; then echo visible; else echo hidden; fi',
            "sh",
            shared,
            outside,
          ],
        }],
      });
      assert.equal(reader.state, "COMPLETE", describe(reader));
      assert.equal(stdoutOf(reader), "hello\nhidden\n");
    });
  },
});

Deno.test({
  name: "a shared dir: an input that names the same folder (Toil's job store) is used in place",
  ignore: !ENABLED,
  async fn() {
    await withServer(async ({ client, shared }) => {
      const store = `${shared}/jobstore`;
      await Deno.mkdir(store);
      await Deno.writeTextFile(`${store}/log`, "client\n");
      // Made by the workflow engine, which runs as the shared dir's owner.
      if (Deno.uid() === 0) {
        for (const path of [store, `${store}/log`]) {
          await Deno.chown(path, SHARED_OWNER, SHARED_OWNER);
        }
      }
      // What toil-batch-system-tes sends for a file job store: a DIRECTORY input
      // `file://<store>` at path `<store>`. Copied into the task, the write would be lost.
      const task = await run(client, {
        inputs: [{ url: `file://${store}`, path: store, type: "DIRECTORY" }],
        executors: [{
          image: "quay.io/ucsc_cgl/toil:7.0.0",
          command: ["/bin/sh", "-c", 'echo task >> "$1/log"', "sh", store],
        }],
      });
      assert.equal(task.state, "COMPLETE", describe(task));
      assert.equal(await Deno.readTextFile(`${store}/log`), "client\ntask\n");
    });
  },
});

Deno.test("checkSharedDirs() refuses folders that cover or lie inside Planetary's own", async () => {
  const root = await Deno.makeTempDir({ prefix: "planetary-shared-check-" });
  try {
    const workDir = `${root}/data/work`;
    await Deno.mkdir(workDir, { recursive: true });
    await Deno.mkdir(`${root}/ok`);
    assert.deepEqual(checkSharedDirs([`${root}/ok/`, `${root}/ok`], workDir), [
      Deno.realPathSync(`${root}/ok`),
    ]);
    const source = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
    const home = Deno.env.get("HOME") ?? "/root";
    const denoDir = Deno.env.get("DENO_DIR") ?? `${home}/.cache/deno`;
    const refused: [string, RegExp][] = [
      ["/", /root folder/],
      ["relative/dir", /must be an absolute path/],
      [`${root}/missing`, /not an existing directory.*create it first/],
      [root, /covers the local backend's work folder/],
      [workDir, /work folder/],
      [source, /Planetary's source tree/],
      [`${source}/src`, /lies inside Planetary's source tree/],
    ];
    if (await Deno.stat(denoDir).then(() => true, () => false)) {
      refused.push([denoDir, /the Deno cache/]);
    }
    for (const [dir, message] of refused) {
      assert.throws(() => checkSharedDirs([dir], workDir), message, dir);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
