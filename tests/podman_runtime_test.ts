/**
 * `planetary serve` (local backend) on a REAL podman (Debian's `podman`, rootful): a private
 * set-up of this test (tests/_harness/podman.ts: own storage, state, locks, events file, no
 * network) with a locally imported busybox image under the names tasks use. The server picks
 * podman itself: runtime `auto` tries docker first, and the server's `DOCKER_HOST` names a socket
 * nobody listens on (docker absent), so `podman info` decides. Covers the podman line of issue
 * 11: executors in their image, missing images, limits, OOM, env values off command lines,
 * cancel, leftovers of a killed server, and the core end-to-end cases on this runtime.
 */
import assert from "node:assert/strict";
import { E2E_CASES, runE2eSteps, serveE2eContext } from "./_e2e_cases.ts";
import { requireComponent } from "./_harness/component.ts";
import { type PodmanEngine, podmanMissing, startPodman } from "./_harness/podman.ts";
import { importBusyboxImages } from "./_harness/docker_images.ts";
import { hostRuntimeWorks } from "./_harness/host_runtime.ts";
import { findProcesses, type ServeHarness, startServe } from "./_harness/serve.ts";
import type { TesTask } from "../src/tes/model.ts";

const missing = podmanMissing() ??
  (await hostRuntimeWorks()
    ? undefined
    : "podman: the transporter runs on the host runtime, which needs unshare and root");
const ENABLED = requireComponent(missing === undefined, missing ?? "");

/** Longest time a quick task may take (2 cores, other tests beside). */
const TASK_DEADLINE_MS = 120_000;

/** The end-to-end cases without a special server (one slot, restarts): as on docker. */
const CORE_CASES = E2E_CASES.filter((c) => !c.needs);

const OPTIONS = {
  name: "",
  ignore: !ENABLED,
  sanitizeOps: false,
  sanitizeResources: false,
} as const;

/** Polls (deadline) until `check` returns a value other than undefined. */
async function poll<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + TASK_DEADLINE_MS;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function run(server: ServeHarness, task: TesTask): Promise<TesTask> {
  const id = await server.client.createTask(task);
  return await server.client.waitForTask(id, {
    intervalMs: 100,
    signal: AbortSignal.timeout(TASK_DEADLINE_MS),
  });
}

/** The ids of podman's containers of Planetary (running or not). */
async function planetaryContainers(engine: PodmanEngine, running = false): Promise<string[]> {
  const out = await engine.podman([
    "ps",
    "--all",
    "--quiet",
    "--filter",
    "label=io.planetary.pod",
    ...(running ? ["--filter", "status=running"] : []),
  ]);
  assert.equal(out.code, 0, out.stderr);
  return out.stdout.split(/\s+/).filter((id) => id);
}

function systemLogs(task: TesTask): string {
  return (task.logs ?? []).flatMap((log) => log.system_logs ?? []).join("\n");
}

async function withPodman(
  fn: (engine: PodmanEngine, start: () => Promise<ServeHarness>) => Promise<void>,
): Promise<void> {
  await using engine = await startPodman();
  await importBusyboxImages(engine);
  const servers: ServeHarness[] = [];
  const start = async (): Promise<ServeHarness> => {
    const server = await startServe({
      maxTasks: 8,
      runtime: "auto",
      // Docker absent: `docker info` fails on this socket, so runtime `auto` takes podman.
      env: { ...engine.env, DOCKER_HOST: `unix://${engine.dir}/no-docker.sock` },
    });
    servers.push(server);
    return server;
  };
  let failed = true;
  try {
    await fn(engine, start);
    failed = false;
  } finally {
    for (const server of servers) {
      await server.close();
      if (failed) console.error(`--- planetary serve log ---\n${server.log()}`);
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Files named `env` under `dir` whose text holds `value` (an env file left behind). */
async function findEnvFiles(dir: string, value: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string): Promise<void> => {
    for await (const entry of Deno.readDir(path)) {
      const full = `${path}/${entry.name}`;
      if (entry.isDirectory) await walk(full).catch(() => {});
      else if (entry.isFile && entry.name === "env") {
        const text = await Deno.readTextFile(full).catch(() => "");
        if (text.includes(value)) found.push(full);
      }
    }
  };
  await walk(dir).catch(() => {});
  return found;
}

Deno.test({
  ...OPTIONS,
  name: "planetary serve on podman: executors run in their image, transporter from this machine",
  async fn(t) {
    await withPodman(async (engine, start) => {
      const server = await start();

      await t.step("auto picks podman when docker does not answer", async () => {
        const id = await server.client.createTask({
          executors: [{ image: "alpine:3.20", command: ["sleep", "300"] }],
        });
        await poll(
          "the container to run in podman",
          async () => (await planetaryContainers(engine, true)).length > 0 ? true : undefined,
        );
        assert.doesNotMatch(server.log(), /tasks run on the host runtime/);
        await server.client.cancelTask(id);
        const done = await server.client.waitForTask(id, {
          intervalMs: 100,
          signal: AbortSignal.timeout(TASK_DEADLINE_MS),
        });
        assert.equal(done.state, "CANCELED");
      });

      await t.step("an executor runs in its image and the task COMPLETEs", async () => {
        const task = await run(server, {
          outputs: [{ url: `file://${server.storageDir}/img/out`, path: "/out/os" }],
          executors: [{
            image: "alpine:3.20",
            // Only the busybox image has /bin/busybox as its sole program and no /usr/bin.
            command: ["sh", "-c", "ls /usr/bin 2>&1 | head -1; ls /bin/busybox > /out/os"],
          }],
        });
        assert.equal(task.state, "COMPLETE", JSON.stringify(task));
        assert.equal(await Deno.readTextFile(`${server.storageDir}/img/out`), "/bin/busybox\n");
        assert.match(task.logs?.[0]?.logs[0]?.stdout ?? "", /No such file or directory/);
      });

      await t.step("a missing image fails with the engine's pull error", async () => {
        const task = await run(server, {
          executors: [{ image: "planetary-test/missing:1", command: ["true"] }],
        });
        // As on Kubernetes: the container waits with ErrImagePull, the task is a SYSTEM_ERROR.
        assert.equal(task.state, "SYSTEM_ERROR", JSON.stringify(task));
        const logs = systemLogs(task);
        assert.match(logs, /could not be pulled: ErrImagePull: /, logs);
        assert.match(logs, /image "planetary-test\/missing:1" not found: pull failed: \S/, logs);
        assert.match(logs, /did not resolve to an alias/, "the engine's own reason");
        assert.doesNotMatch(logs, /could not start the container/);
        assert.match(server.log(), /podman: pulling image "planetary-test\/missing:1"/);
      });

      await t.step("cpu_cores and ram_gb become the container's cgroup limits", async () => {
        const task = await run(server, {
          resources: { cpu_cores: 1, ram_gb: 0.1 },
          executors: [{
            image: "alpine:3.20",
            command: [
              "sh",
              "-c",
              "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us " +
              "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            ],
          }],
        });
        assert.equal(task.state, "COMPLETE", JSON.stringify(task));
        const [quota, period, memory] = (task.logs?.[0]?.logs[0]?.stdout ?? "").trim()
          .split("\n").map(Number);
        assert.equal(quota, period, `cpu quota ${quota} / period ${period}: not 1 core`);
        assert.ok(
          memory !== undefined && memory <= 1e8 && memory > 1e8 - 4096,
          `memory limit ${memory}`,
        );
      });

      await t.step("an executor killed for memory ends EXECUTOR_ERROR, out of memory", async () => {
        const task = await run(server, {
          resources: { ram_gb: 0.02 },
          executors: [{
            image: "alpine:3.20",
            command: ["sh", "-c", "head -c 400000000 /dev/zero | tail > /dev/null"],
          }],
        });
        assert.equal(task.state, "EXECUTOR_ERROR", JSON.stringify(task));
        // podman 4.3.1 + conmon 2.1.6 on cgroup v1 leave `OOMKilled` false; the runtime reads
        // conmon's own OOM marker instead (see docker_runtime.ts).
        assert.match(systemLogs(task), /executor 0 ran out of memory \(OOMKilled\)/);
        assert.equal(task.logs?.[0]?.logs.at(-1)?.exit_code, 137, JSON.stringify(task.logs));
        // …and conmon's marker lands in no folder of the server.
        assert.ok(!await exists(`${Deno.cwd()}/oom`), "an oom file in the server's folder");
      });

      await t.step("an executor killed by a signal (not memory) has no out of memory", async () => {
        const task = await run(server, {
          resources: { ram_gb: 0.1 },
          executors: [{ image: "alpine:3.20", command: ["sh", "-c", "kill -9 $$"] }],
        });
        assert.equal(task.state, "EXECUTOR_ERROR", JSON.stringify(task));
        assert.doesNotMatch(systemLogs(task), /out of memory/);
      });

      await t.step(
        "a task that wrote more than its disk_gb is evicted: EXECUTOR_ERROR",
        async () => {
          const task = await run(server, {
            resources: { disk_gb: 0.01 },
            executors: [{
              image: "alpine:3.20",
              command: ["sh", "-c", "head -c 20000000 /dev/zero > /out/big"],
            }],
            outputs: [{ url: `file://${server.storageDir}/disk/big`, path: "/out/big" }],
          });
          assert.equal(task.state, "EXECUTOR_ERROR", JSON.stringify(task));
          assert.match(systemLogs(task), /Usage of EmptyDir volume "data" exceeds the limit "10M"/);
        },
      );

      await t.step("env values stay off every command line and out of files", async () => {
        const secret = `s3cr3t-${crypto.randomUUID()}`;
        const multiLine = `line1-${crypto.randomUUID()}\nline2`;
        const id = await server.client.createTask({
          executors: [{
            image: "alpine:3.20",
            command: ["sh", "-c", 'printf "%s" "$MULTI" > /tmp/m; sleep 300'],
            env: { SECRET_TOKEN: secret, MULTI: multiLine },
          }],
        });
        await poll("the executor to run", async () => {
          const found = await findProcesses((p) => p.environ.includes(secret));
          return found.length > 0 ? found : undefined;
        });
        const onCommandLine = await findProcesses((p) =>
          p.cmdline.includes(secret) || p.cmdline.includes(multiLine.split("\n")[0]!)
        );
        assert.deepEqual(onCommandLine, [], "a secret env value is on a command line");
        const files = await findEnvFiles(server.dataDir, secret);
        assert.deepEqual(files, [], "an env file with the value stayed on disk");
        await server.client.cancelTask(id);
        const done = await server.client.waitForTask(id, {
          intervalMs: 100,
          signal: AbortSignal.timeout(TASK_DEADLINE_MS),
        });
        assert.equal(done.state, "CANCELED");
      });

      await t.step("a value with a line break reaches the container whole", async () => {
        const task = await run(server, {
          executors: [{
            image: "alpine:3.20",
            command: ["sh", "-c", 'printf "%s" "$MULTI"'],
            env: { MULTI: "a\nb" },
          }],
        });
        assert.equal(task.state, "COMPLETE", JSON.stringify(task));
        assert.equal(task.logs?.[0]?.logs[0]?.stdout, "a\nb");
      });

      await t.step("cancel removes the running container", async () => {
        const id = await server.client.createTask({
          executors: [{ image: "alpine:3.20", command: ["sleep", "300"] }],
        });
        await poll(
          "the container to run",
          async () => (await planetaryContainers(engine, true)).length > 0 ? true : undefined,
        );
        await server.client.cancelTask(id);
        const done = await server.client.waitForTask(id, {
          intervalMs: 100,
          signal: AbortSignal.timeout(TASK_DEADLINE_MS),
        });
        assert.equal(done.state, "CANCELED");
        await poll(
          "no container left",
          async () => (await planetaryContainers(engine)).length === 0 ? true : undefined,
        );
      });
    });
  },
});

Deno.test({
  ...OPTIONS,
  name: "planetary serve on podman: a killed server's containers are removed at its next start",
  async fn() {
    await withPodman(async (engine, start) => {
      const server = await start();
      await server.client.createTask({
        executors: [{ image: "alpine:3.20", command: ["sleep", "300"] }],
      });
      await poll(
        "the container to run",
        async () => (await planetaryContainers(engine, true)).length > 0 ? true : undefined,
      );
      await server.stop("SIGKILL");
      assert.ok((await planetaryContainers(engine)).length > 0, "the container died with it");
      await server.restart();
      await poll(
        "the leftover container to be removed",
        async () => (await planetaryContainers(engine)).length === 0 ? true : undefined,
      );
    });
  },
});

Deno.test({
  ...OPTIONS,
  name: "planetary serve on podman runs the core end-to-end cases",
  async fn(t) {
    await withPodman(async (_engine, start) => {
      const server = await start();
      const ctx = serveE2eContext(server, TASK_DEADLINE_MS);
      assert.ok(await runE2eSteps(t, CORE_CASES, ctx), "a case failed");
    });
  },
});
