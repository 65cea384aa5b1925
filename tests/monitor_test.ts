/**
 * The monitor with real parts: the local backend (host runtime: real processes), the
 * orchestrator, and the embedded store. Needs `unshare` and root or user namespaces.
 */
import assert from "node:assert/strict";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { LocalBackend } from "../src/orchestrator/backends/local/mod.ts";
import { Orchestrator } from "../src/orchestrator/orchestrator.ts";
import { Monitor, type MonitorLogEntry } from "../src/monitor/mod.ts";
import {
  ANNOTATION_TASK_ID,
  LABEL_MANAGED_BY,
  LABEL_TASK_ID,
  MANAGED_BY_VALUE,
  OUTPUTS_CONTAINER,
  podName,
  REPORT_PREFIX,
} from "../src/pod/mod.ts";
import { openTaskStore, type TaskStore } from "../src/store/mod.ts";
import { requireHostRuntime } from "./_harness/host_runtime.ts";

const ENABLED = await requireHostRuntime();

const MIN = 60_000;

async function waitFor<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A task pod with only an `outputs` container running `script` (no transporter needed). */
function taskPod(id: string, script: string): { pod: V1Pod; configMap: { metadata: object } } {
  const container: V1Container = {
    name: OUTPUTS_CONTAINER,
    image: "debian:12",
    command: ["/bin/sh", "-c", script],
  };
  return {
    pod: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: podName(id),
        labels: { [LABEL_TASK_ID]: id, [LABEL_MANAGED_BY]: MANAGED_BY_VALUE },
        annotations: { [ANNOTATION_TASK_ID]: id },
      },
      spec: { restartPolicy: "Never", containers: [container] },
    },
    configMap: { metadata: { name: `${podName(id)}-spec` } },
  };
}

const REPORT = `${REPORT_PREFIX}${
  JSON.stringify({
    version: 1,
    executors: [{ exit_code: 0, stdout: "", stderr: "" }],
    outputs: [],
  })
}`;

async function withParts(
  fn: (parts: { store: TaskStore; backend: LocalBackend }) => Promise<void>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "planetary-monitor-test-" });
  const store = await openTaskStore({});
  const backend = new LocalBackend({ workDir: tmp, runtime: "host" });
  try {
    await fn({ store, backend });
  } finally {
    await backend.close();
    await store.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test({
  name:
    "Monitor deletes the pod an orchestrator kept (deleteFinishedPods: false) after keepFinishedPodsMs",
  ignore: !ENABLED,
  async fn() {
    await withParts(async ({ store, backend }) => {
      const orchestrator = new Orchestrator({
        store,
        backend,
        buildPod: (task) => taskPod(task.id, `echo '${REPORT}'`),
        deleteFinishedPods: false,
        pollIntervalMs: 50,
        log: () => {},
      });
      orchestrator.start();
      let id: string;
      try {
        id = await store.create({ executors: [{ image: "alpine", command: ["true"] }] });
        await waitFor("the task to complete", async () => {
          const state = (await store.get(id, "MINIMAL")).state;
          return state === "COMPLETE" ? state : undefined;
        });
        await orchestrator.idle();
      } finally {
        await orchestrator.stop();
      }
      const pod = await backend.getPod(podName(id));
      assert.equal(pod?.status?.phase, "Succeeded", "the orchestrator kept the finished pod");

      let shift = 0;
      const logs: MonitorLogEntry[] = [];
      const monitor = new Monitor({
        store,
        backend,
        keepFinishedPodsMs: 10 * MIN,
        log: (entry) => logs.push(entry),
        clock: () => new Date(Date.now() + shift),
      });
      const kept = await monitor.runOnce();
      assert.equal(kept.pods, 1);
      assert.equal(kept.podsWithoutLiveTask, 1);
      assert.equal(kept.podsDeleted, 0);
      assert.ok(await backend.getPod(podName(id)), "kept for debugging");

      shift = 10 * MIN + 1_000;
      const collected = await monitor.runOnce();
      assert.equal(collected.podsDeleted, 1);
      assert.equal(await backend.getPod(podName(id)), undefined);
      assert.equal((await store.get(id, "MINIMAL")).state, "COMPLETE", "the task is untouched");
      assert.ok(logs.some((e) => e.msg.includes("COMPLETE") && e.task_id === id));
    });
  },
});

Deno.test({
  name: "Monitor fails a running task whose real pod was deleted behind its back",
  ignore: !ENABLED,
  async fn() {
    await withParts(async ({ store, backend }) => {
      const id = await store.create({ executors: [{ image: "alpine", command: ["true"] }] });
      await store.claim("gone-orchestrator", 1, 60 * MIN);
      assert.equal(await store.transition(id, "RUNNING"), true);
      await backend.createPod(taskPod(id, "sleep 30"));
      await waitFor("the pod to run", async () => {
        const phase = (await backend.getPod(podName(id)))?.status?.phase;
        return phase === "Running" ? phase : undefined;
      });
      let shift = 0;
      const monitor = new Monitor({
        store,
        backend,
        orphanGraceMs: 2 * MIN,
        log: () => {},
        clock: () => new Date(Date.now() + shift),
      });
      shift = 5 * MIN;
      const healthy = await monitor.runOnce();
      assert.equal(healthy.liveTasks, 1);
      assert.equal(healthy.pods, 1);
      assert.equal(healthy.liveTasksWithoutPod, 0);
      assert.equal(healthy.tasksWithLostPod + healthy.tasksWithStuckPod, 0);
      assert.equal((await store.get(id, "MINIMAL")).state, "RUNNING");

      await backend.deletePod(podName(id));
      const lost = await monitor.runOnce();
      assert.equal(lost.liveTasksWithoutPod, 1);
      assert.equal(lost.tasksWithLostPod, 1);
      const task = await store.get(id, "FULL");
      assert.equal(task.state, "SYSTEM_ERROR");
      assert.match(task.logs?.[0]?.system_logs?.[0] ?? "", /disappeared/);
    });
  },
});
