/**
 * End-to-end suite of Planetary on Kubernetes: every case of tests/_e2e_cases.ts, plus the
 * Kubernetes-only ones (hostile names accepted by the apiserver, cancel at each phase leaving
 * nothing behind, adoption after a kill -9, apiserver restart with a 410, failures produced by
 * the real kubelet), run against a real apiserver and a REAL NODE (a kubelet with a private
 * containerd, tests/_harness/real_node.ts) with the services as subprocesses
 * (tests/_harness/cluster.ts). The transporter runs from its image in every task pod; the
 * executor images are static busybox images imported under the names the cases use.
 *
 * The failure cases come from the kubelet, not from our code: an image that is not there
 * (ErrImagePull, then the monitor's pull timeout), a pod no node can take (the scheduler's
 * Unschedulable, then the monitor's Pending timeout), an executor over its memory limit
 * (judged by the reason OOMKilled), a task over its time limit (`activeDeadlineSeconds`:
 * DeadlineExceeded), and the node going away (the kubelet stopped: the node-lifecycle
 * controller taints the Node unreachable after its grace period and the taint-eviction
 * controller evicts the pod after its toleration: PREEMPTED with the reason; then the kubelet
 * comes back and the pod is gone).
 *
 * Pods on the real node cannot reach 127.0.0.1 of the test process: a server that a task
 * downloads from listens on the node's address (`infra.podReachableHost`), so the shared case
 * "cancel while downloading an input" runs here in that form.
 *
 * One control plane, one node and one PostgreSQL serve several deployments, each in its own
 * namespace and database, all at the same time: the main one runs the independent cases
 * concurrently; the one-slot case, each restart case and the adoption case get their own. The
 * failure cases run after that busy phase (their monitor's short Pending timeout would take a
 * pod that is merely slow to start on a loaded machine for a stuck one), the node going away
 * alone after them, and the apiserver restart comes last, alone, since it interrupts every
 * deployment.
 *
 * `ctx.restart(signal)` of the restart cases stops every orchestrator of the deployment with
 * the signal and starts them again (same owner ids): the API is stateless and the pods keep
 * running in the cluster, so the orchestrators are what a restart means here.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { E2E_CASES, type E2eCase, type E2eContext } from "./_e2e_cases.ts";
import {
  type ClusterInfra,
  type PlanetaryCluster,
  type PlanetaryOptions,
  requirePlanetaryCluster,
  startClusterInfra,
  startPlanetary,
} from "./_harness/cluster.ts";
import { findProcesses, processAlive } from "./_harness/serve.ts";
import { podName } from "../src/pod/pod_name.ts";
import type { TesClient } from "../src/client/mod.ts";
import type { TesState, TesTask } from "../src/tes/model.ts";
import { isTerminal } from "../src/tes/state.ts";

const ENABLED = await requirePlanetaryCluster("real");

/** Longest time a quick task may take (the 2-core CI machine runs many at once). */
const TASK_DEADLINE_MS = 180_000;
const ALPINE = "alpine:3.20";
/**
 * Shared cases that run here in a Kubernetes form (`cancelCases`): the download needs a server
 * the pods reach; the running task's processes outlive CANCELED by the pod's grace period (the
 * state is CANCELED at the pod's deletionTimestamp, the kubelet then stops the containers), and
 * the kubelet reports RUNNING a moment after the processes start, so that case waits for the
 * state and judges the processes once the pod is gone.
 */
const SHARED_IN_KUBERNETES_FORM: readonly string[] = [
  "cancel while downloading an input ends CANCELED and the download stops",
  "cancel while running ends CANCELED and kills every process of the task",
];

async function poll<T>(
  what: string,
  check: () => Promise<T | undefined>,
  deadlineMs = TASK_DEADLINE_MS,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function waitDone(client: TesClient, id: string, deadlineMs = TASK_DEADLINE_MS): Promise<TesTask> {
  return client.waitForTask(id, { intervalMs: 100, signal: AbortSignal.timeout(deadlineMs) });
}

function waitState(client: TesClient, id: string, states: TesState[]): Promise<TesState> {
  return poll(`task ${id} to reach ${states.join("|")}`, async () => {
    const state = (await client.getTask(id, "MINIMAL")).state ?? "UNKNOWN";
    if (states.includes(state)) return state;
    if (isTerminal(state)) throw new Error(`task ${id} ended ${state}, expected ${states}`);
    return undefined;
  });
}

function contextOf(cluster: PlanetaryCluster): E2eContext {
  return {
    client: cluster.client,
    storageDir: cluster.storageDir,
    fileUrl: cluster.fileUrl,
    taskDeadlineMs: TASK_DEADLINE_MS,
    async restart(signal) {
      const n = cluster.orchestrators.length;
      await Promise.all(cluster.orchestrators.map((_, i) => cluster.killOrchestrator(i, signal)));
      await Promise.all(Array.from({ length: n }, (_, i) => cluster.startOrchestrator(i)));
    },
  };
}

async function status(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (error) {
    if (error instanceof k8s.ApiException) return error.code;
    throw error;
  }
}

/** Polls, as admin, until neither the task's pod nor its ConfigMap exists. */
async function assertNothingLeft(cluster: PlanetaryCluster, id: string): Promise<void> {
  const { core } = cluster.infra.admin;
  const name = podName(id);
  const namespace = cluster.namespace;
  await poll(`pod and ConfigMap ${namespace}/${name} to be gone`, async () => {
    const pod = await status(core.readNamespacedPod({ name, namespace }));
    const configMap = await status(core.readNamespacedConfigMap({ name, namespace }));
    return pod === 404 && configMap === 404 ? true : undefined;
  }, 60_000);
}

/** Records every pod uid seen in a namespace (as admin), to prove no task got two pods. */
class PodRecorder {
  readonly uids = new Map<string, Set<string>>();
  #abort = new AbortController();
  #done: Promise<void>;

  constructor(cluster: PlanetaryCluster) {
    const { core } = cluster.infra.admin;
    this.#done = (async () => {
      while (!this.#abort.signal.aborted) {
        const list = await core.listNamespacedPod({ namespace: cluster.namespace }).catch(() =>
          undefined
        );
        for (const pod of list?.items ?? []) {
          const name = pod.metadata?.name ?? "";
          const set = this.uids.get(name) ?? new Set<string>();
          set.add(pod.metadata?.uid ?? "");
          this.uids.set(name, set);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#done;
  }
}

/** Runs `cases` one after the other... or all at once (`concurrent`) as steps. */
async function runCases(
  t: Deno.TestContext,
  cases: readonly E2eCase[],
  ctx: E2eContext,
  concurrent: boolean,
): Promise<boolean> {
  const step = (c: E2eCase): Promise<boolean> =>
    t.step({
      name: c.name,
      fn: () => c.run(ctx),
      sanitizeOps: false,
      sanitizeResources: false,
      sanitizeExit: false,
    });
  if (concurrent) return !(await Promise.all(cases.map(step))).includes(false);
  let ok = true;
  for (const c of cases) ok = (await step(c)) && ok;
  return ok;
}

// ---- Kubernetes-only cases --------------------------------------------------------------------

const HOSTILE = [
  `it's "quoted" \`back\` $(echo injected) \${HOME} $HOME; rm -rf / #`,
  "unicode ✓ Ünïcödé 日本語 🚀 \u202e",
  "new\nline\r\n\ttab",
  "x".repeat(2048), // the longest name and tag value the API accepts (TES_STRING_LIMITS)
  "--leading-dashes",
  "{{ .Values }} ${{ x }} %s %n",
];

/** Tasks whose name, tags and env hold hostile text: the apiserver accepts the pod, COMPLETE. */
const hostileCase: E2eCase = {
  name: "pods of tasks with hostile names, tags and env values are accepted and COMPLETE",
  async run(ctx) {
    const ids = await Promise.all(HOSTILE.map((text, i) =>
      ctx.client.createTask({
        name: text,
        description: text,
        tags: { [text.slice(0, 200)]: text, plain: text, empty: "" },
        executors: [{
          image: ALPINE,
          command: ["sh", "-c", 'printf "%s" "$HOSTILE"'],
          env: { HOSTILE: text, [`V${i}`]: text },
        }],
      })
    ));
    for (const [i, id] of ids.entries()) {
      const task = await waitDone(ctx.client, id);
      assert.equal(task.state, "COMPLETE", JSON.stringify(task).slice(0, 2000));
      assert.equal(task.name, HOSTILE[i]);
      assert.equal(task.logs?.[0]?.logs[0]?.stdout, HOSTILE[i]);
    }
  },
};

function cancelCases(cluster: PlanetaryCluster): E2eCase[] {
  return [
    {
      name: "cancel while INITIALIZING (downloading) stops the download, leaves no pod and " +
        "no ConfigMap",
      async run(ctx) {
        const requested = Promise.withResolvers<void>();
        let disconnected = false;
        let stalled: ReadableStreamDefaultController<Uint8Array> | undefined;
        const hostname = cluster.infra.podReachableHost;
        const server = Deno.serve({ hostname, port: 0, onListen() {} }, () => {
          requested.resolve();
          const body = new ReadableStream<Uint8Array>({
            start(controller) {
              stalled = controller;
              controller.enqueue(new TextEncoder().encode("a few bytes, then nothing"));
            },
            cancel() {
              disconnected = true;
            },
          });
          return new Response(body, { headers: { "content-length": "1000000" } });
        });
        try {
          const id = await ctx.client.createTask({
            inputs: [{ url: `http://${hostname}:${server.addr.port}/big`, path: "/in/big" }],
            executors: [{ image: ALPINE, command: ["echo", "must not run"] }],
          });
          await requested.promise;
          await waitState(ctx.client, id, ["INITIALIZING"]);
          await ctx.client.cancelTask(id);
          const task = await waitDone(ctx.client, id);
          assert.equal(task.state, "CANCELED", JSON.stringify(task));
          assert.deepEqual(task.logs?.[0]?.logs ?? [], []);
          await assertNothingLeft(cluster, id);
          await poll(
            "the stalled download to be dropped",
            () => Promise.resolve(disconnected ? true : undefined),
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
      name: "cancel while RUNNING kills every process of the task, leaves no pod and no " +
        "ConfigMap, uploads nothing",
      async run(ctx) {
        const marker = crypto.randomUUID();
        const dir = `cancel-running-${marker}`;
        const id = await ctx.client.createTask({
          outputs: [{ url: ctx.fileUrl(`${dir}/after`), path: "/out/after" }],
          executors: [
            {
              image: ALPINE,
              command: ["sh", "-c", "sleep 300 & wait; echo late > /out/after"],
              env: { E2E_MARKER: marker },
            },
            { image: ALPINE, command: ["sh", "-c", "echo never > /out/after"] },
          ],
        });
        await waitState(ctx.client, id, ["RUNNING"]);
        const pids = await poll("the task's processes to run", async () => {
          const found = await findProcesses((p) => p.environ.includes(`E2E_MARKER=${marker}`));
          return found.length >= 2 ? found : undefined;
        });
        const canceled = Date.now();
        await ctx.client.cancelTask(id);
        const task = await waitDone(ctx.client, id);
        assert.equal(task.state, "CANCELED", JSON.stringify(task));
        await assertNothingLeft(cluster, id);
        // for the notes: the pod's grace period (a shell PID 1 ignores SIGTERM) dominates
        console.error(`cancel of a RUNNING task -> pod gone: ${Date.now() - canceled} ms`);
        const alive = pids.filter((pid) => processAlive(pid));
        assert.deepEqual(alive, [], `processes of a CANCELED task still run: ${alive}`);
        const after = await Deno.stat(`${ctx.storageDir}/${dir}/after`).then(
          () => true,
          () => false,
        );
        assert.equal(after, false, "an output of the canceled task was uploaded");
      },
    },
  ];
}

function cancelQueuedCase(cluster: PlanetaryCluster): E2eCase {
  return {
    name: "cancel while QUEUED leaves no pod and no ConfigMap (and the blocker's go too)",
    async run(ctx) {
      const blocker = await ctx.client.createTask({
        executors: [{ image: ALPINE, command: ["sleep", "300"] }],
      });
      await waitState(ctx.client, blocker, ["RUNNING"]);
      const queued = await ctx.client.createTask({
        executors: [{ image: ALPINE, command: ["echo", "never"] }],
      });
      assert.equal((await ctx.client.getTask(queued)).state, "QUEUED");
      await ctx.client.cancelTask(queued);
      assert.equal((await waitDone(ctx.client, queued)).state, "CANCELED");
      await ctx.client.cancelTask(blocker);
      assert.equal((await waitDone(ctx.client, blocker)).state, "CANCELED");
      await assertNothingLeft(cluster, queued);
      await assertNothingLeft(cluster, blocker);
    },
  };
}

/** kill -9 of orch-1 while its tasks run: orch-2 adopts them after the lease. */
function adoptionCase(cluster: PlanetaryCluster): E2eCase {
  return {
    name: "kill -9 of one of two orchestrators: the other adopts its tasks, no duplicate pods",
    async run(ctx) {
      const recorder = new PodRecorder(cluster);
      try {
        // Only orch-1 runs while the tasks are claimed, so that it holds them all (with two
        // running, orch-2 may claim every one; its tasks of other cases are adopted by orch-1
        // meanwhile, which is the same adoption).
        await cluster.killOrchestrator(1, "SIGTERM");
        const ids: string[] = [];
        for (let i = 0; i < 8; i++) {
          ids.push(
            await ctx.client.createTask({
              name: `adopt-${i}`,
              outputs: [{ url: ctx.fileUrl(`adopt/${i}`), path: "/out/n" }],
              executors: [{
                image: ALPINE,
                command: ["sh", "-c", `sleep 40; echo ${i} > /out/n; echo ${i}`],
              }],
            }),
          );
        }
        // Each task is seen RUNNING, or already COMPLETE on a busy machine (the waits run one
        // after another); the check below needs only some of them still held by orch-1.
        for (const id of ids) await waitState(ctx.client, id, ["RUNNING", "COMPLETE"]);
        await cluster.startOrchestrator(1);
        const killed = await cluster.killOrchestrator(0, "SIGKILL");
        // the tasks orch-1 created a pod for and had not finished when it died
        const log = cluster.orchestrators[0]!.log();
        const created = ids.filter((id) =>
          log.includes(`"pod created","task_id":"${id}"`) &&
          !log.includes(`"task finished","task_id":"${id}"`)
        );
        assert.ok(created.length > 0, "orch-1 held none of the running tasks: nothing to adopt");
        assert.equal(killed.signal, "SIGKILL");
        const tasks = await Promise.all(ids.map((id) => waitDone(ctx.client, id)));
        for (const [i, task] of tasks.entries()) {
          assert.equal(task.state, "COMPLETE", JSON.stringify(task));
          assert.equal(task.logs?.[0]?.logs[0]?.stdout, `${i}\n`);
          assert.equal(await Deno.readTextFile(`${ctx.storageDir}/adopt/${i}`), `${i}\n`);
        }
        const second = cluster.orchestrators[1]!.log();
        for (const id of created) {
          assert.match(second, new RegExp(`"task finished","task_id":"${id}"`));
          assert.doesNotMatch(second, new RegExp(`"pod created","task_id":"${id}"`));
        }
        await recorder.stop();
        for (const id of ids) {
          assert.equal(recorder.uids.get(podName(id))?.size ?? 0, 1, `pods of ${id}`);
        }
      } finally {
        await recorder.stop();
        if (cluster.orchestrators[0]?.exited) await cluster.startOrchestrator(0);
        if (cluster.orchestrators[1]?.exited) await cluster.startOrchestrator(1);
      }
    },
  };
}

/** The system logs of a task, one string. */
function systemLogsOf(task: TesTask): string {
  return (task.logs ?? []).flatMap((l) => l.system_logs ?? []).join("\n");
}

/**
 * Failures the real kubelet and scheduler produce: a missing image, a pod no node can take and
 * an executor over its memory limit, each with its reason in system_logs.
 */
function faultCases(cluster: PlanetaryCluster): E2eCase {
  return {
    name: "a missing image and a pod no node can take end SYSTEM_ERROR, an executor over its " +
      "memory limit EXECUTOR_ERROR (OOMKilled), each with its reason in system_logs",
    async run(ctx) {
      const missing = "planetary-test/not-here:1";
      const pull = await ctx.client.createTask({
        name: "missing image",
        executors: [{ image: missing, command: ["echo", "never"] }],
      });
      const unschedulable = await ctx.client.createTask({
        name: "too big for any node",
        resources: { cpu_cores: 64 },
        executors: [{ image: ALPINE, command: ["echo", "never"] }],
      });
      const oom = await ctx.client.createTask({
        name: "over its memory limit",
        resources: { ram_gb: 0.032 },
        // a 256 MiB buffer in a 32 MB container; the shell then exits 0, so only the reason
        // tells (as on any kubelet)
        executors: [{
          image: ALPINE,
          command: ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=256M count=1; echo survived"],
        }],
      });
      const expect: [string, TesState, RegExp][] = [
        [pull, "SYSTEM_ERROR", new RegExp(`${missing}.*(ErrImagePull|ImagePullBackOff)`)],
        [unschedulable, "SYSTEM_ERROR", /Pending.*(Insufficient cpu|nodes are available)/],
        [oom, "EXECUTOR_ERROR", /OOMKilled/],
      ];
      for (const [id, state, reason] of expect) {
        const task = await waitDone(ctx.client, id);
        assert.equal(task.state, state, JSON.stringify(task));
        assert.match(systemLogsOf(task), reason, JSON.stringify(task));
        await assertNothingLeft(cluster, id);
      }
    },
  };
}

/** A deployment whose pods have `activeDeadlineSeconds`: the kubelet stops a task over it. */
function deadlineCase(cluster: PlanetaryCluster): E2eCase {
  return {
    name: "a task over its time limit ends SYSTEM_ERROR with DeadlineExceeded",
    async run(ctx) {
      const id = await ctx.client.createTask({
        executors: [{ image: ALPINE, command: ["sleep", "300"] }],
      });
      await waitState(ctx.client, id, ["RUNNING", "SYSTEM_ERROR"]);
      const running = Date.now();
      const task = await waitDone(ctx.client, id);
      assert.equal(task.state, "SYSTEM_ERROR", JSON.stringify(task));
      assert.match(systemLogsOf(task), /time limit.*DeadlineExceeded/, JSON.stringify(task));
      console.error(`deadline: RUNNING seen -> SYSTEM_ERROR ${Date.now() - running} ms`);
      await assertNothingLeft(cluster, id);
    },
  };
}

/**
 * The node goes away (its kubelet stops; the containers keep running in containerd): after the
 * node-lifecycle controller's grace period the Node is tainted unreachable and the pod evicted
 * once its toleration passes; the task ends PREEMPTED with the reason. Then the kubelet comes
 * back and the pod is gone.
 */
function nodeLostCase(cluster: PlanetaryCluster): E2eCase {
  return {
    name: "the node going away (kubelet stopped) ends a RUNNING task PREEMPTED with the reason",
    async run(ctx) {
      const node = cluster.realNode;
      assert.ok(node, "this case needs the real node");
      const id = await ctx.client.createTask({
        executors: [{ image: ALPINE, command: ["sleep", "600"] }],
      });
      await waitState(ctx.client, id, ["RUNNING"]);
      const stopped = Date.now();
      await node.stopKubelet();
      try {
        // the controller's default grace period (50 s) plus the toleration and the monitor
        const task = await waitDone(ctx.client, id, 300_000);
        assert.equal(task.state, "PREEMPTED", JSON.stringify(task));
        assert.match(systemLogsOf(task), /preempted.*DeletionByTaintManager/, JSON.stringify(task));
        console.error(`node lost: kubelet stopped -> PREEMPTED ${Date.now() - stopped} ms`);
      } finally {
        await node.startKubelet();
      }
      await assertNothingLeft(cluster, id);
      // the node is usable again
      const after = await ctx.client.createTask({
        executors: [{ image: ALPINE, command: ["echo", "back"] }],
      });
      const task = await waitDone(ctx.client, after, 300_000);
      assert.equal(task.state, "COMPLETE", JSON.stringify(task));
    },
  };
}

/** etcd v3 JSON gateway call. */
async function etcd(
  cluster: PlanetaryCluster,
  path: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const response = await fetch(`${cluster.controlPlane.etcdUrl}/v3/${path}`, {
    method: "POST",
    body: JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`etcd ${path}: ${JSON.stringify(json)}`);
  return json;
}

/** Restarts the apiserver (compacting etcd meanwhile: the watches resume with a 410). */
function apiserverRestartCase(cluster: PlanetaryCluster): E2eCase {
  return {
    name: "an apiserver restart and a 410 while tasks run lose no transition",
    async run(ctx) {
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        ids.push(
          await ctx.client.createTask({
            outputs: [{ url: ctx.fileUrl(`apiserver/${i}`), path: "/out/n" }],
            executors: [{ image: ALPINE, command: ["sh", "-c", `sleep 4; echo ${i} > /out/n`] }],
          }),
        );
      }
      for (const id of ids) await waitState(ctx.client, id, ["RUNNING"]);
      // a task still queued when the apiserver goes away
      const late = await ctx.client.createTask({
        executors: [{ image: ALPINE, command: ["echo", "late"] }],
      });
      const logged = cluster.orchestrators.map((p) => p?.log().length ?? 0);
      await cluster.controlPlane.restartApiserver({
        whileDown: async () => {
          // a write the watches never see, then compaction up to it: their resourceVersion is
          // gone for good
          const key = btoa("/planetary-test/compaction-marker");
          const put = await etcd(cluster, "kv/put", { key, value: btoa(String(Date.now())) });
          const revision = (put.header as { revision: string }).revision;
          await etcd(cluster, "kv/compaction", { revision, physical: true });
        },
      });
      for (const [i, id] of ids.entries()) {
        const task = await waitDone(ctx.client, id);
        assert.equal(task.state, "COMPLETE", JSON.stringify(task));
        assert.equal(await Deno.readTextFile(`${ctx.storageDir}/apiserver/${i}`), `${i}\n`);
      }
      const lateTask = await waitDone(ctx.client, late);
      assert.equal(lateTask.state, "COMPLETE", JSON.stringify(lateTask));
      assert.equal(lateTask.logs?.[0]?.logs[0]?.stdout, "late\n");
      const after = cluster.orchestrators.map((p, i) => p?.log().slice(logged[i]) ?? "").join("");
      assert.match(after, /410 Gone/, "no orchestrator watch saw a 410");
    },
  };
}

// ---- the suite --------------------------------------------------------------------------------

Deno.test({
  name: "Planetary on Kubernetes (real apiserver, real kubelet) runs TES tasks end to end",
  ignore: !ENABLED,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const plain = E2E_CASES.filter((c) => !c.needs && !SHARED_IN_KUBERNETES_FORM.includes(c.name));
    const oneSlot = E2E_CASES.filter((c) => c.needs?.maxTasks === 1 && !c.needs.restart);
    const restarts = E2E_CASES.filter((c) => c.needs?.restart);
    const started = Date.now();
    const infra: ClusterInfra = await startClusterInfra({ node: "real" });
    const deployments: PlanetaryCluster[] = [];
    let failed = false;
    const deploy = async (options: PlanetaryOptions): Promise<PlanetaryCluster> => {
      const cluster = await startPlanetary(infra, options);
      deployments.push(cluster);
      return cluster;
    };
    const monitorArgs = ["--interval-s", "2"];
    try {
      const [main, one, faults, deadline, nodeLost, adopt, ...restartClusters] = await Promise
        .all([
          deploy({ monitorArgs }),
          deploy({ namespace: "planetary-one", orchestrators: 1, maxTasks: 1, monitorArgs }),
          // short timeouts: its case runs after the busy phase, so that a pod that is merely
          // slow to start on a loaded 2-core machine is not taken for a stuck one
          deploy({
            namespace: "planetary-faults",
            orchestrators: 1,
            monitorArgs: [
              "--interval-s",
              "1",
              "--image-pull-timeout-s",
              "5",
              "--pending-timeout-s",
              "10",
            ],
          }),
          deploy({
            namespace: "planetary-deadline",
            orchestrators: 1,
            monitorArgs,
            podConfig: { activeDeadlineSeconds: 8 },
          }),
          deploy({ namespace: "planetary-node-lost", orchestrators: 1, monitorArgs }),
          deploy({ namespace: "planetary-adopt", monitorArgs }),
          ...restarts.map((_, i) =>
            deploy({ namespace: `planetary-restart-${i}`, orchestrators: 1, monitorArgs })
          ),
        ]);
      console.error(
        `cluster and ${deployments.length} deployments up in ${Date.now() - started} ms`,
      );
      const results = await Promise.all([
        runCases(t, [...plain, hostileCase, ...cancelCases(main!)], contextOf(main!), true),
        runCases(t, [...oneSlot, cancelQueuedCase(one!)], contextOf(one!), false),
        runCases(t, [adoptionCase(adopt!)], contextOf(adopt!), false),
        ...restarts.map((c, i) => runCases(t, [c], contextOf(restartClusters[i]!), false)),
      ]);
      results.push(
        ...await Promise.all([
          runCases(t, [faultCases(faults!)], contextOf(faults!), false),
          runCases(t, [deadlineCase(deadline!)], contextOf(deadline!), false),
        ]),
      );
      // alone: it takes the node away from every deployment
      results.push(await runCases(t, [nodeLostCase(nodeLost!)], contextOf(nodeLost!), false));
      // last and alone: it interrupts every deployment
      results.push(await runCases(t, [apiserverRestartCase(main!)], contextOf(main!), false));
      failed = results.includes(false);
      console.error(`k8s e2e cases done in ${Date.now() - started} ms`);
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      if (failed) {
        for (const d of deployments) console.error(d.logs());
        console.error(infra.controlPlane.logTails(20));
        console.error(infra.realNode?.logTails(40));
      }
      await Promise.all(deployments.map((d) => d.stop()));
      await infra.stop();
    }
  },
});
