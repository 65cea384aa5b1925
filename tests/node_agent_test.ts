/**
 * Tests of the node agent (tests/_harness/node_agent.ts): task pods built by `buildTaskPod()`
 * run for real on a fake Node of the loopback control plane, their status mirrored to the
 * apiserver, their logs served through the apiserver's `pods/log`, and each injected fault.
 * The Kubernetes end-to-end suite no longer uses the agent (it runs on a real kubelet); see the
 * header of tests/_harness/node_agent.ts for what the agent is still for.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { V1ContainerStatus, V1Node, V1Pod } from "@kubernetes/client-node";
import { type ControlPlane, requireControlPlane, startControlPlane } from "./_harness/k8s.ts";
import {
  FAULT_ANNOTATION,
  type NodeAgent,
  NodeAgentError,
  parseFault,
  startNodeAgent,
  StatusCoalescer,
} from "./_harness/node_agent.ts";
import { KubernetesBackend } from "../src/orchestrator/backends/kubernetes/kubernetes_backend.ts";
import { parseTransferReport } from "../src/orchestrator/report.ts";
import { buildTaskPod } from "../src/pod/build_task_pod.ts";
import { REPORT_PREFIX, type TransferReport } from "../src/pod/layout.ts";
import { hostTransporterSetup } from "../src/server/execution.ts";
import type { TesTask } from "../src/tes/model.ts";
import { requireHostRuntime } from "./_harness/host_runtime.ts";

const NAMESPACE = "agent-test";
const TIMEOUT_MS = 90_000;

Deno.test("StatusCoalescer.set() writes only the latest of values set together", async () => {
  const written: number[] = [];
  const coalescer = new StatusCoalescer<number>((v) => {
    written.push(v);
    return Promise.resolve();
  });
  for (let i = 1; i <= 10; i++) coalescer.set(i);
  await coalescer.flush();
  assert.deepEqual(written, [10]);
  assert.equal(coalescer.writes, 1);
  coalescer.close();
});

Deno.test("StatusCoalescer.set() writes nothing again when the value did not change", async () => {
  const written: { phase: string }[] = [];
  const coalescer = new StatusCoalescer<{ phase: string }>((v) => {
    written.push(v);
    return Promise.resolve();
  });
  coalescer.set({ phase: "Running" });
  await coalescer.flush();
  coalescer.set({ phase: "Running" });
  await coalescer.flush();
  coalescer.set({ phase: "Succeeded" });
  await coalescer.flush();
  assert.deepEqual(written.map((v) => v.phase), ["Running", "Succeeded"]);
  coalescer.close();
});

Deno.test("StatusCoalescer.flush() retries a value whose write failed", async () => {
  const errors: unknown[] = [];
  let calls = 0;
  const coalescer = new StatusCoalescer<string>((_v) => {
    calls++;
    return calls === 1 ? Promise.reject(new Error("HTTP 500")) : Promise.resolve();
  }, { onError: (e) => errors.push(e) });
  coalescer.set("x");
  await coalescer.flush();
  assert.equal(coalescer.writes, 0);
  assert.equal(errors.length, 1);
  await coalescer.flush();
  assert.equal(coalescer.writes, 1);
  coalescer.close();
});

Deno.test("parseFault() reads the annotation value and refuses unknown kinds", () => {
  assert.deepEqual(parseFault("OOMKilled"), { kind: "OOMKilled" });
  assert.deepEqual(parseFault("ErrImagePull:executor-1"), {
    kind: "ErrImagePull",
    container: "executor-1",
  });
  assert.deepEqual(parseFault("StuckPending:x"), { kind: "StuckPending" });
  assert.throws(() => parseFault("Meteor"), (e) => e instanceof NodeAgentError);
});

const ENABLED = requireControlPlane() &&
  await requireHostRuntime();

/** Admin REST calls to the apiserver. */
class Admin {
  readonly #cp: ControlPlane;
  readonly #client: Deno.HttpClient;

  constructor(cp: ControlPlane) {
    this.#cp = cp;
    this.#client = Deno.createHttpClient({ caCerts: [cp.caPem] });
  }

  async call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; text: string }> {
    const response = await fetch(`${this.#cp.server}${path}`, {
      method,
      client: this.#client,
      headers: {
        authorization: `Bearer ${this.#cp.adminToken}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(20_000),
    });
    return { status: response.status, text: await response.text() };
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, text } = await this.call(method, path, body);
    if (status >= 300) throw new Error(`${method} ${path}: HTTP ${status} ${text}`);
    return JSON.parse(text) as T;
  }

  pod(name: string): Promise<V1Pod> {
    return this.json<V1Pod>("GET", `/api/v1/namespaces/${NAMESPACE}/pods/${name}`);
  }

  close(): void {
    this.#client.close();
  }
}

/** Polls `check` until it returns a value other than undefined, or fails at the deadline. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (true) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function containerStatus(pod: V1Pod, name: string): V1ContainerStatus | undefined {
  return [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]
    .find((s) => s.name === name);
}

interface Env {
  cp: ControlPlane;
  admin: Admin;
  agent: NodeAgent;
  files: string;
}

/** Builds the task's pod and ConfigMap as `serve` would with a file allow-list. */
function taskObjects(
  env: Env,
  task: TesTask & { id: string },
  extra: { annotations?: Record<string, string>; node?: string } = {},
) {
  const objects = buildTaskPod(task, {
    namespace: NAMESPACE,
    ...hostTransporterSetup([env.files]).pod,
    ...(extra.node ? { nodeSelector: { "kubernetes.io/hostname": extra.node } } : {}),
  });
  if (extra.annotations) {
    objects.pod.metadata = {
      ...objects.pod.metadata,
      annotations: { ...objects.pod.metadata?.annotations, ...extra.annotations },
    };
  }
  return objects;
}

/** Creates the pod, then its ConfigMap owned by it (the orchestrator's order); returns the pod. */
async function submit(
  env: Env,
  task: TesTask & { id: string },
  extra: { annotations?: Record<string, string>; node?: string; withoutConfigMap?: boolean } = {},
): Promise<{ pod: V1Pod; createConfigMap: () => Promise<void> }> {
  const { pod, configMap } = taskObjects(env, task, extra);
  const created = await env.admin.json<V1Pod>(
    "POST",
    `/api/v1/namespaces/${NAMESPACE}/pods`,
    pod,
  );
  const createConfigMap = async (): Promise<void> => {
    configMap.metadata = {
      ...configMap.metadata,
      ownerReferences: [{
        apiVersion: "v1",
        kind: "Pod",
        name: created.metadata?.name ?? "",
        uid: created.metadata?.uid ?? "",
      }],
    };
    await env.admin.json("POST", `/api/v1/namespaces/${NAMESPACE}/configmaps`, configMap);
  };
  if (!extra.withoutConfigMap) await createConfigMap();
  return { pod: created, createConfigMap };
}

function finished(env: Env, name: string): Promise<V1Pod> {
  return eventually(`pod ${name} to finish`, async () => {
    const pod = await env.admin.pod(name);
    const phase = pod.status?.phase;
    return phase === "Succeeded" || phase === "Failed" ? pod : undefined;
  });
}

Deno.test({
  name: "startNodeAgent() runs task pods bound to fake Nodes like a kubelet",
  ignore: !ENABLED,
  async fn(t) {
    const cp = await startControlPlane({ nodes: ["node-1", "node-2"] });
    const tmp = await Deno.makeTempDir({ prefix: "planetary-node-agent-test-" });
    const admin = new Admin(cp);
    let agent: NodeAgent | undefined;
    try {
      const files = `${tmp}/files`;
      await Deno.mkdir(files);
      agent = await startNodeAgent({
        kubeconfigPath: cp.adminKubeconfigPath,
        nodeNames: cp.nodeNames,
        workDir: `${tmp}/agent`,
        namespace: NAMESPACE,
        statusIntervalMs: 50,
        // As serve shares them: source, Deno cache and storage under /planetary, where no task
        // path can shadow them (this checkout may well live under /tmp).
        sharedHostPaths: hostTransporterSetup([files]).sharedHostPaths,
        faults: { "task-oom": { kind: "OOMKilled" } },
      });
      const env: Env = { cp, admin, agent, files };
      await admin.json("POST", "/api/v1/namespaces", { metadata: { name: NAMESPACE } });
      await eventually("the namespace's default ServiceAccount", async () =>
        (await admin.call(
            "GET",
            `/api/v1/namespaces/${NAMESPACE}/serviceaccounts/default`,
          )).status === 200 || undefined);

      await t.step(
        "Nodes are registered with InternalIP 127.0.0.1 and the kubelet port",
        async () => {
          const node = await admin.json<V1Node>("GET", "/api/v1/nodes/node-1");
          assert.deepEqual(node.status?.addresses, [{ type: "InternalIP", address: "127.0.0.1" }]);
          assert.equal(node.status?.daemonEndpoints?.kubeletEndpoint?.Port, agent?.kubeletPort);
        },
      );

      await t.step(
        "a task pod waits for its ConfigMap, runs, succeeds, logs via apiserver",
        async () => {
          const { createConfigMap } = await submit(env, {
            id: "hello",
            executors: [{
              image: "debian:12",
              command: ["sh", "-c", "cat /data/in.txt && echo hi && echo hi > /data/out.txt"],
            }],
            inputs: [{ path: "/data/in.txt", content: "hello input\n" }],
            outputs: [{ path: "/data/out.txt", url: `file://${files}/out.txt` }],
          }, { withoutConfigMap: true });
          // without its ConfigMap the pod is Pending, containers waiting: it cannot have started
          const waiting = await eventually("the agent's ContainerCreating status", async () => {
            const pod = await admin.pod("task-hello");
            return pod.status?.startTime ? pod : undefined;
          });
          assert.equal(waiting.status?.phase, "Pending");
          assert.ok(containerStatus(waiting, "inputs")?.state?.waiting);
          assert.ok(containerStatus(waiting, "outputs")?.state?.waiting);
          await createConfigMap();

          const pod = await finished(env, "task-hello");
          assert.equal(pod.status?.phase, "Succeeded", JSON.stringify(pod.status));
          assert.deepEqual(pod.status?.initContainerStatuses?.map((s) => s.name), [
            "inputs",
            "executor-0",
          ]);
          const [inputs, executor] = (pod.status?.initContainerStatuses ?? []).map((s) =>
            s.state?.terminated
          );
          assert.equal(inputs?.exitCode, 0);
          assert.equal(inputs?.reason, "Completed");
          assert.equal(executor?.exitCode, 0);
          assert.ok(inputs?.finishedAt && executor?.startedAt);
          assert.ok(
            Date.parse(String(inputs.finishedAt)) <= Date.parse(String(executor.startedAt)),
            "executor-0 started after inputs finished",
          );
          const outputs = containerStatus(pod, "outputs")?.state?.terminated;
          assert.equal(outputs?.exitCode, 0);
          assert.equal(pod.spec?.nodeName?.startsWith("node-"), true);

          const log = await admin.call(
            "GET",
            `/api/v1/namespaces/${NAMESPACE}/pods/task-hello/log?container=outputs`,
          );
          assert.equal(log.status, 200, log.text);
          const line = log.text.split("\n").find((l) => l.startsWith(REPORT_PREFIX));
          assert.ok(line, `a report line in: ${log.text}`);
          const report = JSON.parse(line.slice(REPORT_PREFIX.length)) as TransferReport;
          assert.equal(report.executors[0]?.exit_code, 0);
          assert.equal(report.executors[0]?.stdout, "hello input\nhi\n");
          assert.deepEqual(report.outputs.map((o) => o.url), [`file://${files}/out.txt`]);
          assert.equal(await Deno.readTextFile(`${files}/out.txt`), "hi\n");

          const tail = await admin.call(
            "GET",
            `/api/v1/namespaces/${NAMESPACE}/pods/task-hello/log?container=outputs&tailLines=1`,
          );
          assert.equal(tail.status, 200);
          assert.equal(tail.text.trimEnd().split("\n").length, 1);
        },
      );

      await t.step(
        "KubernetesBackend.readLog() with tailLines finds the report past logLimitBytes",
        async () => {
          const whole = (await admin.call(
            "GET",
            `/api/v1/namespaces/${NAMESPACE}/pods/task-hello/log?container=outputs`,
          )).text;
          // stdout (the report) and stderr (progress, the summary) are two streams: the report is
          // near the end of the merged log, not always its last line.
          const lines = whole.trimEnd().split("\n");
          const at = lines.findLastIndex((line) => line.startsWith(REPORT_PREFIX));
          assert.ok(at > 0, `progress lines before the report: ${whole}`);
          const reportLine = lines[at]!;
          const tailLines = lines.length - at;
          // a limit that holds the report line but not the whole log: only the tail finds it
          const backend = new KubernetesBackend({
            kubeconfigPath: cp.adminKubeconfigPath,
            namespace: NAMESPACE,
            logLimitBytes: reportLine.length + 1,
            log: () => {},
          });
          try {
            const head = await backend.readLog("task-hello", "outputs");
            assert.equal(parseTransferReport(head), undefined, head);
            const tail = await backend.readLog("task-hello", "outputs", { tailLines });
            assert.equal(parseTransferReport(tail)?.executors[0]?.exit_code, 0, tail);
          } finally {
            await backend.close();
          }
        },
      );

      await t.step("ErrImagePull: the executor waits in ImagePullBackOff, never runs", async () => {
        await submit(env, {
          id: "pull",
          executors: [{ image: "no-such-image:1", command: ["sh", "-c", "echo ran"] }],
        }, { annotations: { [FAULT_ANNOTATION]: "ErrImagePull" } });
        const pod = await eventually("ImagePullBackOff", async () => {
          const pod = await admin.pod("task-pull");
          const reason = containerStatus(pod, "executor-0")?.state?.waiting?.reason;
          return reason === "ImagePullBackOff" ? pod : undefined;
        });
        assert.equal(pod.status?.phase, "Pending");
        assert.match(
          containerStatus(pod, "executor-0")?.state?.waiting?.message ?? "",
          /no-such-image:1/,
        );
        assert.equal(containerStatus(pod, "inputs")?.state?.terminated?.exitCode, 0);
        assert.ok(containerStatus(pod, "outputs")?.state?.waiting);
      });

      await t.step(
        "OOMKilled: the executor is terminated with exit 137, the pod fails",
        async () => {
          await submit(env, {
            id: "oom",
            executors: [{ image: "debian:12", command: ["sh", "-c", "echo ran"] }],
          });
          const pod = await finished(env, "task-oom");
          assert.equal(pod.status?.phase, "Failed");
          const executor = containerStatus(pod, "executor-0")?.state?.terminated;
          assert.equal(executor?.reason, "OOMKilled");
          assert.equal(executor?.exitCode, 137);
          assert.ok(containerStatus(pod, "outputs")?.state?.waiting, "outputs never ran");
        },
      );

      await t.step("Evicted: the pod fails with reason Evicted", async () => {
        agent?.injectFault("task-evict", { kind: "Evicted" });
        await submit(env, {
          id: "evict",
          executors: [{ image: "debian:12", command: ["sleep", "600"] }],
        });
        const pod = await finished(env, "task-evict");
        assert.equal(pod.status?.phase, "Failed");
        assert.equal(pod.status?.reason, "Evicted");
        assert.match(pod.status?.message ?? "", /low on resource/);
        assert.equal(containerStatus(pod, "executor-0")?.state?.terminated?.exitCode, 137);
        const disruption = pod.status?.conditions?.find((c) => c.type === "DisruptionTarget");
        assert.equal(disruption?.status, "True");
      });

      await t.step(
        "deleting a running pod kills it and the agent confirms the deletion",
        async () => {
          await submit(env, {
            id: "sleeper",
            executors: [{ image: "debian:12", command: ["sleep", "600"] }],
          });
          await eventually("executor-0 running", async () => {
            const pod = await admin.pod("task-sleeper");
            return containerStatus(pod, "executor-0")?.state?.running ? true : undefined;
          });
          // default grace period (30 s): only the agent's grace-0 delete can remove it sooner
          await admin.json("DELETE", `/api/v1/namespaces/${NAMESPACE}/pods/task-sleeper`);
          await eventually(
            "the pod to be gone",
            async () =>
              (await admin.call("GET", `/api/v1/namespaces/${NAMESPACE}/pods/task-sleeper`))
                  .status === 404 || undefined,
          );
        },
      );

      await t.step("StuckPending: the pod stays Pending with waiting containers", async () => {
        await submit(env, {
          id: "stuck",
          executors: [{ image: "debian:12", command: ["sh", "-c", "echo ran"] }],
        }, { annotations: { [FAULT_ANNOTATION]: "StuckPending" } });
        const pod = await eventually("the agent's status", async () => {
          const pod = await admin.pod("task-stuck");
          return pod.status?.startTime ? pod : undefined;
        });
        assert.equal(pod.status?.phase, "Pending");
        assert.equal(containerStatus(pod, "inputs")?.state?.waiting?.reason, "PodInitializing");
        await admin.json("DELETE", `/api/v1/namespaces/${NAMESPACE}/pods/task-stuck`);
        await eventually(
          "the stuck pod to be gone",
          async () =>
            (await admin.call("GET", `/api/v1/namespaces/${NAMESPACE}/pods/task-stuck`))
                .status === 404 || undefined,
        );
      });

      await t.step("NodeLost: the pod's status freezes while other pods go on", async () => {
        await submit(env, {
          id: "vanish",
          executors: [{ image: "debian:12", command: ["sh", "-c", "echo ran"] }],
        }, { annotations: { [FAULT_ANNOTATION]: "NodeLost" } });
        await eventually("executor-0 reported running", async () => {
          const pod = await admin.pod("task-vanish");
          return containerStatus(pod, "executor-0")?.state?.running ? true : undefined;
        });
        await submit(env, {
          id: "after",
          executors: [{ image: "debian:12", command: ["sh", "-c", "echo ran"] }],
        });
        assert.equal((await finished(env, "task-after")).status?.phase, "Succeeded");
        const pod = await admin.pod("task-vanish");
        assert.equal(pod.status?.phase, "Pending");
        assert.ok(containerStatus(pod, "executor-0")?.state?.running, "still shown running");
        await admin.json("DELETE", `/api/v1/namespaces/${NAMESPACE}/pods/task-vanish`, {
          gracePeriodSeconds: 0,
        });
      });

      await t.step("loseNode(): the Node turns Unknown and its pod's status freezes", async () => {
        await submit(env, {
          id: "lost",
          executors: [{ image: "debian:12", command: ["sleep", "600"] }],
        }, { node: "node-2" });
        await eventually("executor-0 running on node-2", async () => {
          const pod = await admin.pod("task-lost");
          return containerStatus(pod, "executor-0")?.state?.running ? true : undefined;
        });
        await agent?.loseNode("node-2");
        const node = await admin.json<V1Node>("GET", "/api/v1/nodes/node-2");
        const ready = node.status?.conditions?.find((c) => c.type === "Ready");
        assert.equal(ready?.status, "Unknown");
        // frozen as last written: an executor is an init container, so the pod is Pending
        const pod = await admin.pod("task-lost");
        assert.equal(pod.status?.phase, "Pending");
        assert.ok(containerStatus(pod, "executor-0")?.state?.running);
        await admin.json("DELETE", `/api/v1/namespaces/${NAMESPACE}/pods/task-lost`, {
          gracePeriodSeconds: 0,
        });
      });
      console.log(`node agent: ${agent.statusWrites()} status writes in all`);
    } catch (error) {
      console.error(cp.logTails());
      throw error;
    } finally {
      await agent?.stop();
      admin.close();
      await cp.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
