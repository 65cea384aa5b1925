/**
 * Smoke test of the loopback control plane (tests/_harness/k8s.ts): a namespace under the
 * baseline Pod Security level, the `planetary` user confined by a Role, the real scheduler
 * binding a pod to the fake Node, and ownerReference garbage collection.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import assert from "node:assert/strict";
import {
  type ControlPlane,
  PLANETARY_USER,
  requireControlPlane,
  startControlPlane,
} from "./_harness/k8s.ts";

const NAMESPACE = "planetary-tasks";
const OTHER_NAMESPACE = "someone-else";
const TIMEOUT_MS = 60_000;

/** The HTTP status of a failed client-node call, or 0 when the call succeeded. */
async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 0;
  } catch (error) {
    if (error instanceof k8s.ApiException) return error.code;
    throw error;
  }
}

/** Polls until `check` returns true or the deadline passes. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function client(kubeconfigPath: string): { kc: k8s.KubeConfig; core: k8s.CoreV1Api } {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return { kc, core: kc.makeApiClient(k8s.CoreV1Api) };
}

async function setUpNamespace(cp: ControlPlane): Promise<void> {
  const { kc, core } = client(cp.adminKubeconfigPath);
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  await core.createNamespace({
    body: {
      metadata: {
        name: NAMESPACE,
        labels: { "pod-security.kubernetes.io/enforce": "baseline" },
      },
    },
  });
  await core.createNamespace({ body: { metadata: { name: OTHER_NAMESPACE } } });
  await rbac.createNamespacedRole({
    namespace: NAMESPACE,
    body: {
      metadata: { name: "planetary" },
      rules: [
        {
          apiGroups: [""],
          resources: ["pods"],
          verbs: ["create", "get", "list", "watch", "delete", "patch"],
        },
        { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
        {
          apiGroups: [""],
          resources: ["configmaps"],
          verbs: ["create", "get", "list", "watch", "delete"],
        },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: NAMESPACE,
    body: {
      metadata: { name: "planetary" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "planetary" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: PLANETARY_USER }],
    },
  });
  // pods are admitted only once the serviceaccount controller made the namespace's "default"
  await eventually("the default ServiceAccount of the namespace", async () =>
    (await statusOf(
      core.readNamespacedServiceAccount({ name: "default", namespace: NAMESPACE }),
    )) === 0);
}

function taskPod(name: string, privileged = false): k8s.V1Pod {
  return {
    metadata: { name, labels: { "app.kubernetes.io/managed-by": "planetary", task: name } },
    spec: {
      restartPolicy: "Never",
      containers: [{
        name: "main",
        image: "busybox:1.36",
        command: ["true"],
        resources: { requests: { cpu: "100m", memory: "64Mi" } },
        ...(privileged ? { securityContext: { privileged: true } } : {}),
      }],
    },
  };
}

/** Watches pods matching `labelSelector` from `resourceVersion` until one is bound to a node. */
function watchForBinding(
  kc: k8s.KubeConfig,
  labelSelector: string,
  resourceVersion: string,
): { bound: Promise<k8s.V1Pod>; abort: () => Promise<void> } {
  let controller: AbortController | undefined;
  let finished!: () => void;
  const done = new Promise<void>((resolve) => finished = resolve);
  const bound = new Promise<k8s.V1Pod>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("no watch event with spec.nodeName in time")),
      TIMEOUT_MS,
    );
    new k8s.Watch(kc).watch(
      `/api/v1/namespaces/${NAMESPACE}/pods`,
      { labelSelector, resourceVersion, allowWatchBookmarks: false },
      (_phase, pod: k8s.V1Pod) => {
        if (pod.spec?.nodeName) {
          clearTimeout(timer);
          resolve(pod);
        }
      },
      (error: unknown) => {
        clearTimeout(timer);
        finished();
        if (error) reject(error);
      },
    ).then((c) => controller = c, (error) => {
      clearTimeout(timer);
      finished();
      reject(error);
    });
  });
  const abort = async (): Promise<void> => {
    controller?.abort();
    if (controller) await done;
  };
  return { bound, abort };
}

Deno.test({
  name: "startControlPlane() runs a cluster where the planetary user schedules pods and GC works",
  ignore: !requireControlPlane(),
  async fn(t) {
    const cp = await startControlPlane();
    console.log(
      `control plane: /readyz after ${cp.timings.apiserverReadyMs} ms, ` +
        `all ready (node Ready) after ${cp.timings.totalMs} ms`,
    );
    try {
      await setUpNamespace(cp);
      const { kc, core } = client(cp.userKubeconfigPath);
      const selector = "app.kubernetes.io/managed-by=planetary,task=smoke-1";

      let pod!: k8s.V1Pod;
      await t.step("the planetary user creates a pod that the scheduler binds", async () => {
        const before = await core.listNamespacedPod({
          namespace: NAMESPACE,
          labelSelector: selector,
        });
        assert.equal(before.items.length, 0);
        const watch = watchForBinding(kc, selector, before.metadata?.resourceVersion ?? "");
        try {
          await core.createNamespacedPod({ namespace: NAMESPACE, body: taskPod("smoke-1") });
          const listed = await core.listNamespacedPod({
            namespace: NAMESPACE,
            labelSelector: selector,
          });
          assert.deepEqual(listed.items.map((p) => p.metadata?.name), ["smoke-1"]);
          pod = await watch.bound;
        } finally {
          await watch.abort();
        }
        assert.equal(pod.metadata?.name, "smoke-1");
        assert.equal(pod.spec?.nodeName, cp.nodeNames[0]);
        const podScheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
        assert.equal(podScheduled?.status, "True");
      });

      await t.step("baseline Pod Security rejects a privileged pod", async () => {
        const status = await statusOf(
          core.createNamespacedPod({ namespace: NAMESPACE, body: taskPod("bad", true) }),
        );
        assert.equal(status, 403);
      });

      await t.step("a ConfigMap owned by the pod is garbage-collected with it", async () => {
        const uid = pod.metadata?.uid;
        assert.ok(uid, "the pod has a uid");
        await core.createNamespacedConfigMap({
          namespace: NAMESPACE,
          body: {
            metadata: {
              name: "smoke-1-inputs",
              ownerReferences: [{ apiVersion: "v1", kind: "Pod", name: "smoke-1", uid }],
            },
            data: { "inputs.json": "[]" },
          },
        });
        // no kubelet confirms a graceful deletion here: delete at once
        await core.deleteNamespacedPod({
          name: "smoke-1",
          namespace: NAMESPACE,
          gracePeriodSeconds: 0,
        });
        await eventually(
          "the pod to be gone",
          async () =>
            (await statusOf(core.readNamespacedPod({ name: "smoke-1", namespace: NAMESPACE }))) ===
              404,
        );
        await eventually("the owned ConfigMap to be garbage-collected", async () =>
          (await statusOf(
            core.readNamespacedConfigMap({ name: "smoke-1-inputs", namespace: NAMESPACE }),
          )) === 404);
      });

      await t.step("RBAC confines the planetary user to its namespace and verbs", async () => {
        assert.equal(await statusOf(core.listNamespacedPod({ namespace: OTHER_NAMESPACE })), 403);
        assert.equal(await statusOf(core.listNamespacedSecret({ namespace: NAMESPACE })), 403);
        assert.equal(await statusOf(core.listNode()), 403);
        assert.equal(await statusOf(core.listNamespacedPod({ namespace: NAMESPACE })), 0);
      });
    } catch (error) {
      console.error(cp.logTails());
      throw error;
    } finally {
      await cp.stop();
    }
  },
});
