import { assert, assertEquals, assertMatch, assertThrowsCode } from "./testdata/assert.ts";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import type { TesTask } from "../tes/model.ts";
import { buildTaskPod, SPEC_PATH } from "./build_task_pod.ts";
import { WRAPPER_ARGV0, WRAPPER_SCRIPT } from "./executor_wrapper.ts";
import { expandKubernetesReferences } from "./kubernetes_expansion.ts";
import {
  LABEL_MANAGED_BY,
  LABEL_TASK_ID,
  MANAGED_BY_VALUE,
  SPEC_FILE,
  stateFile,
  type TransferSpec,
} from "./layout.ts";
import { ANNOTATION_TASK_ID, ANNOTATION_TASK_NAME } from "./pod_name.ts";

const FULL_TASK: TesTask & { id: string } = {
  id: "task1",
  name: 'my "task" $(name) ✓',
  description: "ignored",
  tags: { a: "b" },
  inputs: [
    { url: "s3://bucket/reads.fq", path: "/data/in/reads.fq" },
    { url: "gs://bucket/ref/", path: "/data/ref", type: "DIRECTORY" },
    { content: "hello $(x)\n", path: "/data/in/inline.txt", type: "FILE" },
  ],
  outputs: [
    { url: "s3://bucket/out.txt", path: "/data/out/out.txt" },
    { url: "s3://bucket/dir/", path: "/data/outdir", type: "DIRECTORY" },
    { url: "s3://bucket/w/", path: "/data/w/*.csv", path_prefix: "/data/w/", type: "FILE" },
  ],
  resources: {
    cpu_cores: 4,
    ram_gb: 8,
    disk_gb: 100,
    preemptible: true,
    zones: ["us-east1-b", "us-east1-c"],
    backend_parameters: { machine_type: "n2-highmem-8", unsupported_key: "x" },
  },
  executors: [
    {
      image: "ubuntu:24.04",
      command: ["/bin/echo", "$(HOME)", "a b"],
      workdir: "/data/work",
      stdin: "/data/in/reads.fq",
      stdout: "/data/out/stdout.txt",
      stderr: "/data/out/stderr.txt",
      env: { GREETING: "$(PATH) `x`", PLANETARY_STDOUT: "/evil" },
    },
    { image: "alpine:3", command: ["true"], ignore_error: true },
  ],
  volumes: ["/data/shared"],
};

function container(pod: V1Pod, name: string): V1Container {
  const all = [...pod.spec?.initContainers ?? [], ...pod.spec?.containers ?? []];
  const found = all.find((c) => c.name === name);
  assert(found, `no container ${name}`);
  return found;
}

function envOf(c: V1Container): Record<string, string> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? ""]));
}

const expand = (text: string) => expandKubernetesReferences(text, () => "EXPANDED");

Deno.test("buildTaskPod() lays out inputs, one container per executor, and outputs", () => {
  const { pod, configMap } = buildTaskPod(FULL_TASK, {
    transporterImage: "transporter:1",
    transporterCommand: ["/usr/local/bin/planetary-transporter"],
  });
  assertEquals(pod.metadata?.name, "task-task1");
  assertEquals(configMap.metadata?.name, "task-task1");
  assertEquals(pod.spec?.restartPolicy, "Never");
  assertEquals(pod.spec?.terminationGracePeriodSeconds, 5);
  assertEquals(pod.spec?.automountServiceAccountToken, false);
  assertEquals(pod.spec?.enableServiceLinks, false);
  assertEquals(pod.spec?.initContainers?.map((c) => c.name), [
    "inputs",
    "executor-0",
    "executor-1",
  ]);
  assertEquals(pod.spec?.containers.map((c) => c.name), ["outputs"]);
  for (const mode of ["inputs", "outputs"]) {
    const c = container(pod, mode);
    assertEquals(c.image, "transporter:1");
    assertEquals(c.command, ["/usr/local/bin/planetary-transporter"]);
    assertEquals(c.args, [mode, `/planetary/spec/${SPEC_FILE}`]);
    assertEquals(c.args?.[1], SPEC_PATH);
    assertEquals(c.terminationMessagePolicy, "FallbackToLogsOnError");
  }
  assertEquals(container(pod, "executor-0").image, "ubuntu:24.04");
  assertEquals(container(pod, "executor-1").image, "alpine:3");
});

Deno.test("buildTaskPod() passes argv as wrapper arguments and values as env, escaped", () => {
  const { pod } = buildTaskPod(FULL_TASK);
  const c = container(pod, "executor-0");
  const argv = (c.command ?? []).map(expand);
  assertEquals(argv, [
    "/bin/sh",
    "-c",
    WRAPPER_SCRIPT,
    WRAPPER_ARGV0,
    "/bin/echo",
    "$(HOME)",
    "a b",
  ]);
  assertEquals(c.args, undefined);
  assertEquals(c.workingDir, undefined, "the wrapper enters the workdir, so a bad one is recorded");
  const env = Object.fromEntries(Object.entries(envOf(c)).map(([k, v]) => [k, expand(v)]));
  assertEquals(env, {
    GREETING: "$(PATH) `x`",
    PLANETARY_EXECUTOR_INDEX: "0",
    PLANETARY_IGNORE_ERROR: "false",
    PLANETARY_WORKDIR: "/data/work",
    PLANETARY_STDIN: "/data/in/reads.fq",
    PLANETARY_STDOUT: "/data/out/stdout.txt",
    PLANETARY_STDERR: "/data/out/stderr.txt",
  });
  assertEquals(envOf(container(pod, "executor-1")), {
    PLANETARY_EXECUTOR_INDEX: "1",
    PLANETARY_IGNORE_ERROR: "true",
  });
});

Deno.test("buildTaskPod() writes the transfer spec into the ConfigMap", () => {
  const { pod, configMap } = buildTaskPod(FULL_TASK, { tailBytes: 1234 });
  const spec = JSON.parse(configMap.data?.[SPEC_FILE] ?? "") as TransferSpec;
  assertEquals(spec, {
    version: 1,
    taskId: "task1",
    inputs: [
      { url: "s3://bucket/reads.fq", path: "/data/in/reads.fq", type: "FILE" },
      { url: "gs://bucket/ref/", path: "/data/ref", type: "DIRECTORY" },
      { content: "hello $(x)\n", path: "/data/in/inline.txt", type: "FILE" },
    ],
    outputs: [
      { url: "s3://bucket/out.txt", path: "/data/out/out.txt", type: "FILE" },
      { url: "s3://bucket/dir/", path: "/data/outdir", type: "DIRECTORY" },
      { url: "s3://bucket/w/", path: "/data/w/*.csv", path_prefix: "/data/w/", type: "FILE" },
    ],
    executors: [
      { stdout: "/data/out/stdout.txt", stderr: "/data/out/stderr.txt" },
      { stdout: stateFile(1, "stdout"), stderr: stateFile(1, "stderr") },
    ],
    tailBytes: 1234,
  });
  assertEquals(
    buildTaskPod({ ...FULL_TASK }).configMap.data?.[SPEC_FILE]?.includes('"tailBytes":65536'),
    true,
  );
  const specVolume = pod.spec?.volumes?.find((v) => v.name === "spec");
  assertEquals(specVolume?.configMap?.name, "task-task1");
});

Deno.test("buildTaskPod() maps resources to the executor containers", () => {
  const { pod } = buildTaskPod(FULL_TASK);
  for (const name of ["executor-0", "executor-1"]) {
    assertEquals(container(pod, name).resources, {
      requests: { cpu: "4", memory: "8000000000", "ephemeral-storage": "100000000000" },
      limits: { cpu: "4", memory: "8000000000" },
    });
  }
  assertEquals(container(pod, "inputs").resources?.requests, { cpu: "100m", memory: "128Mi" });
  const data = pod.spec?.volumes?.find((v) => v.name === "data");
  assertEquals(data?.emptyDir, { sizeLimit: "100000000000" });

  const small = buildTaskPod(
    { id: "s", executors: [{ image: "x", command: ["x"] }], resources: { ram_gb: 1.5 } },
    { defaultCpuCores: 0.5, cpuLimit: false },
  );
  assertEquals(container(small.pod, "executor-0").resources, {
    requests: { cpu: "500m", memory: "1500000000" },
    limits: { memory: "1500000000" },
  });
  const defaults = buildTaskPod({ id: "d", executors: [{ image: "x", command: ["x"] }] });
  assertEquals(container(defaults.pod, "executor-0").resources?.requests, {
    cpu: "1",
    memory: "2000000000",
  });
});

Deno.test("buildTaskPod() places preemptible tasks, zones and backend parameters", () => {
  const { pod } = buildTaskPod(FULL_TASK, {
    preemptible: {
      nodeSelector: { "cloud.google.com/gke-spot": "true" },
      tolerations: [{ key: "spot", operator: "Exists", effect: "NoSchedule" }],
    },
    nodeSelector: { pool: "tes" },
  });
  assertEquals(pod.spec?.nodeSelector, {
    pool: "tes",
    "cloud.google.com/gke-spot": "true",
    "node.kubernetes.io/instance-type": "n2-highmem-8",
  });
  assertEquals(pod.spec?.tolerations, [{ key: "spot", operator: "Exists", effect: "NoSchedule" }]);
  assertEquals(
    pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution
      ?.nodeSelectorTerms,
    [{
      matchExpressions: [{
        key: "topology.kubernetes.io/zone",
        operator: "In",
        values: ["us-east1-b", "us-east1-c"],
      }],
    }],
  );
  const notPreemptible = buildTaskPod({
    ...FULL_TASK,
    resources: { preemptible: false },
  }, { preemptible: { nodeSelector: { spot: "true" } }, zoneLabel: "zone" });
  assertEquals(notPreemptible.pod.spec?.nodeSelector, undefined);
  assertEquals(notPreemptible.pod.spec?.affinity, undefined);

  const table = buildTaskPod({
    id: "bp",
    executors: [{ image: "x", command: ["x"] }],
    resources: {
      backend_parameters: {
        pool: "big",
        team: "genomics",
        note: "any $ text",
        prio: "high",
        sa: "tes-a",
      },
    },
  }, {
    backendParameters: {
      pool: { kind: "nodeSelector", key: "example.com/pool" },
      team: { kind: "label", key: "example.com/team" },
      note: { kind: "annotation", key: "example.com/note" },
      prio: { kind: "priorityClassName" },
      sa: { kind: "serviceAccountName", allowed: ["tes-a", "tes-b"] },
    },
  });
  assertEquals(table.pod.spec?.nodeSelector, { "example.com/pool": "big" });
  assertEquals(table.pod.metadata?.labels?.["example.com/team"], "genomics");
  assertEquals(table.pod.metadata?.annotations?.["example.com/note"], "any $ text");
  assertEquals(table.pod.spec?.priorityClassName, "high");
  assertEquals(table.pod.spec?.serviceAccountName, "tes-a");

  const error = assertThrowsCode(
    () =>
      buildTaskPod({
        id: "bp",
        executors: [{ image: "x", command: ["x"] }],
        resources: { backend_parameters: { sa: "cluster-admin" } },
      }, { backendParameters: { sa: { kind: "serviceAccountName", allowed: ["tes-a"] } } }),
    "INVALID_BACKEND_PARAMETER",
  );
  assertMatch(error.message, /"sa".*cluster-admin/);
  assertThrowsCode(() =>
    buildTaskPod({
      id: "bp",
      executors: [{ image: "x", command: ["x"] }],
      resources: { backend_parameters: { machine_type: "bad value!" } },
    }), "INVALID_BACKEND_PARAMETER");
});

Deno.test("buildTaskPod() labels with a safe id and annotates the exact id and name", () => {
  const { pod, configMap } = buildTaskPod({ ...FULL_TASK, id: "Weird/ID ✓" }, {
    labels: { [LABEL_MANAGED_BY]: "someone-else", release: "r1" },
  });
  const labels = pod.metadata?.labels ?? {};
  assertEquals(labels[LABEL_MANAGED_BY], MANAGED_BY_VALUE);
  assertEquals(labels.release, "r1");
  assertMatch(labels[LABEL_TASK_ID] ?? "", /^Weird-ID-[0-9a-f]{16}$/);
  assertEquals(pod.metadata?.annotations?.[ANNOTATION_TASK_ID], "Weird/ID ✓");
  assertEquals(pod.metadata?.annotations?.[ANNOTATION_TASK_NAME], FULL_TASK.name);
  assertEquals(configMap.metadata?.labels, labels);
  assertMatch(pod.metadata?.name ?? "", /^task-weird-id-[0-9a-f]{16}$/);
});

Deno.test("buildTaskPod() hardens the transporter and keeps executors baseline-safe", () => {
  const { pod } = buildTaskPod(FULL_TASK, {
    storageSecrets: ["s3-creds", "gcs-creds"],
    imagePullSecrets: ["regcred"],
    serviceAccountName: "planetary-task",
    activeDeadlineSeconds: 3600,
    namespace: "tes",
  });
  for (const name of ["inputs", "outputs"]) {
    const c = container(pod, name);
    assertEquals(c.securityContext, {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    assertEquals(c.envFrom, [
      { secretRef: { name: "s3-creds" } },
      { secretRef: { name: "gcs-creds" } },
    ]);
  }
  for (const name of ["executor-0", "executor-1"]) {
    const c = container(pod, name);
    assertEquals(c.securityContext, {
      allowPrivilegeEscalation: false,
      seccompProfile: { type: "RuntimeDefault" },
    });
    assertEquals(c.envFrom, undefined, "storage credentials must not reach user code");
  }
  assertEquals(pod.spec?.imagePullSecrets, [{ name: "regcred" }]);
  assertEquals(pod.spec?.serviceAccountName, "planetary-task");
  assertEquals(pod.spec?.activeDeadlineSeconds, 3600);
  assertEquals(pod.spec?.securityContext, { fsGroup: 65532 });
  assertEquals(pod.metadata?.namespace, "tes");
  const plain = buildTaskPod(FULL_TASK, { fsGroup: null }).pod;
  assertEquals(plain.spec?.securityContext, undefined);
  assertEquals(plain.spec?.serviceAccountName, undefined);
  assertEquals(plain.metadata?.namespace, undefined);
});

Deno.test("buildTaskPod() mounts the same data paths in every container", () => {
  const { pod } = buildTaskPod({
    ...FULL_TASK,
    outputs: [...FULL_TASK.outputs ?? [], { url: "s3://b/root.txt", path: "/root.txt" }],
  });
  const dataMounts = (c: V1Container) =>
    (c.volumeMounts ?? []).filter((m) => m.name !== "tmp").map((m) =>
      `${m.name}:${m.mountPath}:${m.subPath ?? ""}:${m.readOnly ?? false}`
    );
  const executor = dataMounts(container(pod, "executor-0"));
  assertEquals(executor, [
    "state:/planetary/state::false",
    "spec:/planetary/spec::true",
    "data:/planetary/data::false",
    "data:/data/in:fs/data/in:false",
    "data:/data/out:fs/data/out:false",
    "data:/data/outdir:fs/data/outdir:false",
    "data:/data/ref:fs/data/ref:false",
    "data:/data/shared:fs/data/shared:false",
    "data:/data/w:fs/data/w:false",
    "data:/root.txt:fs/root.txt:false",
  ]);
  assertEquals(dataMounts(container(pod, "executor-1")), executor);
  assertEquals(dataMounts(container(pod, "outputs")), executor);
  // The file mount is missing from `inputs` only: it writes that file into the volume.
  assertEquals(
    dataMounts(container(pod, "inputs")),
    executor.filter((m) => !m.includes("root.txt")),
  );
  for (const name of ["inputs", "outputs"]) {
    assert(
      container(pod, name).volumeMounts?.some((m) => m.name === "tmp" && m.mountPath === "/tmp"),
    );
  }
  assertEquals(pod.spec?.volumes?.map((v) => v.name), ["state", "spec", "data", "tmp"]);
});

Deno.test("buildTaskPod() has the transporter create files mounted under /", () => {
  const { configMap } = buildTaskPod({
    id: "f",
    inputs: [{ url: "s3://b/in", path: "/in.txt" }],
    outputs: [{ url: "s3://b/out", path: "/out.txt" }],
    executors: [{ image: "x", command: ["x"], stdin: "/in.txt", stdout: "/stdout.txt" }],
  });
  const spec = JSON.parse(configMap.data?.[SPEC_FILE] ?? "") as TransferSpec;
  assertEquals(spec.inputs, [
    { url: "s3://b/in", path: "/planetary/data/fs/in.txt", type: "FILE" },
    { path: "/planetary/data/fs/out.txt", type: "FILE", content: "" },
    { path: "/planetary/data/fs/stdout.txt", type: "FILE", content: "" },
  ]);
  assertEquals(spec.outputs, [{ url: "s3://b/out", path: "/out.txt", type: "FILE" }]);
});

Deno.test("buildTaskPod() refuses relative, reserved and oversized tasks", () => {
  const base = { id: "e", executors: [{ image: "x", command: ["x"] }] };
  assertThrowsCode(() => buildTaskPod({ ...base, volumes: ["data"] }), "INVALID_PATH");
  assertThrowsCode(() => buildTaskPod({ ...base, volumes: ["/planetary/state"] }), "RESERVED_PATH");
  assertThrowsCode(
    () => buildTaskPod({ ...base, inputs: [{ url: "s3://b/k", path: "/proc/x" }] }),
    "RESERVED_PATH",
  );
  assertThrowsCode(
    () =>
      buildTaskPod({ ...base, inputs: [{ content: "x".repeat(2000), path: "/a/b" }] }, {
        maxSpecBytes: 1000,
      }),
    "SPEC_TOO_LARGE",
  );
  // 128 KiB of inline content fits the default limit.
  buildTaskPod({ ...base, inputs: [{ content: "é".repeat(64 * 1024), path: "/a/b" }] });
});
