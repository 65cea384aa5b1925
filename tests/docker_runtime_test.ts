/**
 * `planetary serve` (local backend) on a REAL Docker engine: a private `dockerd` of this test
 * (tests/_harness/docker.ts) with a locally imported busybox image under the names tasks use.
 * The server picks the engine itself (runtime `auto`, `DOCKER_HOST` of the server pointing at the
 * private daemon). Covers issue 11: executors in their image, transporter from this machine,
 * missing images, limits and OOM, cancel, leftovers of a killed server, env values off command
 * lines, and every end-to-end case on this runtime (the one-slot and restart cases with a
 * server of their own each).
 */
import assert from "node:assert/strict";
import { E2E_CASES, runE2eSteps, serveE2eContext } from "./_e2e_cases.ts";
import { requireComponent } from "./_harness/component.ts";
import { type DockerEngine, dockerMissing, startDockerd } from "./_harness/docker.ts";
import { importBusyboxImages } from "./_harness/docker_images.ts";
import { hostRuntimeWorks } from "./_harness/host_runtime.ts";
import { findProcesses, type ServeHarness, startServe } from "./_harness/serve.ts";
import type { TesTask } from "../src/tes/model.ts";
import type { V1Container, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { LocalBackend } from "../src/orchestrator/backends/local/mod.ts";
import { taskStatusFromPod } from "../src/pod/task_status_from_pod.ts";

const missing = dockerMissing() ??
  (await hostRuntimeWorks()
    ? undefined
    : "docker: the transporter runs on the host runtime, which needs unshare and root");
const ENABLED = requireComponent(missing === undefined, missing ?? "");

/** Longest time a quick task may take (2 cores, other tests beside). */
const TASK_DEADLINE_MS = 120_000;

/** The end-to-end cases without a special server: they share one server. */
const CORE_CASES = E2E_CASES.filter((c) => !c.needs);
/** The end-to-end cases that need one task slot: a server with `--max-tasks 1`. */
const ONE_SLOT_CASES = E2E_CASES.filter((c) => c.needs?.maxTasks === 1 && !c.needs.restart);
/** The end-to-end cases that restart their server: a server of their own each. */
const RESTART_CASES = E2E_CASES.filter((c) => c.needs?.restart);

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

/** The ids of the engine's containers of Planetary (running or not). */
async function planetaryContainers(engine: DockerEngine): Promise<string[]> {
  const out = await engine.docker(["ps", "--all", "--quiet", "--filter", "label=io.planetary.pod"]);
  assert.equal(out.code, 0, out.stderr);
  return out.stdout.split(/\s+/).filter((id) => id);
}

function systemLogs(task: TesTask): string {
  return (task.logs ?? []).flatMap((log) => log.system_logs ?? []).join("\n");
}

async function withEngine(
  fn: (engine: DockerEngine, start: (maxTasks?: number) => Promise<ServeHarness>) => Promise<void>,
): Promise<void> {
  await using engine = await startDockerd();
  await importBusyboxImages(engine);
  const servers: ServeHarness[] = [];
  const start = async (maxTasks = 8): Promise<ServeHarness> => {
    const server = await startServe({
      maxTasks,
      runtime: "auto",
      env: { DOCKER_HOST: engine.host },
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
    if (failed) console.error(`--- dockerd log ---\n${await engine.log()}`);
  }
}

Deno.test({
  ...OPTIONS,
  name: "planetary serve on docker: executors run in their image, transporter from this machine",
  async fn(t) {
    await withEngine(async (engine, start) => {
      const server = await start();

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
        assert.doesNotMatch(logs, /could not start the container/);
        assert.match(server.log(), /pulling image "planetary-test\/missing:1"/);
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
        assert.match(systemLogs(task), /out of memory/);
      });

      await t.step(
        "a task that wrote more than its disk_gb is evicted: EXECUTOR_ERROR",
        async () => {
          const task = await run(server, {
            resources: { disk_gb: 0.01 },
            outputs: [{ url: `file://${server.storageDir}/disk/big`, path: "/out/big" }],
            executors: [{
              image: "alpine:3.20",
              command: ["sh", "-c", "head -c 20000000 /dev/zero > /out/big"],
            }],
          });
          assert.equal(task.state, "EXECUTOR_ERROR", JSON.stringify(task));
          assert.match(
            systemLogs(task),
            /used more disk than it asked for: Evicted: Usage of EmptyDir volume "data" exceeds the limit "10M"\./,
          );
          assert.ok(!await exists(`${server.storageDir}/disk/big`), "the output was uploaded");
        },
      );

      await t.step("a running executor over its disk_gb is killed (10 s passes)", async () => {
        const started = Date.now();
        const task = await run(server, {
          resources: { disk_gb: 0.01 },
          executors: [{
            image: "alpine:3.20",
            command: [
              "sh",
              "-c",
              "head -c 20000000 /dev/zero > /tmp/big; mv /tmp/big /out/; " +
              "sleep 300",
            ],
          }],
          outputs: [{ url: `file://${server.storageDir}/disk/never`, path: "/out/big" }],
        });
        assert.equal(task.state, "EXECUTOR_ERROR", JSON.stringify(task));
        assert.match(systemLogs(task), /Usage of EmptyDir volume "data" exceeds the limit "10M"/);
        console.log(`a running executor over disk_gb ended after ${Date.now() - started} ms`);
        assert.ok(Date.now() - started < 60_000, "not killed within its passes");
      });

      await t.step("a task under its disk_gb completes", async () => {
        const task = await run(server, {
          resources: { disk_gb: 0.01 },
          outputs: [{ url: `file://${server.storageDir}/disk/small`, path: "/out/small" }],
          executors: [{
            image: "alpine:3.20",
            command: ["sh", "-c", "head -c 5000000 /dev/zero > /out/small"],
          }],
        });
        assert.equal(task.state, "COMPLETE", JSON.stringify(task));
        assert.equal((await Deno.stat(`${server.storageDir}/disk/small`)).size, 5_000_000);
      });

      await t.step("env values stay off every command line and out of files", async () => {
        const secret = `s3cr3t-${crypto.randomUUID()}`;
        const id = await server.client.createTask({
          executors: [{
            image: "alpine:3.20",
            command: ["sleep", "300"],
            env: { SECRET_TOKEN: secret },
          }],
        });
        await poll("the executor to run", async () => {
          const found = await findProcesses((p) => p.environ.includes(secret));
          return found.length > 0 ? found : undefined;
        });
        const onCommandLine = await findProcesses((p) => p.cmdline.includes(secret));
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

      await t.step(
        "a task's DOCKER_HOST reaches its container and does not steer the engine",
        async () => {
          const task = await run(server, {
            executors: [{
              image: "alpine:3.20",
              command: ["sh", "-c", "echo $DOCKER_HOST"],
              env: { DOCKER_HOST: "unix:///nonexistent.sock" },
            }],
          });
          assert.equal(task.state, "COMPLETE", JSON.stringify(task));
          assert.equal(task.logs?.[0]?.logs[0]?.stdout, "unix:///nonexistent.sock\n");
        },
      );

      await t.step(
        "a line break in a value that would steer the engine client is refused",
        async () => {
          const task = await run(server, {
            executors: [{
              image: "alpine:3.20",
              command: ["true"],
              env: { DOCKER_HOST: "unix:///a\nhidden" },
            }],
          });
          assert.notEqual(task.state, "COMPLETE");
          assert.match(systemLogs(task), /"DOCKER_HOST".*line break/);
          assert.doesNotMatch(systemLogs(task), /hidden/);
        },
      );

      await t.step("cancel removes the running container", async () => {
        const id = await server.client.createTask({
          executors: [{ image: "alpine:3.20", command: ["sleep", "300"] }],
        });
        await poll("the container to run", async () => {
          const out = await engine.docker([
            "ps",
            "--quiet",
            "--filter",
            "label=io.planetary.pod",
            "--filter",
            "status=running",
          ]);
          return out.stdout.trim() ? true : undefined;
        });
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

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Files under `dir` whose text holds `value` (an env file left behind). */
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
  name: "planetary serve on docker: a killed server's containers are removed at its next start",
  async fn() {
    await withEngine(async (engine, start) => {
      const server = await start();
      await server.client.createTask({
        executors: [{ image: "alpine:3.20", command: ["sleep", "300"] }],
      });
      await poll(
        "the container to run",
        async () => (await planetaryContainers(engine)).length > 0 ? true : undefined,
      );
      await server.stop("SIGKILL");
      assert.ok((await planetaryContainers(engine)).length > 0, "the container died with it");
      await server.restart();
      await poll(
        "the leftover container to be removed",
        async () => (await planetaryContainers(engine)).length === 0 ? true : undefined,
      );
      // A server stopped with SIGTERM leaves none either.
      const id = await server.client.createTask({
        executors: [{ image: "alpine:3.20", command: ["sleep", "300"] }],
      });
      await poll(
        "the second container to run",
        async () => (await planetaryContainers(engine)).length > 0 ? true : undefined,
      );
      await server.stop("SIGTERM");
      assert.deepEqual(await planetaryContainers(engine), [], `task ${id} left a container`);
    });
  },
});

Deno.test({
  ...OPTIONS,
  name: "planetary serve on docker runs the core end-to-end cases",
  async fn(t) {
    await withEngine(async (_engine, start) => {
      const server = await start();
      const ctx = serveE2eContext(server, TASK_DEADLINE_MS);
      assert.ok(await runE2eSteps(t, CORE_CASES, ctx), "a case failed");
    });
  },
});

Deno.test({
  ...OPTIONS,
  name: "planetary serve on docker runs the one-slot and restart end-to-end cases",
  async fn(t) {
    await withEngine(async (_engine, start) => {
      // One engine; the one-slot group and each restart case get a server of their own.
      const groups = [
        { cases: ONE_SLOT_CASES, maxTasks: 1 },
        ...RESTART_CASES.map((c) => ({ cases: [c], maxTasks: 8 })),
      ].filter((g) => g.cases.length > 0);
      const results = await Promise.all(groups.map(async ({ cases, maxTasks }) => {
        return await runE2eSteps(
          t,
          cases,
          serveE2eContext(await start(maxTasks), TASK_DEADLINE_MS),
        );
      }));
      assert.ok(!results.includes(false), "a case failed");
    });
  },
});

/** A task-shaped pod: `inputs` and `outputs` (host runtime) around executors (the engine). */
function taskPod(name: string, executors: V1Container[], sizeLimit?: string): V1Pod {
  const host = (container: string, script: string): V1Container => ({
    name: container,
    image: "planetary-transporter:latest",
    command: ["/bin/sh", "-c", script],
    volumeMounts: [{ name: "data", mountPath: "/data" }],
  });
  return {
    metadata: { name },
    spec: {
      restartPolicy: "Never",
      volumes: [{ name: "data", emptyDir: sizeLimit ? { sizeLimit } : {} }],
      initContainers: [host("inputs", "true"), ...executors],
      containers: [host("outputs", "echo uploaded")],
    },
  };
}

function executor(script: string): V1Container {
  return {
    name: "executor-0",
    image: "alpine:3.20",
    command: ["sh", "-c", script],
    volumeMounts: [{ name: "data", mountPath: "/data" }],
  };
}

/** Runs `fn` with a LocalBackend on the private engine (the client finds it by DOCKER_HOST). */
async function withDockerBackend(
  fn: (backend: LocalBackend) => Promise<void>,
  options: { workDir?: (tmp: string) => Promise<() => Promise<void>>; intervalMs?: number } = {},
): Promise<void> {
  await using engine = await startDockerd();
  await importBusyboxImages(engine);
  const before = Deno.env.get("DOCKER_HOST");
  Deno.env.set("DOCKER_HOST", engine.host);
  const tmp = await Deno.makeTempDir({ prefix: "planetary-docker-backend-" });
  const undo = options.workDir ? await options.workDir(tmp) : async () => {};
  const backend = new LocalBackend({
    workDir: tmp,
    runtime: "docker",
    ...(options.intervalMs ? { storageCheckIntervalMs: options.intervalMs } : {}),
  });
  try {
    await fn(backend);
  } finally {
    await backend.close();
    await undo();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    if (before === undefined) Deno.env.delete("DOCKER_HOST");
    else Deno.env.set("DOCKER_HOST", before);
  }
}

async function podEnd(backend: LocalBackend, name: string): Promise<V1PodStatus> {
  return await poll(`pod ${name} to end`, async () => {
    const status = (await backend.getPod(name))?.status;
    return status?.phase === "Succeeded" || status?.phase === "Failed" ? status : undefined;
  });
}

Deno.test({
  ...OPTIONS,
  name: "DockerRuntime.run() fails the container, not the server, when its log fills the disk",
  async fn() {
    const tmpfs = async (dir: string): Promise<() => Promise<void>> => {
      const mount = await new Deno.Command("mount", {
        args: ["-t", "tmpfs", "-o", "size=2m", "planetary-test-full", dir],
      }).output();
      assert.ok(mount.success, new TextDecoder().decode(mount.stderr));
      return async () => {
        await new Deno.Command("umount", { args: ["-l", dir] }).output();
      };
    };
    await withDockerBackend(async (backend) => {
      await backend.createPod({
        pod: taskPod("fills-disk", [executor("head -c 8000000 /dev/zero | tr '\\0' y; sleep 30")]),
        configMap: { metadata: { name: "fills-disk-spec" }, data: {} },
      });
      const status = await podEnd(backend, "fills-disk");
      assert.equal(status.phase, "Failed");
      const t = status.initContainerStatuses?.[1]?.state?.terminated;
      assert.match(
        t?.message ?? "",
        /^no space left on device while writing the log of container "executor-0"/,
        JSON.stringify(status),
      );
      assert.equal(status.containerStatuses?.[0]?.state?.waiting?.reason, "PodInitializing");
      const task = taskStatusFromPod({ metadata: { name: "fills-disk" }, status }, undefined, {
        executors: [{}],
      });
      assert.equal(task.state, "EXECUTOR_ERROR");
      assert.match(task.systemLogs.join("\n"), /no space left on device while writing the log/);
      // The backend (this process) goes on running pods.
      await backend.deletePod("fills-disk");
      await backend.createPod({
        pod: taskPod("after-full", [executor("echo fine")]),
        configMap: { metadata: { name: "after-full-spec" }, data: {} },
      });
      assert.equal((await podEnd(backend, "after-full")).phase, "Succeeded");
    }, { workDir: tmpfs });
  },
});

Deno.test({
  ...OPTIONS,
  name:
    "DockerRuntime with LocalBackend: an executor over its sizeLimit or ephemeral-storage is evicted",
  async fn() {
    await withDockerBackend(async (backend) => {
      await backend.createPod({
        pod: taskPod(
          "evicted",
          [executor("head -c 20000000 /dev/zero > /data/big; sleep 300")],
          "10000000",
        ),
        configMap: { metadata: { name: "evicted-spec" }, data: {} },
      });
      const started = Date.now();
      const status = await podEnd(backend, "evicted");
      assert.equal(status.reason, "Evicted");
      assert.equal(status.message, 'Usage of EmptyDir volume "data" exceeds the limit "10M".');
      assert.equal(status.initContainerStatuses?.[1]?.state?.terminated?.exitCode, 137);
      console.log(`docker: pod evicted ${Date.now() - started} ms after its creation`);
      // A container's writable layer (the engine's upper dir) counts against its own limit.
      await backend.createPod({
        pod: taskPod("layer", [{
          ...executor("head -c 20000000 /dev/zero > /tmp/big; sleep 300"),
          resources: { limits: { "ephemeral-storage": "10Mi" } },
        }]),
        configMap: { metadata: { name: "layer-spec" }, data: {} },
      });
      const layer = await podEnd(backend, "layer");
      assert.equal(layer.reason, "Evicted", JSON.stringify(layer));
      assert.equal(
        layer.message,
        "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi.",
      );
      await backend.createPod({
        pod: taskPod("under", [executor("head -c 5000000 /dev/zero > /data/small")], "10000000"),
        configMap: { metadata: { name: "under-spec" }, data: {} },
      });
      assert.equal((await podEnd(backend, "under")).phase, "Succeeded");
    }, { intervalMs: 200 });
  },
});
