/**
 * `KubernetesBackend` against a real kube-apiserver (tests/_harness/k8s.ts), as the
 * least-privilege `planetary` user bound by `k8s/rbac/task-role.yaml`. Nothing runs the pods:
 * the test moves their status as a kubelet would (pods/status, as admin), and edits etcd
 * directly while the apiserver is down to make changes the watch cannot see (the apiserver
 * stores JSON here, `--storage-media-type=application/json`).
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { type ControlPlane, requireControlPlane, startControlPlane } from "./_harness/k8s.ts";
import {
  KubernetesBackend,
  KubernetesBackendError,
} from "../src/orchestrator/backends/kubernetes/mod.ts";
import type { PodEvent } from "../src/orchestrator/backend.ts";
import { buildTaskPod } from "../src/pod/build_task_pod.ts";
import { OUTPUTS_CONTAINER } from "../src/pod/layout.ts";

const NAMESPACE = "planetary-tasks";
const OTHER_NAMESPACE = "someone-else";
const RESTRICTED_NAMESPACE = "restricted-tasks";
const TIMEOUT_MS = 60_000;
const ROLE_FILE = new URL("../k8s/rbac/task-role.yaml", import.meta.url);

async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 0;
  } catch (error) {
    if (error instanceof k8s.ApiException) return error.code;
    throw error;
  }
}

function adminClient(cp: ControlPlane): { core: k8s.CoreV1Api; rbac: k8s.RbacAuthorizationV1Api } {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cp.adminKubeconfigPath);
  return {
    core: kc.makeApiClient(k8s.CoreV1Api),
    rbac: kc.makeApiClient(k8s.RbacAuthorizationV1Api),
  };
}

/** Namespaces, and the Role + RoleBinding of k8s/rbac/task-role.yaml for the planetary user. */
async function setUp(cp: ControlPlane): Promise<void> {
  const { core, rbac } = adminClient(cp);
  const namespaces: [string, Record<string, string>][] = [
    [NAMESPACE, { "pod-security.kubernetes.io/enforce": "baseline" }],
    [OTHER_NAMESPACE, {}],
    [RESTRICTED_NAMESPACE, { "pod-security.kubernetes.io/enforce": "restricted" }],
  ];
  for (const [name, labels] of namespaces) {
    await core.createNamespace({ body: { metadata: { name, labels } } });
  }
  const text = (await Deno.readTextFile(ROLE_FILE)).replaceAll("NAMESPACE", NAMESPACE);
  for (const doc of parseAllDocuments(text)) {
    const object = doc.toJS() as { kind: string };
    if (object.kind === "Role") {
      await rbac.createNamespacedRole({ namespace: NAMESPACE, body: object as k8s.V1Role });
    } else {
      await rbac.createNamespacedRoleBinding({
        namespace: NAMESPACE,
        body: object as k8s.V1RoleBinding,
      });
    }
  }
  for (const [name] of namespaces) {
    await eventually(
      `the default ServiceAccount of ${name}`,
      async () =>
        (await statusOf(
          core.readNamespacedServiceAccount({ name: "default", namespace: name }),
        )) ===
          0,
    );
  }
}

function simpleTask(id: string): Parameters<typeof buildTaskPod>[0] {
  return { id, executors: [{ image: "busybox:1.36", command: ["echo", "hi"] }] };
}

/** Plays the kubelet: replaces the pod's status (pods/status) as admin. */
async function setStatus(
  core: k8s.CoreV1Api,
  name: string,
  phase: "Running" | "Succeeded",
): Promise<void> {
  const pod = await core.readNamespacedPod({ name, namespace: NAMESPACE });
  const started = new Date(Date.now() - 5000);
  const finished = new Date();
  const init = (pod.spec?.initContainers ?? []).map((c) => ({
    name: c.name,
    image: c.image ?? "",
    imageID: "",
    ready: false,
    restartCount: 0,
    state: {
      terminated: { exitCode: 0, reason: "Completed", startedAt: started, finishedAt: finished },
    },
  }));
  const main = (pod.spec?.containers ?? []).map((c) => ({
    name: c.name,
    image: c.image ?? "",
    imageID: "",
    ready: phase === "Running",
    restartCount: 0,
    state: phase === "Running" ? { running: { startedAt: finished } } : {
      terminated: {
        exitCode: 0,
        reason: "Completed",
        startedAt: finished,
        finishedAt: new Date(),
      },
    },
  }));
  pod.status = {
    ...pod.status,
    phase,
    startTime: started,
    initContainerStatuses: init,
    containerStatuses: main,
  };
  await core.replaceNamespacedPodStatus({ name, namespace: NAMESPACE, body: pod });
}

/** The etcd v3 JSON gateway (keys and values base64). */
async function etcd(
  cp: ControlPlane,
  path: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const response = await fetch(`${cp.etcdUrl}/v3/${path}`, {
    method: "POST",
    body: JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`etcd ${path}: ${JSON.stringify(json)}`);
  return json;
}

const b64 = (text: string): string => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
const unb64 = (text: string): string =>
  new TextDecoder().decode(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)));

class EventLog {
  events: PodEvent[] = [];
  push = (event: PodEvent): void => void this.events.push(event);
  find(
    type: PodEvent["type"],
    name: string,
    test: (pod: k8s.V1Pod) => boolean = () => true,
  ): PodEvent | undefined {
    return this.events.find((e) => e.type === type && e.pod.metadata?.name === name && test(e.pod));
  }
  wait(
    type: PodEvent["type"],
    name: string,
    test?: (pod: k8s.V1Pod) => boolean,
  ): Promise<PodEvent> {
    return eventually(`a ${type} event for ${name}`, () => this.find(type, name, test));
  }
}

Deno.test({
  name: "KubernetesBackend works against a real apiserver as the least-privilege planetary user",
  ignore: !requireControlPlane(),
  sanitizeResources: false, // node-fetch keep-alive sockets of the generated client
  sanitizeOps: false,
  async fn(t) {
    const cp = await startControlPlane({
      apiserverArgs: ["--storage-media-type=application/json"],
    });
    const log: Record<string, unknown>[] = [];
    const backend = new KubernetesBackend({
      kubeconfigPath: cp.userKubeconfigPath,
      namespace: NAMESPACE,
      retry: { initialDelayMs: 100, maxDelayMs: 1000 },
      log: (entry) => void log.push(entry),
    });
    const watchAbort = new AbortController();
    let watchDone: Promise<void> | undefined;
    try {
      await setUp(cp);
      const { core } = adminClient(cp);
      const events = new EventLog();
      watchDone = backend.watchPods(events.push, watchAbort.signal);

      const first = buildTaskPod(simpleTask("first"));
      const name = first.pod.metadata!.name!;

      await t.step("createPod() creates the pod and a ConfigMap owned by it", async () => {
        await backend.createPod(first);
        const pod = await core.readNamespacedPod({ name, namespace: NAMESPACE });
        const cm = await core.readNamespacedConfigMap({ name, namespace: NAMESPACE });
        assert.equal(cm.metadata?.ownerReferences?.length, 1);
        const owner = cm.metadata!.ownerReferences![0]!;
        assert.deepEqual(
          [owner.kind, owner.name, owner.uid, owner.blockOwnerDeletion],
          ["Pod", name, pod.metadata?.uid, false],
        );
        assert.ok(cm.data?.["transfer.json"]?.includes('"taskId":"first"'));
        assert.equal(pod.metadata?.managedFields?.[0]?.manager, "planetary");
      });

      await t.step("createPod() again adopts the pod: no error, no duplicate", async () => {
        const before = backend.requestCountsByResource();
        await backend.createPod(first);
        const pods = await backend.listPods();
        assert.deepEqual(pods.map((p) => p.metadata?.name), [name]);
        const after = backend.requestCountsByResource();
        // a 409 on the pod, a get, a 409 on the ConfigMap and a get of it
        assert.equal((after["create pods"] ?? 0) - (before["create pods"] ?? 0), 1);
        assert.equal((after["get configmaps"] ?? 0) - (before["get configmaps"] ?? 0), 1);
      });

      await t.step("watchPods() sees ADDED, then MODIFIED for Running and Succeeded", async () => {
        const added = await events.wait("ADDED", name);
        assert.equal(added.pod.metadata?.labels?.["app.kubernetes.io/managed-by"], "planetary");
        await setStatus(core, name, "Running");
        await events.wait("MODIFIED", name, (p) => p.status?.phase === "Running");
        await setStatus(core, name, "Succeeded");
        const done = await events.wait("MODIFIED", name, (p) => p.status?.phase === "Succeeded");
        const statuses = done.pod.status?.initContainerStatuses ?? [];
        assert.deepEqual(statuses.map((s) => s.name), ["inputs", "executor-0"]);
        // timestamps decoded like the generated client's
        assert.ok(statuses[0]?.state?.terminated?.finishedAt instanceof Date);
        assert.ok(done.pod.metadata?.creationTimestamp instanceof Date);
        // events come in order: no MODIFIED before the ADDED
        const mine = events.events.filter((e) => e.pod.metadata?.name === name);
        assert.equal(mine[0]?.type, "ADDED");
      });

      await t.step('readLog() answers "" when no kubelet serves the log', async () => {
        assert.equal(await backend.readLog(name, OUTPUTS_CONTAINER), "");
        assert.equal(await backend.readLog("no-such-pod", OUTPUTS_CONTAINER), "");
      });

      await t.step("deletePod() removes the pod and its ConfigMap", async () => {
        const before = backend.requestCounts();
        // a Succeeded pod is deleted at once (no grace period: nothing runs in it any more)
        await backend.deletePod(name);
        await events.wait("DELETED", name);
        assert.equal(
          await statusOf(core.readNamespacedConfigMap({ name, namespace: NAMESPACE })),
          404,
        );
        await backend.deletePod(name); // already gone: no error
        const after = backend.requestCounts();
        assert.equal(after.delete - before.delete, 4);
      });

      await t.step("deletePod() of a pod that still runs waits for the kubelet", async () => {
        const objects = buildTaskPod(simpleTask("graceful"));
        const graceful = objects.pod.metadata!.name!;
        await backend.createPod(objects);
        await setStatus(core, graceful, "Running");
        await events.wait("MODIFIED", graceful, (p) => p.status?.phase === "Running");
        await backend.deletePod(graceful);
        await events.wait("MODIFIED", graceful, (p) => p.metadata?.deletionTimestamp !== undefined);
        assert.ok(await backend.getPod(graceful), "terminating, not gone");
        // the kubelet confirms the end of the containers
        await core.deleteNamespacedPod({
          name: graceful,
          namespace: NAMESPACE,
          gracePeriodSeconds: 0,
        });
        await events.wait("DELETED", graceful);
        assert.equal(await backend.getPod(graceful), undefined);
      });

      await t.step("the ConfigMap goes with its pod through garbage collection", async () => {
        const objects = buildTaskPod(simpleTask("gc"));
        const gcName = objects.pod.metadata!.name!;
        await backend.createPod(objects);
        await core.deleteNamespacedPod({
          name: gcName,
          namespace: NAMESPACE,
          gracePeriodSeconds: 0,
        });
        await eventually(
          "the ConfigMap to be garbage-collected",
          async () =>
            (await statusOf(
              core.readNamespacedConfigMap({ name: gcName, namespace: NAMESPACE }),
            )) ===
              404,
        );
      });

      await t.step("the planetary user gets a clear 403 outside its namespace", async () => {
        const outside = new KubernetesBackend({
          kubeconfigPath: cp.userKubeconfigPath,
          namespace: OTHER_NAMESPACE,
          log: () => {},
        });
        try {
          const error = await outside.createPod(buildTaskPod(simpleTask("outside"))).then(
            () => undefined,
            (e: unknown) => e,
          );
          assert.ok(error instanceof KubernetesBackendError, String(error));
          assert.equal(error.code, "FORBIDDEN");
          assert.equal(error.status, 403);
          assert.match(error.message, /namespace "someone-else"/);
          assert.match(error.message, /forbidden/);
          await assert.rejects(
            outside.listPods(),
            (e) => e instanceof KubernetesBackendError && e.code === "FORBIDDEN",
          );
        } finally {
          await outside.close();
        }
      });

      await t.step(
        "buildTaskPod() of a hostile task passes validation and Pod Security baseline",
        async () => {
          const hostileId = "Hostile-ID_with.dots-and-more-than-sixty-three-characters-" +
            "x".repeat(40);
          const weird = `quote " and ' and \`back\` $(rm -rf /) \${HOME} $$ ünïcödé 🚀\nnew line`;
          const objects = buildTaskPod({
            id: hostileId,
            name: weird,
            tags: { [weird]: weird, "k8s-ish/key": "$(value)" },
            executors: [{
              image: "busybox:1.36",
              command: ["sh", "-c", `echo "${weird}" $(id)`],
              env: { "MY_VAR": weird, "dotted.name-1": "$(MY_VAR)", "_x": "" },
              workdir: "/work dir/ü",
            }],
            inputs: [{ path: "/data/in put 'x'", content: weird }],
            outputs: [{
              path: "/data/out*",
              url: "s3://bucket/out/",
              path_prefix: "/data/",
              type: "FILE",
            }],
          });
          const hostileName = objects.pod.metadata!.name!;
          assert.ok(hostileName.length <= 63);
          await backend.createPod(objects);
          const pod = await core.readNamespacedPod({ name: hostileName, namespace: NAMESPACE });
          assert.equal(pod.metadata?.annotations?.["planetary.io/task-name"], weird);
          const env = pod.spec?.initContainers?.find((c) => c.name === "executor-0")?.env ?? [];
          assert.ok(env.some((e) => e.name === "MY_VAR" && e.value?.includes("$$(rm -rf /)")));
          await backend.deletePod(hostileName);
        },
      );

      await t.step(
        "transporter containers meet Pod Security restricted; executors do not",
        async () => {
          // dry run as admin: admission (Pod Security included) runs, nothing is stored
          const objects = buildTaskPod(simpleTask("restricted"));
          const full = {
            ...objects.pod,
            metadata: { ...objects.pod.metadata, namespace: RESTRICTED_NAMESPACE },
          };
          const refused = await core.createNamespacedPod({
            namespace: RESTRICTED_NAMESPACE,
            body: full,
            dryRun: "All",
          }).then(() => undefined, (e: unknown) => e);
          assert.ok(refused instanceof k8s.ApiException && refused.code === 403, String(refused));
          const message = String(refused.body);
          assert.match(message, /executor-0/);
          assert.doesNotMatch(message, /"inputs"|"outputs"/);
          const transportersOnly = {
            ...full,
            spec: {
              ...full.spec!,
              initContainers: full.spec!.initContainers!.filter((c) => c.name === "inputs"),
            },
          };
          await core.createNamespacedPod({
            namespace: RESTRICTED_NAMESPACE,
            body: transportersOnly,
            dryRun: "All",
          });
        },
      );

      await t.step(
        "watchPods() survives an apiserver restart and a 410 without losing a transition",
        async () => {
          const a = buildTaskPod(simpleTask("restart-a"));
          const b = buildTaskPod(simpleTask("restart-b"));
          const nameA = a.pod.metadata!.name!;
          const nameB = b.pod.metadata!.name!;
          await backend.createPod(a);
          await backend.createPod(b);
          await events.wait("ADDED", nameA);
          await events.wait("ADDED", nameB);
          await setStatus(core, nameA, "Running");
          await events.wait("MODIFIED", nameA, (p) => p.status?.phase === "Running");
          const before = backend.watchStats;

          await cp.restartApiserver({
            whileDown: async () => {
              // changes the watch cannot see: A succeeds, B disappears; then compact etcd so that
              // the old resourceVersion is gone for good (410 Gone)
              const keyA = b64(`/registry/pods/${NAMESPACE}/${nameA}`);
              const range = await etcd(cp, "kv/range", { key: keyA });
              const kv = (range.kvs as { value: string }[])[0]!;
              const podA = JSON.parse(unb64(kv.value));
              podA.status.phase = "Succeeded";
              await etcd(cp, "kv/put", { key: keyA, value: b64(JSON.stringify(podA)) });
              await etcd(cp, "kv/deleterange", {
                key: b64(`/registry/pods/${NAMESPACE}/${nameB}`),
              });
              const header = (await etcd(cp, "kv/range", { key: keyA })).header as {
                revision: string;
              };
              await etcd(cp, "kv/compaction", { revision: header.revision, physical: true });
            },
          });

          await events.wait("MODIFIED", nameA, (p) => p.status?.phase === "Succeeded");
          await events.wait("DELETED", nameB);
          const after = backend.watchStats;
          assert.ok(after.expired > before.expired, JSON.stringify({ before, after }));
          assert.ok(after.lists > before.lists);

          // and the watch goes on after the relist
          const c = buildTaskPod(simpleTask("restart-c"));
          await backend.createPod(c);
          await events.wait("ADDED", c.pod.metadata!.name!);
        },
      );

      await t.step("a late watchPods() caller gets ADDED for every known pod", async () => {
        const late = new EventLog();
        const abort = new AbortController();
        const done = backend.watchPods(late.push, abort.signal);
        const listed = (await backend.listPods()).map((p) => p.metadata?.name).sort();
        await eventually("the replay", () => late.events.length >= listed.length);
        assert.deepEqual(late.events.map((e) => e.pod.metadata?.name).sort(), listed);
        abort.abort();
        await done;
        console.log(`requests: ${JSON.stringify(backend.requestCountsByResource())}`);
        console.log(`watch: ${JSON.stringify(backend.watchStats)}`);
      });
    } catch (error) {
      console.error(cp.logTails(20));
      console.error(JSON.stringify(log.slice(-20), null, 1));
      throw error;
    } finally {
      watchAbort.abort();
      await watchDone;
      await backend.close();
      await cp.stop();
    }
  },
});
