/**
 * One task cannot stall, crash or fill up the server (issue 11): huge log lines, thousands of
 * failing outputs, a full disk under the container logs, and tasks that run past their
 * deadline. Real processes: the local backend with the host runtime, and `planetary serve`.
 */
import assert from "node:assert/strict";
import type { V1Container, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { LocalBackend } from "../src/orchestrator/backends/local/mod.ts";
import { taskStatusFromPod } from "../src/pod/task_status_from_pod.ts";
import { requireHostRuntime } from "./_harness/host_runtime.ts";
import { startServe } from "./_harness/serve.ts";

const ENABLED = await requireHostRuntime();

/** Polls `check` until it returns a value other than undefined (`ms` deadline). */
async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  ms = 120_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function finished(backend: LocalBackend, name: string): Promise<V1PodStatus> {
  return waitFor(`pod ${name} to finish`, async () => {
    const status = (await backend.getPod(name))?.status;
    return status?.phase === "Succeeded" || status?.phase === "Failed" ? status : undefined;
  });
}

function sh(name: string, script: string, extra: Partial<V1Container> = {}): V1Container {
  return { name, image: "debian:12", command: ["/bin/sh", "-c", script], ...extra };
}

function pod(name: string, init: V1Container[], main: V1Container[], deadline?: number): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name },
    spec: {
      restartPolicy: "Never",
      initContainers: init,
      containers: main,
      ...(deadline !== undefined ? { activeDeadlineSeconds: deadline } : {}),
    },
  };
}

const configMap = (name: string) => ({ metadata: { name: `${name}-cm` }, data: {} });

async function withBackend(
  fn: (backend: LocalBackend, workDir: string) => Promise<void>,
  setup?: (workDir: string) => Promise<() => Promise<void>>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "planetary-resilience-" });
  const workDir = `${tmp}/work`;
  await Deno.mkdir(workDir);
  const teardown = setup ? await setup(workDir) : async () => {};
  const backend = new LocalBackend({ workDir, runtime: "host" });
  try {
    await fn(backend, workDir);
  } finally {
    await backend.close();
    await teardown();
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test({
  name: "runPod() keeps the log-tail message of a 10 MB single log line bounded",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend) => {
      const script = "head -c 10000000 /dev/zero | tr '\\0' x; echo; echo last words; exit 1";
      await backend.createPod({
        pod: pod("huge-line", [], [
          sh("outputs", script, { terminationMessagePolicy: "FallbackToLogsOnError" }),
        ]),
        configMap: configMap("huge-line"),
      });
      const status = await finished(backend, "huge-line");
      const t = status.containerStatuses?.[0]?.state?.terminated;
      assert.equal(t?.exitCode, 1);
      const message = t?.message ?? "";
      assert.ok(message.endsWith("x\nlast words"), message.slice(-40));
      assert.ok(new TextEncoder().encode(message).length <= 2048, `${message.length} bytes`);
    });
  },
});

Deno.test({
  name: "HostRuntime.run() fails the container, not the server, when its log fills the disk",
  ignore: !ENABLED || Deno.uid() !== 0,
  async fn() {
    const mountTmpfs = async (workDir: string) => {
      const mount = await new Deno.Command("mount", {
        args: ["-t", "tmpfs", "-o", "size=2m", "planetary-test-full", workDir],
      }).output();
      assert.ok(mount.success, new TextDecoder().decode(mount.stderr));
      return async () => {
        await new Deno.Command("umount", { args: ["-l", workDir] }).output();
      };
    };
    await withBackend(async (backend) => {
      await backend.createPod({
        pod: pod("fills-disk", [
          sh("executor-0", "head -c 8000000 /dev/zero | tr '\\0' y; sleep 30"),
        ], [sh("outputs", "echo never")]),
        configMap: configMap("fills-disk"),
      });
      const status = await finished(backend, "fills-disk");
      assert.equal(status.phase, "Failed");
      const t = status.initContainerStatuses?.[0]?.state?.terminated;
      assert.match(
        t?.message ?? "",
        /^no space left on device while writing the log of container "executor-0"/,
      );
      assert.equal(status.containerStatuses?.[0]?.state?.waiting?.reason, "PodInitializing");
      const task = taskStatusFromPod({ metadata: { name: "fills-disk" }, status }, undefined, {
        executors: [{}],
      });
      assert.equal(task.state, "EXECUTOR_ERROR");
      assert.match(task.systemLogs.join("\n"), /no space left on device while writing the log/);
      // and the backend still runs pods afterwards (this process did not die)
      await backend.deletePod("fills-disk");
      await backend.createPod({
        pod: pod("after-full", [], [sh("outputs", "echo fine")]),
        configMap: configMap("after-full"),
      });
      assert.equal((await finished(backend, "after-full")).phase, "Succeeded");
    }, mountTmpfs);
  },
});

Deno.test({
  name: "LocalBackend honours activeDeadlineSeconds: the pod fails with DeadlineExceeded",
  ignore: !ENABLED,
  async fn() {
    await withBackend(async (backend) => {
      await backend.createPod({
        pod: pod("too-slow", [sh("executor-0", "sleep 120")], [sh("outputs", "echo never")], 1),
        configMap: configMap("too-slow"),
      });
      const status = await finished(backend, "too-slow");
      assert.equal(status.phase, "Failed");
      assert.equal(status.reason, "DeadlineExceeded");
      const t = status.initContainerStatuses?.[0]?.state?.terminated;
      assert.equal(t?.exitCode, 137);
      const task = taskStatusFromPod({ metadata: { name: "too-slow" }, status }, undefined, {
        executors: [{}],
      });
      assert.equal(task.state, "SYSTEM_ERROR");
      assert.match(task.systemLogs.join("\n"), /time limit: DeadlineExceeded/);
    });
  },
});

Deno.test({
  name: "planetary serve keeps answering while tasks print 10 MB lines and fail 20,000 outputs",
  ignore: !ENABLED,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startServe({ maxTasks: 4 });
    let failed = true;
    try {
      const { client } = server;
      // Every upload fails: the destination's parent is a regular file.
      await Deno.writeTextFile(`${server.storageDir}/blocker`, "not a folder");
      const hugeLine = await client.createTask({
        name: "huge-line",
        executors: [{
          image: "debian:12",
          command: [
            "/bin/sh",
            "-c",
            "head -c 10000000 /dev/zero | tr '\\0' x; head -c 10000000 /dev/zero | tr '\\0' y >&2; exit 1",
          ],
        }],
      });
      const manyOutputs = await client.createTask({
        name: "many-failing-outputs",
        executors: [{
          image: "debian:12",
          command: [
            "/bin/sh",
            "-c",
            "mkdir -p /data/out && cd /data/out && seq 1 20000 | xargs touch",
          ],
        }],
        outputs: [{
          path: "/data/out/*",
          path_prefix: "/data/out",
          url: `file://${server.storageDir}/blocker/out`,
          type: "FILE",
        }],
      });
      const missingInput = await client.createTask({
        name: "missing-input",
        inputs: [{ url: `file://${server.storageDir}/absent.txt`, path: "/data/in.txt" }],
        executors: [{ image: "debian:12", command: ["true"] }],
      });
      const ids = [hugeLine, manyOutputs, missingInput];
      let answered = 0;
      const ended = new Map<string, Awaited<ReturnType<typeof client.getTask>>>();
      await waitFor("the tasks to end", async () => {
        const info = await fetch(`${server.url}/service-info`);
        assert.equal(info.status, 200);
        await info.body?.cancel();
        answered++;
        for (const id of ids) {
          if (ended.has(id)) continue;
          const task = await client.getTask(id, "FULL");
          if (!["QUEUED", "INITIALIZING", "RUNNING"].includes(task.state ?? "")) {
            ended.set(id, task);
          }
        }
        return ended.size === ids.length ? true : undefined;
      }, 600_000);
      assert.ok(answered > 0);
      for (const [id, task] of ended) {
        const systemLogs = (task.logs ?? []).flatMap((l) => l.system_logs ?? []);
        const size = systemLogs.join("\n").length;
        assert.ok(size < 32 * 1024, `task ${id} (${task.name}): ${size} chars of system_logs`);
        const stdout = (task.logs ?? []).flatMap((l) => l.logs ?? []).map((l) => l.stdout ?? "");
        assert.ok(stdout.every((s) => s.length <= 65536), `task ${task.name}: stdout bounded`);
      }
      const many = ended.get(manyOutputs)!;
      const manyLogs = (many.logs ?? []).flatMap((l) => l.system_logs ?? []).join("\n");
      assert.equal(
        many.state,
        "SYSTEM_ERROR",
        `${manyLogs}\n${JSON.stringify(many.logs?.[0]?.logs)}`,
      );
      assert.match(
        manyLogs,
        /output upload failed: uploading outputs failed: .*more outputs failed/s,
      );
      assert.equal(ended.get(hugeLine)!.state, "EXECUTOR_ERROR");
      const missing = ended.get(missingInput)!;
      assert.equal(missing.state, "SYSTEM_ERROR");
      const missingLogs = (missing.logs ?? []).flatMap((l) => l.system_logs ?? []).join("\n");
      // The transporter's own termination message, not a tail of its log.
      assert.match(missingLogs, /input download failed: downloading inputs failed: /);
      assert.doesNotMatch(missingLogs, /planetary-transporter:/);
      failed = false;
    } finally {
      await server.close();
      if (failed) console.error(`--- planetary serve log ---\n${server.log().slice(-20000)}`);
    }
  },
});
