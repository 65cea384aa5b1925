/**
 * Isolation of the local backend's host runtime (issue 11, "Isolation"): no task can reach
 * what it does not own. Real server, real store, real host-runtime tasks, real files and
 * symbolic links; each test reproduces a finding of the security review.
 */
import assert from "node:assert/strict";
import { SERVE_PERMISSIONS } from "../cli/commands/serve.ts";
import { hostTransporterSetup } from "../src/server/execution.ts";
import { type RunningServer, startServer } from "../src/server/start_server.ts";
import { TesClient } from "../src/client/mod.ts";
import type { TesTask } from "../src/tes/model.ts";
import type { TransferSpec } from "../src/pod/layout.ts";
import { uploadOutputs } from "../transporter/outputs.ts";
import { downloadInputs } from "../transporter/inputs.ts";
import { LocalBackend } from "../src/orchestrator/backends/local/local_backend.ts";
import { requireHostRuntime } from "./_harness/host_runtime.ts";

const REPO = new URL("../", import.meta.url).pathname;
const ENABLED = await requireHostRuntime();

interface Fixture {
  server: RunningServer;
  client: TesClient;
  /** Allow-listed `file://` folder. */
  files: string;
  /** A host folder that no task owns. */
  outside: string;
}

async function withServer(
  fn: (fixture: Fixture) => Promise<void>,
  // Executors as nobody (`--task-user 65534:65534`), as for tasks of people not trusted.
  taskUser: { uid: number; gid: number } | undefined = { uid: 65534, gid: 65534 },
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "planetary-isolation-" });
  const files = `${root}/files`;
  const outside = `${root}/outside`;
  await Deno.mkdir(files);
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/keep`, "host file\n");
  const server = await startServer({
    port: 0,
    dataDir: `${root}/data`,
    announce: false,
    api: { logRequests: false },
    execution: {
      fileAllowList: [files],
      pollIntervalMs: 100,
      runtime: "host",
      ...(taskUser ? { taskUser } : {}),
    },
  });
  try {
    const backend = server.execution?.backend;
    assert.ok(backend instanceof LocalBackend);
    assert.equal((await backend.runtime()).name, "host", "these tests need the host runtime");
    await fn({ server, client: new TesClient(server.url, { retries: 0 }), files, outside });
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

function hostDenoDir(): string | undefined {
  const home = Deno.env.get("HOME");
  return Deno.env.get("DENO_DIR") ?? (home ? `${home}/.cache/deno` : undefined);
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test({
  name: "host runtime: executors neither see nor write the Deno cache and the source tree, " +
    "run unprivileged, and the transporter still moves inputs and outputs",
  ignore: !ENABLED,
  async fn() {
    await withServer(async ({ client, files }) => {
      await Deno.writeTextFile(`${files}/in.txt`, "input\n");
      const marker = `poison-${crypto.randomUUID()}`;
      const task = await run(client, {
        inputs: [{ url: `file://${files}/in.txt`, path: "/in/in.txt" }],
        outputs: [{ url: `file://${files}/out.txt`, path: "/out/out.txt" }],
        executors: [{
          image: "busybox",
          command: [
            "/bin/sh",
            "-c",
            "for d in /planetary/deno /planetary/source; do\n" +
            '  if ls "$d" >/dev/null 2>&1; then echo "LISTED $d"; fi\n' +
            '  if echo x > "$d/$1" 2>/dev/null; then echo "WROTE $d"; fi\n' +
            "done\n" +
            "echo uid=$(id -u)\n" +
            "grep CapEff /proc/self/status\n" +
            "cat /in/in.txt > /out/out.txt\n",
            "sh",
            marker,
          ],
        }],
      });
      assert.equal(task.state, "COMPLETE", describe(task));
      const out = stdoutOf(task);
      assert.doesNotMatch(out, /LISTED|WROTE/, out);
      assert.doesNotMatch(out, /uid=0\n/, out);
      assert.match(out, /uid=\d+\n/, out);
      assert.match(out, /CapEff:\s*0+\n/, out);
      assert.equal(await Deno.readTextFile(`${files}/out.txt`), "input\n");
      const denoDir = hostDenoDir();
      if (denoDir) assert.equal(await exists(`${denoDir}/${marker}`), false);
      assert.equal(await exists(`${REPO}${marker}`), false);
    });
  },
});

Deno.test({
  name: "hostTransporterSetup() shares Planetary's own folders with the transporter only, " +
    "the cache and source tree read-only",
  fn() {
    const { sharedHostPaths } = hostTransporterSetup(["/srv/files"]);
    assert.ok(sharedHostPaths.length >= 2);
    for (const entry of sharedHostPaths) {
      assert.ok(typeof entry === "object");
      assert.deepEqual(entry.containers, ["inputs", "outputs"], JSON.stringify(entry));
      if (entry.containerPath.startsWith("/planetary/host")) continue;
      assert.equal(entry.readOnly, true, JSON.stringify(entry));
    }
  },
});

Deno.test({
  name: "pod runner: a folder of the data volume replaced by a symlink to a host folder is " +
    "not mounted into the next container",
  ignore: !ENABLED,
  async fn() {
    await withServer(async ({ client, outside }) => {
      const task = await run(client, {
        volumes: ["/work"],
        executors: [
          {
            image: "busybox",
            command: [
              "/bin/sh",
              "-c",
              'rm -rf /planetary/data/fs/work && ln -s "$1" /planetary/data/fs/work',
              "sh",
              outside,
            ],
          },
          {
            image: "busybox",
            command: ["/bin/sh", "-c", "echo pwned > /work/pwned; rm -f /work/keep; ls /work"],
          },
        ],
      });
      assert.notEqual(task.state, "COMPLETE", describe(task));
      const systemLogs = (task.logs?.at(-1)?.system_logs ?? []).join("\n");
      assert.match(systemLogs, /symbolic link/, describe(task));
      assert.equal(await exists(`${outside}/pwned`), false);
      assert.equal(await Deno.readTextFile(`${outside}/keep`), "host file\n");
    });
  },
});

/** A scratch "task volume" and destination folder for the transporter's own tests. */
async function transporterFixture(): Promise<
  { root: string; volume: string; dest: string; secret: string; secretDir: string }
> {
  const root = await Deno.makeTempDir({ prefix: "planetary-isolation-transporter-" });
  const volume = `${root}/volume`;
  const dest = `${root}/dest`;
  const secretDir = `${root}/host`;
  await Deno.mkdir(volume);
  await Deno.mkdir(dest);
  await Deno.mkdir(secretDir);
  const secret = `${secretDir}/shadow`;
  await Deno.writeTextFile(secret, "root:secret\n");
  return { root, volume, dest, secret, secretDir };
}

function spec(partial: Partial<TransferSpec>): TransferSpec {
  return {
    version: 1,
    taskId: "t",
    inputs: [],
    outputs: [],
    executors: [],
    tailBytes: 0,
    ...partial,
  };
}

Deno.test("uploadOutputs() never follows a symlink out of the task's volumes", async () => {
  const { root, volume, dest, secret, secretDir } = await transporterFixture();
  try {
    await Deno.symlink(secret, `${volume}/link.txt`);
    await Deno.mkdir(`${volume}/dir`);
    await Deno.writeTextFile(`${volume}/dir/real.txt`, "mine\n");
    await Deno.symlink(secret, `${volume}/dir/leak.txt`);
    await Deno.symlink(secretDir, `${volume}/dir/hostdir`);
    await Deno.symlink("real.txt", `${volume}/dir/inside.txt`);
    await Deno.mkdir(`${volume}/w`);
    await Deno.symlink(secretDir, `${volume}/w/m1`);
    const result = await uploadOutputs(
      spec({
        outputs: [
          { url: `file://${dest}/link.txt`, path: `${volume}/link.txt`, type: "FILE" },
          { url: `file://${dest}/dir`, path: `${volume}/dir`, type: "DIRECTORY" },
          { url: `file://${dest}/w`, path: `${volume}/w/*`, type: "FILE" },
          // No task folder is `/`: a wildcard there reaches only the image (or the host).
          { url: `file://${dest}/etc`, path: `/et[c]/host*`, type: "FILE" },
        ],
      }),
      { config: { fileAllowList: [dest] }, volumePaths: [volume, `${volume}/w`] },
    );
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.outputs.map((o) => o.url).sort(), [
      `file://${dest}/dir/inside.txt`,
      `file://${dest}/dir/real.txt`,
    ]);
    assert.equal(
      result.warnings.filter((w) => /outside the task's volumes/.test(w)).length >= 4,
      true,
      result.warnings.join("\n"),
    );
    assert.equal(await exists(`${dest}/link.txt`), false);
    assert.equal(await exists(`${dest}/dir/leak.txt`), false);
    assert.equal(await exists(`${dest}/w`), false);
    assert.equal(await exists(`${dest}/etc`), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("downloadInputs() never writes a DIRECTORY input through a symlink", async () => {
  const { root, volume, secretDir } = await transporterFixture();
  try {
    const source = `${root}/source`;
    await Deno.mkdir(`${source}/sub`, { recursive: true });
    await Deno.writeTextFile(`${source}/sub/f.txt`, "data\n");
    await Deno.mkdir(`${volume}/in`);
    await Deno.symlink(secretDir, `${volume}/in/sub`);
    await assert.rejects(
      downloadInputs(
        spec({ inputs: [{ url: `file://${source}`, path: `${volume}/in`, type: "DIRECTORY" }] }),
        { config: { fileAllowList: [source] } },
      ),
      /symbolic link/,
    );
    assert.equal(await exists(`${secretDir}/f.txt`), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("with authentication, file:// folders are per user: bob cannot name alice's", async () => {
  const root = await Deno.makeTempDir({ prefix: "planetary-isolation-api-" });
  const server = await startServer({
    port: 0,
    dataDir: `${root}/data`,
    announce: false,
    execution: false,
    api: {
      logRequests: false,
      authTokens: { "tok-alice": "alice", "tok-bob": "bob" },
      fileAllowList: [`${root}/files`],
    },
  });
  try {
    const submit = async (token: string, owner: string): Promise<number> => {
      const response = await fetch(`${server.url}/ga4gh/tes/v1/tasks`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({
          inputs: [{ url: `file://${root}/files/${owner}/in.txt`, path: "/in/in.txt" }],
          executors: [{ image: "busybox", command: ["true"] }],
        }),
      });
      await response.body?.cancel();
      return response.status;
    };
    assert.equal(await submit("tok-bob", "alice"), 400);
    assert.equal(await submit("tok-bob", "bob"), 200);
    assert.equal(await submit("tok-alice", "alice"), 200);
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
  }
});

/** Runs `planetary serve` until it listens (then stops it) or exits; returns code and stderr. */
async function serveOnce(args: string[]): Promise<{ code: number | "listening"; stderr: string }> {
  const root = await Deno.makeTempDir({ prefix: "planetary-isolation-serve-" });
  try {
    const tokens = `${root}/tokens.json`;
    await Deno.writeTextFile(tokens, JSON.stringify({ "tok-alice": "alice", "tok-bob": "bob" }));
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--config",
        `${REPO}deno.json`,
        ...SERVE_PERMISSIONS,
        `${REPO}cli/planetary.ts`,
        "serve",
        "--port",
        "0",
        "--data-dir",
        `${root}/data`,
        "--log-requests=false",
        "--runtime",
        "host",
        ...args,
      ],
      env: { NO_COLOR: "1", PLANETARY_AUTH_TOKENS_FILE: tokens },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    let listening = false;
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr += chunk;
      if (!listening && stderr.includes("Planetary listening on")) {
        listening = true;
        child.kill("SIGTERM");
      }
    }
    const status = await child.status;
    return { code: listening ? "listening" : status.code, stderr };
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test({
  name: "planetary serve with authentication refuses the host runtime (exit 2) unless " +
    "--unsafe-host-runtime, and warns that it does not isolate",
  ignore: !ENABLED,
  async fn() {
    const refused = await serveOnce([]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /--unsafe-host-runtime/);
    const started = await serveOnce(["--unsafe-host-runtime"]);
    assert.equal(started.code, "listening", started.stderr);
    assert.match(started.stderr, /host runtime.*does NOT isolate/);
  },
});

Deno.test({
  name: "host runtime: by default executors run as nobody with no capabilities, and cancel " +
    "kills every process they started",
  ignore: !ENABLED,
  async fn() {
    await withServer(async ({ client }) => {
      const marker = `${1000 + Math.floor(Math.random() * 8000)}`;
      // Each process carries the marker in its argv: `sleep <marker>.5`.
      const id = await client.createTask({
        executors: [{
          image: "busybox",
          command: [
            "/bin/sh",
            "-c",
            'echo uid=$(id -u); grep CapEff /proc/self/status; sleep "$1.5" & sleep "$1.6" & ' +
            'setsid sleep "$1.7" & wait',
            "sh",
            marker,
          ],
        }],
      });
      // The state to reach before cancelling: all three sleepers alive (or the task over; the
      // task may still read INITIALIZING then: the orchestrator records RUNNING a bit later).
      let task = await client.getTask(id, "FULL");
      for (let i = 0; i < 1200 && sleepers(marker).length < 3; i++) {
        if (!["QUEUED", "INITIALIZING", "RUNNING"].includes(task.state ?? "")) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
        task = await client.getTask(id, "FULL");
      }
      assert.equal(sleepers(marker).length, 3, describe(task));
      const users = sleepers(marker).map((p) => p.uid);
      assert.deepEqual(users, [65534, 65534, 65534], JSON.stringify(sleepers(marker)));
      await client.cancelTask(id);
      const done = await client.waitForTask(id, { intervalMs: 100 });
      assert.equal(done.state, "CANCELED", describe(done));
      assert.deepEqual(sleepers(marker), [], "no process of the canceled task is left");
    }, undefined);
  },
});

Deno.test({
  name: "host runtime: kernel settings are read-only to executors, also with --task-user 0:0",
  ignore: !ENABLED,
  async fn() {
    await withServer(async ({ client }) => {
      const task = await run(client, {
        executors: [{
          image: "busybox",
          command: [
            "/bin/sh",
            "-c",
            // Writes back the value it read: harmless where the write would succeed.
            "v=$(cat /proc/sys/kernel/panic_on_oops)\n" +
            'if echo "$v" > /proc/sys/kernel/panic_on_oops; then echo WROTE-PROC; fi\n' +
            "t=/sys/kernel/mm/transparent_hugepage/defrag\n" +
            'if [ -e "$t" ] && sed -n "s/.*\\[\\(.*\\)\\].*/\\1/p" "$t" > /tmp/v && ' +
            'cat /tmp/v > "$t"; then echo WROTE-SYS; fi\n' +
            "echo uid=$(id -u)\n",
          ],
        }],
      });
      assert.equal(task.state, "COMPLETE", describe(task));
      const out = stdoutOf(task);
      assert.match(out, /uid=0\n/, out);
      assert.doesNotMatch(out, /WROTE/, out);
    }, { uid: 0, gid: 0 });
  },
});

/** Processes whose argv is `sleep <marker>.<n>`, with their real user id. */
function sleepers(marker: string): { pid: number; uid: number }[] {
  const found: { pid: number; uid: number }[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      if (argv[0]?.endsWith("sleep") && argv[1]?.startsWith(`${marker}.`)) {
        const status = Deno.readTextFileSync(`/proc/${entry.name}/status`);
        const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
        found.push({ pid: Number(entry.name), uid });
      }
    } catch {
      // gone
    }
  }
  return found.sort((a, b) => a.pid - b.pid);
}
