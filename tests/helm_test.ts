/**
 * The Helm chart (k8s/chart/planetary), its rendered manifests (k8s/manifests), the images'
 * compile tasks and the Dockerfile: lint, render with default and all-on values, refuse bad
 * values, hold the security settings, and be accepted by a real kube-apiserver (server-side
 * apply, dry run then real), with RBAC that lets only the orchestrator and monitor touch pods.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { requireComponent } from "./_harness/component.ts";
import { type ControlPlane, requireControlPlane, startControlPlane } from "./_harness/k8s.ts";
import {
  CHART_DIR,
  findHelm,
  helmTemplate,
  MANIFESTS_DIR,
  renderManifests,
  runHelm,
} from "../k8s/tools/render.ts";
import { parseServeConfig } from "../src/server/serve_config.ts";
import { buildTaskPod } from "../src/pod/build_task_pod.ts";
import {
  type PodBuilderConfig,
  supportedBackendParameters,
} from "../src/pod/pod_builder_config.ts";

const ROOT = new URL("../", import.meta.url);
const ALL_ON = new URL("k8s/chart/testdata/all-on.yaml", ROOT).pathname;
const BAD_VALUES = new URL("k8s/chart/testdata/bad-values.yaml", ROOT).pathname;
const HELM = findHelm();
const hasHelm = requireComponent(
  HELM !== undefined,
  "helm not found: run k8s/tools/install_helm.sh",
);

/** A Kubernetes object as rendered. */
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** The value at a dotted path (`spec.template.spec.containers.0.name`), or undefined. */
function get(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split(".")) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/** The array at a dotted path ([] when absent). */
function list(value: unknown, path: string): unknown[] {
  const found = get(value, path);
  return Array.isArray(found) ? found : [];
}

/** The string at a dotted path ("" when absent). */
function text(value: unknown, path: string): string {
  const found = get(value, path);
  return typeof found === "string" ? found : "";
}

function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw doc.errors[0];
      return doc.toJS() as K8sObject | null;
    })
    .filter((obj): obj is K8sObject => obj !== null);
}

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name} is rendered`);
  return found;
}

/** The pod template of a workload, or undefined for other kinds. */
function podSpecOf(obj: K8sObject): unknown {
  if (["Deployment", "StatefulSet", "Job", "DaemonSet"].includes(obj.kind)) {
    return get(obj, "spec.template.spec");
  }
  if (obj.kind === "Pod") return get(obj, "spec");
  return undefined;
}

async function renderDefault(set: string[] = []): Promise<K8sObject[]> {
  return parseObjects(await helmTemplate({ helm: HELM!, set }));
}

/** The one migration Job of a render (its name ends in a hash of its spec). */
function migrationJob(objects: K8sObject[]): K8sObject {
  const jobs = objects.filter((o) =>
    o.kind === "Job" && o.metadata.labels?.["app.kubernetes.io/component"] === "migrate"
  );
  assert.equal(jobs.length, 1, "one migration Job");
  return jobs[0]!;
}

async function renderAllOn(namespace = "planetary"): Promise<K8sObject[]> {
  return parseObjects(await helmTemplate({ helm: HELM!, valuesFiles: [ALL_ON], namespace }));
}

// ---------------------------------------------------------------------------------------------
// compile tasks and Dockerfile (no helm needed)

/** The one `PERMISSIONS` / `*_PERMISSIONS` export of an entrypoint module. */
async function permissionsOf(path: string): Promise<string[]> {
  const mod = await import(new URL(path, ROOT).href) as Record<string, unknown>;
  const names = Object.keys(mod).filter((k) => k === "PERMISSIONS" || k.endsWith("_PERMISSIONS"));
  assert.equal(names.length, 1, `${path} exports exactly one permission constant: ${names}`);
  const value = mod[names[0]!];
  assert.ok(Array.isArray(value), `${path} ${names[0]} is an array`);
  return value as string[];
}

function tasks(): Record<string, string> {
  const json = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT))) as {
    tasks: Record<string, string>;
  };
  return json.tasks;
}

const COMPILE_TASKS: Record<string, { entry: string; output: string; from: string[] }> = {
  "compile:api": { entry: "cli/api.ts", output: "dist/planetary-api", from: ["cli/api.ts"] },
  "compile:orchestrator": {
    entry: "cli/orchestrator.ts",
    output: "dist/planetary-orchestrator",
    from: ["cli/orchestrator.ts"],
  },
  "compile:monitor": {
    entry: "cli/monitor.ts",
    output: "dist/planetary-monitor",
    from: ["cli/monitor.ts"],
  },
  "compile:transporter": {
    entry: "transporter/main.ts",
    output: "dist/planetary-transporter",
    from: ["transporter/main.ts"],
  },
  // the planetary binary holds the client verbs, `serve` and the hidden `transporter` command
  "compile:cli": {
    entry: "cli/planetary.ts",
    output: "dist/planetary",
    from: ["cli/permissions.ts", "cli/commands/serve.ts", "transporter/main.ts"],
  },
};

for (const [task, spec] of Object.entries(COMPILE_TASKS)) {
  Deno.test(`deno.json ${task} compiles ${spec.entry} with exactly its exported permissions`, async () => {
    const command = tasks()[task];
    assert.ok(command, `deno.json has a "${task}" task`);
    const words = command.split(/\s+/);
    assert.deepEqual(words.slice(0, 2), ["deno", "compile"]);
    assert.equal(words.at(-1), spec.entry);
    assert.equal(words[words.indexOf("--output") + 1], spec.output);
    const flags = words.filter((w) => w.startsWith("--allow-")).sort();
    assert.ok(!flags.includes("--allow-all"), "no --allow-all");
    const expected = new Set<string>();
    for (const path of spec.from) for (const flag of await permissionsOf(path)) expected.add(flag);
    assert.deepEqual(flags, [...expected].sort());
  });
}

Deno.test("k8s/Dockerfile builds every compile task into a distroless nonroot target", () => {
  const text = Deno.readTextFileSync(new URL("k8s/Dockerfile", ROOT));
  assert.match(text, /^FROM denoland\/deno:\d+\.\d+\.\d+ AS builder$/m, "pinned builder");
  assert.match(text, /^FROM gcr\.io\/distroless\/cc-debian12:nonroot AS base$/m);
  assert.match(text, /^USER 65532:65532$/m);
  for (const task of Object.keys(COMPILE_TASKS)) {
    assert.match(text, new RegExp(`deno task ${task}\\b`), `the builder runs ${task}`);
  }
  for (
    const [target, task] of Object.entries({
      api: "api",
      orchestrator: "orchestrator",
      monitor: "monitor",
      transporter: "transporter",
      serve: "cli",
    })
  ) {
    const output = COMPILE_TASKS[`compile:${task}`]!.output;
    const stage = text.split(/^FROM /m).find((s) => s.startsWith(`base AS ${target}\n`));
    assert.ok(stage, `a "${target}" target FROM base`);
    assert.ok(stage.includes(`COPY --from=builder /src/${output} `), `${target} copies ${output}`);
    assert.match(stage, /^ENTRYPOINT \["\/usr\/local\/bin\//m);
  }
});

// ---------------------------------------------------------------------------------------------
// helm

Deno.test({
  name: "helm lint accepts the chart with default and all-on values",
  ignore: !hasHelm,
  async fn() {
    for (const extra of [[], ["--values", ALL_ON]]) {
      const result = await runHelm(["lint", "--strict", CHART_DIR.pathname, ...extra], HELM);
      assert.ok(result.success, `helm lint ${extra.join(" ")}:\n${result.stdout}${result.stderr}`);
    }
  },
});

Deno.test({
  name: "helm template refuses values that break values.schema.json",
  ignore: !hasHelm,
  async fn() {
    const result = await runHelm(["template", "x", CHART_DIR.pathname, "-f", BAD_VALUES], HELM);
    assert.ok(!result.success, "bad values are refused");
    assert.match(result.stderr, /values don't meet the specifications of the schema/);
    for (const path of ["replicas", "unknownSetting", "pullPolicy"]) {
      assert.ok(result.stderr.includes(path), `the error names ${path}:\n${result.stderr}`);
    }
    // one bad value at a time, through --set, each refused
    for (
      const set of [
        "database.existingSecret=",
        "networkPolicy.taskEgress.cidrs[0]=everywhere",
        "podAntiAffinity=maybe",
        "tasks.namespace=Not_A_Name",
      ]
    ) {
      const one = await runHelm(["template", "x", CHART_DIR.pathname, "--set", set], HELM);
      assert.ok(!one.success, `--set ${set} is refused`);
      assert.match(one.stderr, /schema/);
    }
  },
});

Deno.test({
  name: "helm template gives every container the restricted security settings",
  ignore: !hasHelm,
  async fn() {
    for (const objects of [await renderDefault(), await renderAllOn()]) {
      let containers = 0;
      for (const obj of objects) {
        const spec = podSpecOf(obj);
        if (!spec) continue;
        const where = `${obj.kind}/${obj.metadata.name}`;
        assert.equal(get(spec, "securityContext.runAsNonRoot"), true, `${where} pod runAsNonRoot`);
        assert.equal(get(spec, "securityContext.seccompProfile.type"), "RuntimeDefault", where);
        assert.notEqual(get(spec, "hostNetwork"), true, where);
        for (const c of [...list(spec, "initContainers"), ...list(spec, "containers")]) {
          containers++;
          const name = `${where} container ${text(c, "name")}`;
          const sc = (path: string): unknown => get(c, `securityContext.${path}`);
          assert.equal(sc("runAsNonRoot"), true, `${name} runAsNonRoot`);
          assert.ok(Number(sc("runAsUser")) > 0, `${name} runAsUser is not root`);
          assert.equal(sc("readOnlyRootFilesystem"), true, `${name} readOnlyRootFilesystem`);
          assert.equal(sc("allowPrivilegeEscalation"), false, `${name} allowPrivilegeEscalation`);
          assert.deepEqual(sc("capabilities.drop"), ["ALL"], `${name} drops ALL capabilities`);
          assert.equal(sc("capabilities.add"), undefined, `${name} adds no capability`);
          assert.equal(sc("seccompProfile.type"), "RuntimeDefault", `${name} seccomp`);
          assert.ok(get(c, "resources.requests.memory"), `${name} requests memory`);
          assert.ok(get(c, "resources.limits.memory"), `${name} limits memory`);
        }
      }
      assert.ok(containers >= 4, "api, orchestrator, monitor and migrate containers checked");
    }
  },
});

Deno.test({
  name: "helm template with default values renders the documented deployment",
  ignore: !hasHelm,
  async fn() {
    const objects = await renderDefault();
    assert.deepEqual(
      ["api", "orchestrator", "monitor"].map((c) =>
        get(find(objects, "Deployment", `planetary-${c}`), "spec.replicas")
      ),
      [2, 2, 1],
    );
    // no Secret, so no password: the database URL comes from an existing Secret
    assert.deepEqual(objects.filter((o) => o.kind === "Secret"), []);
    assert.equal(objects.some((o) => o.kind === "StatefulSet"), false, "no bundled PostgreSQL");
    const api = get(find(objects, "Deployment", "planetary-api"), "spec.template.spec");
    assert.equal(get(api, "automountServiceAccountToken"), false, "the api has no token");
    const container = get(api, "containers.0");
    assert.equal(get(container, "livenessProbe.httpGet.path"), "/healthz");
    assert.equal(get(container, "readinessProbe.httpGet.path"), "/readyz");
    const databaseUrl = list(container, "env").find((e) => get(e, "name") === "DATABASE_URL");
    assert.deepEqual(get(databaseUrl, "valueFrom.secretKeyRef"), {
      name: "planetary-database",
      key: "url",
    });
    assert.ok(get(api, "affinity.podAntiAffinity"), "replicas are spread");
    const job = migrationJob(objects);
    assert.match(job.metadata.name, /^planetary-migrate-[0-9a-f]{8}$/);
    assert.equal(job.metadata.annotations?.["helm.sh/hook"], "pre-install,pre-upgrade");
    const migrate = get(job, "spec.template.spec.containers.0");
    assert.deepEqual(get(migrate, "args"), ["migrate"]);
    assert.ok(text(migrate, "image").endsWith("/planetary-api:0.1.0"));
    for (const name of ["planetary-api", "planetary-orchestrator"]) {
      assert.equal(get(find(objects, "PodDisruptionBudget", name), "spec.minAvailable"), 1);
    }
    const ns = find(objects, "Namespace", "planetary-tasks");
    assert.equal(ns.metadata.labels?.["pod-security.kubernetes.io/enforce"], "baseline");
    // the API settings reach its config file; nothing secret is in it
    const config = find(objects, "ConfigMap", "planetary-config");
    const apiJson = configFile(config, "api.json");
    // the file the api reads with --config: the server's own parser accepts it
    parseServeConfig(JSON.stringify(apiJson), "api.json");
    assert.equal(get(apiJson, "api.serviceInfo.name"), "Planetary");
    assert.equal(get(apiJson, "api.maxContentBytes"), 131072);
    const podBuilder = configFile(config, "pod-config.json");
    assert.equal(get(podBuilder, "namespace"), "planetary-tasks");
    assert.equal(get(podBuilder, "serviceAccountName"), "planetary-task");
  },
});

/** A JSON file of a ConfigMap, parsed. */
function configFile(configMap: K8sObject, name: string): unknown {
  const data = get(configMap, "data") as Record<string, string> | undefined;
  const content = data?.[name];
  assert.ok(content, `${configMap.metadata.name} has ${name}`);
  return JSON.parse(content);
}

/** RBAC rules as sorted `group/resource:verb` strings. */
function ruleSet(rules: unknown[]): string[] {
  return rules.flatMap((rule) =>
    list(rule, "resources").flatMap((resource) =>
      list(rule, "verbs").map((verb) => `${list(rule, "apiGroups").join(",")}/${resource}:${verb}`)
    )
  ).sort();
}

Deno.test({
  name: "helm template grants Kubernetes access only to the orchestrator and monitor",
  ignore: !hasHelm,
  async fn() {
    const objects = await renderDefault();
    const role = find(objects, "Role", "planetary-tasks");
    assert.equal(role.metadata.namespace, "planetary-tasks");
    const expected = [
      "/configmaps:create",
      "/configmaps:delete",
      "/configmaps:get",
      "/pods/log:get",
      "/pods:create",
      "/pods:delete",
      "/pods:get",
      "/pods:list",
      "/pods:patch",
      "/pods:watch",
    ];
    assert.deepEqual(ruleSet(list(role, "rules")), expected);
    // the same rules as the Kubernetes backend's own Role, once that file exists
    try {
      const fromFile = parseObjects(
        await Deno.readTextFile(new URL("k8s/rbac/task-role.yaml", ROOT)),
      ).find((o) => o.kind === "Role");
      if (fromFile) {
        assert.deepEqual(ruleSet(list(role, "rules")), ruleSet(list(fromFile, "rules")));
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const binding = find(objects, "RoleBinding", "planetary-tasks");
    assert.deepEqual(
      list(binding, "subjects").map((s) => `${text(s, "namespace")}/${text(s, "name")}`).sort(),
      ["planetary/planetary-monitor", "planetary/planetary-orchestrator"],
    );
    assert.deepEqual(
      objects.filter((o) => o.kind.startsWith("Cluster")),
      [],
      "nothing cluster-wide",
    );
  },
});

Deno.test({
  name: "helm template denies by default and allows only the documented flows",
  ignore: !hasHelm,
  async fn() {
    const objects = await renderAllOn();
    const policies = objects.filter((o) => o.kind === "NetworkPolicy");
    const policy = (name: string): K8sObject => find(policies, "NetworkPolicy", name);
    for (
      const [name, namespace] of [
        ["planetary-default-deny", "planetary"],
        ["planetary-tasks-default-deny", "tes-tasks"],
      ] as const
    ) {
      const deny = policy(name);
      assert.equal(deny.metadata.namespace, namespace);
      assert.deepEqual(get(deny, "spec.policyTypes"), ["Ingress", "Egress"]);
      assert.equal(get(deny, "spec.ingress"), undefined, `${name} allows nothing in`);
      assert.equal(get(deny, "spec.egress"), undefined, `${name} allows nothing out`);
    }
    assert.deepEqual(
      get(policy("planetary-tasks-default-deny"), "spec.podSelector"),
      {},
      "every pod of the tasks namespace",
    );
    const taskEgress = policy("planetary-tasks-egress");
    assert.equal(taskEgress.metadata.namespace, "tes-tasks");
    assert.equal(get(taskEgress, "spec.ingress"), undefined, "nothing may connect to a task pod");
    const peers = list(taskEgress, "spec.egress").flatMap((rule) => list(rule, "to"));
    assert.deepEqual(peers.filter((p) => get(p, "ipBlock")).map((p) => get(p, "ipBlock")), [
      { cidr: "0.0.0.0/0", except: ["10.0.0.0/8", "169.254.0.0/16"] },
      { cidr: "::/0", except: ["fd00::/8"] },
    ]);
    // the only pod peer of task pods is the cluster DNS: not the api, not the database
    assert.deepEqual(
      peers.filter((p) => get(p, "podSelector")).map((p) => get(p, "podSelector.matchLabels")),
      [{ "k8s-app": "kube-dns" }],
    );
    assert.deepEqual(get(policy("planetary-api-ingress"), "spec.ingress.0.ports"), [
      { protocol: "TCP", port: 8000 },
    ]);
    assert.deepEqual(
      get(
        policy("planetary-postgresql-ingress"),
        "spec.ingress.0.from.0.podSelector.matchExpressions.1.values",
      ),
      ["api", "orchestrator", "monitor", "migrate"],
    );
    assert.deepEqual(
      get(policy("planetary-kube-apiserver-egress"), "spec.podSelector.matchExpressions.1.values"),
      ["orchestrator", "monitor"],
    );
    const apiJson = configFile(find(objects, "ConfigMap", "planetary-config"), "api.json");
    const parsed = parseServeConfig(JSON.stringify(apiJson), "api.json");
    assert.deepEqual(parsed.api?.corsOrigins, ["https://app.example.org"]);
    // storage credentials: Secret names only, handed to the task pods by the orchestrator
    const config = configFile(find(objects, "ConfigMap", "planetary-config"), "pod-config.json");
    // …which the pod builder turns into the transporters' envFrom (never the executor's)
    const pod = buildTaskPod(
      {
        id: "d2f6b1c0-0000-4000-8000-000000000001",
        executors: [{ image: "alpine", command: ["true"] }],
      },
      config as PodBuilderConfig,
    ).pod;
    assert.equal(get(pod, "metadata.namespace"), "tes-tasks");
    assert.equal(get(pod, "spec.serviceAccountName"), "planetary-task");
    assert.equal(get(pod, "spec.runtimeClassName"), "gvisor");
    const containers = [...list(pod, "spec.initContainers"), ...list(pod, "spec.containers")];
    for (const c of containers) {
      const secrets = list(c, "envFrom").map((e) => get(e, "secretRef.name"));
      const transporter = text(c, "image").includes("/planetary-transporter:");
      assert.deepEqual(
        secrets,
        transporter ? ["s3-credentials", "gcs-credentials"] : [],
        text(c, "name"),
      );
      // plain transporter settings (tasks.transporter.env) reach the transporters only
      const env = Object.fromEntries(list(c, "env").map((e) => [text(e, "name"), get(e, "value")]));
      assert.equal(env.AWS_REGION, transporter ? "eu-west-1" : undefined, text(c, "name"));
      assert.equal(env.PLANETARY_GCS, transporter ? "true" : undefined, text(c, "name"));
    }
    // workload identity: the task account carries the annotations, task pods the extra labels
    assert.deepEqual(
      get(find(objects, "ServiceAccount", "planetary-task"), "metadata.annotations"),
      {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/planetary-tasks",
        "iam.gke.io/gcp-service-account": "tasks@example-project.iam.gserviceaccount.com",
      },
    );
    const labels = get(pod, "metadata.labels") as Record<string, string>;
    assert.equal(labels["example.org/team"], "genomics");
    assert.ok(
      containers.some((c) =>
        text(c, "image") === "registry.example.org/planetary/planetary-transporter:0.1.0-test"
      ),
    );
    assert.deepEqual(get(config, "storageSecrets"), [
      "s3-credentials",
      "gcs-credentials",
    ]);
    assert.deepEqual(get(find(objects, "Ingress", "planetary-api"), "spec.tls"), [
      { hosts: ["tes.example.org"], secretName: "planetary-api-tls" },
    ]);
    const job = migrationJob(objects);
    assert.equal(job.metadata.annotations?.["helm.sh/hook"], "post-install,pre-upgrade");
    assert.equal(get(job, "spec.ttlSecondsAfterFinished"), 3600);
    const pgSecret = find(objects, "Secret", "planetary-postgresql");
    assert.match(
      text(pgSecret, "stringData.password"),
      /^[A-Za-z0-9]{32}$/,
      "a generated password",
    );
  },
});

Deno.test({
  name: "helm template names the migration Job after its spec and keeps it a pre-upgrade hook",
  ignore: !hasHelm,
  async fn() {
    const name = async (set: string[]): Promise<string> =>
      migrationJob(await renderDefault(set)).metadata.name;
    const v1 = await name([]);
    const v2 = await name(["image.tag=0.2.0"]);
    const v3 = await name(["image.tag=0.3.0"]);
    // a Job's pod template is immutable: each version must be a new Job for `kubectl apply`
    assert.equal(new Set([v1, v2, v3]).size, 3, `${v1} ${v2} ${v3}`);
    assert.equal(await name(["image.tag=0.2.0"]), v2, "the same values give the same name");
    assert.notEqual(await name(["migration.resources.limits.memory=300Mi"]), v1, "any spec change");
    assert.equal(await name(["api.replicas=5"]), v1, "settings of other objects do not");
    for (
      const [set, hook] of [[[], "pre-install,pre-upgrade"], [
        ["postgresql.enabled=true"],
        "post-install,pre-upgrade",
      ]] as const
    ) {
      const job = migrationJob(await renderDefault([...set, "image.tag=0.2.0"]));
      assert.equal(job.metadata.annotations?.["helm.sh/hook"], hook);
      assert.deepEqual(
        (job.metadata.annotations?.["helm.sh/hook-delete-policy"] ?? "").split(",").sort(),
        ["before-hook-creation", "hook-succeeded"],
      );
      assert.equal(get(job, "spec.ttlSecondsAfterFinished"), 86400);
      assert.match(text(job, "spec.template.spec.containers.0.image"), /planetary-api:0\.2\.0$/);
    }
    // the name stays a valid label value (≤ 63) with the longest prefix the chart allows
    const long = await name([`fullnameOverride=${"x".repeat(60)}`]);
    assert.match(long, /^x{46}-migrate-[0-9a-f]{8}$/);
    assert.ok(long.length <= 63, long);
    assert.deepEqual(jobsOf(await renderDefault(["migration.enabled=false"])), []);
  },
});

/** Jobs of a render (none when the migration is off). */
function jobsOf(objects: K8sObject[]): K8sObject[] {
  return objects.filter((o) => o.kind === "Job");
}

/** Renders NOTES.txt (helm template leaves it out): a copy of the chart where it is a ConfigMap. */
async function renderNotes(set: string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "planetary-notes-" });
  try {
    const chart = `${dir}/planetary`;
    await new Deno.Command("cp", { args: ["-r", CHART_DIR.pathname, chart] }).output();
    const notes = await Deno.readTextFile(`${chart}/templates/NOTES.txt`);
    await Deno.remove(`${chart}/templates/NOTES.txt`);
    await Deno.writeTextFile(
      `${chart}/templates/_notes_test.tpl`,
      `{{- define "notes.test" -}}\n${notes}{{- end -}}\n`,
    );
    await Deno.writeTextFile(
      `${chart}/templates/notes-test.yaml`,
      'kind: Notes\nnotes: {{ include "notes.test" . | toJson }}\n',
    );
    const result = await runHelm(
      [
        "template",
        "planetary",
        chart,
        "-n",
        "planetary",
        "--show-only",
        "templates/notes-test.yaml",
        ...set.flatMap((v) => ["--set", v]),
      ],
      HELM,
    );
    assert.ok(result.success, result.stderr);
    return text(parseObjects(result.stdout)[0], "notes");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "helm template mounts the API tokens Secret into the api pods only, never a ConfigMap",
  ignore: !hasHelm,
  async fn() {
    const objects = await renderAllOn();
    // the Secret's name appears in exactly one object: the api Deployment
    const holders = objects.filter((o) => JSON.stringify(o).includes("planetary-api-tokens"));
    assert.deepEqual(holders.map((o) => `${o.kind}/${o.metadata.name}`), [
      "Deployment/planetary-api",
    ]);
    for (const config of objects.filter((o) => o.kind === "ConfigMap")) {
      assert.ok(!JSON.stringify(config).includes("authTokens"), `${config.metadata.name}`);
    }
    const pod = get(holders[0], "spec.template.spec");
    const volume = list(pod, "volumes").find((v) =>
      get(v, "secret.secretName") === "planetary-api-tokens"
    );
    assert.ok(volume, "a Secret volume");
    assert.deepEqual(get(volume, "secret.items"), [{ key: "tokens", path: "tokens.json" }]);
    assert.equal(get(volume, "secret.defaultMode"), 0o440);
    const container = get(pod, "containers.0");
    const mount = list(container, "volumeMounts").find((m) =>
      get(m, "name") === get(volume, "name")
    );
    assert.equal(get(mount, "readOnly"), true);
    const variable = list(container, "env").find((e) =>
      get(e, "name") === "PLANETARY_AUTH_TOKENS_FILE"
    );
    assert.equal(get(variable, "value"), `${text(mount, "mountPath")}/tokens.json`);
    // the other pods get neither the variable nor a Secret volume
    for (const obj of objects) {
      const spec = podSpecOf(obj);
      if (!spec || obj === holders[0]) continue;
      assert.ok(!JSON.stringify(spec).includes("PLANETARY_AUTH_TOKENS_FILE"), obj.metadata.name);
      assert.ok(
        list(spec, "volumes").every((v) => get(v, "secret") === undefined),
        `${obj.kind}/${obj.metadata.name} mounts no Secret`,
      );
    }
    // off by default: no variable, no Secret volume
    const api = get(
      find(await renderDefault(), "Deployment", "planetary-api"),
      "spec.template.spec",
    );
    assert.ok(!JSON.stringify(api).includes("PLANETARY_AUTH_TOKENS_FILE"));
    assert.ok(list(api, "volumes").every((v) => get(v, "secret") === undefined));
    // bad names are refused by the schema
    for (
      const set of ["api.auth.existingSecret=Bad_Name", "api.auth.secretKey=", "api.auth.token=x"]
    ) {
      const bad = await runHelm(["template", "x", CHART_DIR.pathname, "--set", set], HELM);
      assert.ok(!bad.success, `--set ${set} is refused`);
      assert.match(bad.stderr, /schema/);
    }
  },
});

Deno.test({
  name: "NOTES.txt says whether the API requires tokens",
  ignore: !hasHelm,
  async fn() {
    const off = await renderNotes([]);
    assert.match(off, /WARNING: authentication is OFF/);
    assert.match(off, /--set api\.auth\.existingSecret=planetary-api-tokens/);
    const on = await renderNotes([
      "api.auth.existingSecret=tes-tokens",
      "api.auth.secretKey=t.json",
    ]);
    assert.doesNotMatch(on, /authentication is OFF/);
    assert.match(on, /Authentication is ON/);
    assert.match(on, /key\s+"t\.json" of Secret "tes-tokens"/);
    assert.match(on, /rollout restart deployment\/planetary-api/);
    assert.match(on, /curl -H "Authorization: Bearer \$TOKEN"/);
  },
});

Deno.test({
  name: "helm template gives the API exactly the backend_parameters the pod builder applies",
  ignore: !hasHelm,
  async fn() {
    for (
      const [objects, expected] of [
        [await renderDefault(), ["machine_type"]],
        [await renderAllOn(), ["machine_type", "pool", "sandbox"]],
        [await renderDefault(["tasks.backendParameters.machine_type=null"]), []],
      ] as const
    ) {
      const config = find(objects, "ConfigMap", "planetary-config");
      const api = parseServeConfig(JSON.stringify(configFile(config, "api.json")), "api.json").api;
      const pod = configFile(config, "pod-config.json") as PodBuilderConfig;
      assert.deepEqual(api?.supportedBackendParameters, [...expected]);
      assert.deepEqual(supportedBackendParameters(pod), [...expected]);
    }
    // a mapping the pod builder applies: the value lands in the pod
    const config = configFile(
      find(await renderAllOn(), "ConfigMap", "planetary-config"),
      "pod-config.json",
    );
    const { pod } = buildTaskPod(
      {
        id: "d2f6b1c0-0000-4000-8000-000000000002",
        executors: [{ image: "alpine", command: ["true"] }],
        resources: { backend_parameters: { pool: "highmem", sandbox: "kata" } },
      },
      config as PodBuilderConfig,
    );
    assert.equal(
      (get(pod, "spec.nodeSelector") as Record<string, string>)["example.org/pool"],
      "highmem",
    );
    assert.equal(get(pod, "spec.runtimeClassName"), "kata");
    for (
      const set of ["tasks.backendParameters.x.kind=label", "tasks.backendParameters.x.kind=nope"]
    ) {
      const bad = await runHelm(["template", "x", CHART_DIR.pathname, "--set", set], HELM);
      assert.ok(!bad.success, `--set ${set} is refused`);
    }
  },
});

Deno.test({
  name: "helm template hands the lease and keep-finished settings to the orchestrator",
  ignore: !hasHelm,
  async fn() {
    const envOf = (objects: K8sObject[]): Record<string, unknown> =>
      Object.fromEntries(
        list(
          find(objects, "Deployment", "planetary-orchestrator"),
          "spec.template.spec.containers.0.env",
        )
          .map((e) => [text(e, "name"), get(e, "value")]),
      );
    const defaults = envOf(await renderDefault());
    assert.equal(defaults.PLANETARY_LEASE_MS, "30000");
    assert.equal(defaults.PLANETARY_KEEP_FINISHED_PODS, undefined, "pods deleted at once");
    const allOn = envOf(await renderAllOn());
    assert.equal(allOn.PLANETARY_LEASE_MS, "45000");
    // monitor.keepFinishedSeconds only works when the orchestrator leaves finished pods alone
    assert.equal(allOn.PLANETARY_KEEP_FINISHED_PODS, "true");
  },
});

Deno.test({
  name: "renderManifests() matches k8s/manifests (run `deno task manifests`)",
  ignore: !hasHelm,
  async fn() {
    for (const [name, text] of await renderManifests(HELM)) {
      const onDisk = await Deno.readTextFile(new URL(name, MANIFESTS_DIR)).catch(() => "");
      assert.ok(onDisk === text, `k8s/manifests/${name} is stale: run deno task manifests`);
    }
  },
});

// ---------------------------------------------------------------------------------------------
// a real kube-apiserver

const RESOURCES: Record<string, { base: string; plural: string; namespaced: boolean }> = {
  "v1/Namespace": { base: "/api/v1", plural: "namespaces", namespaced: false },
  "v1/ServiceAccount": { base: "/api/v1", plural: "serviceaccounts", namespaced: true },
  "v1/Secret": { base: "/api/v1", plural: "secrets", namespaced: true },
  "v1/ConfigMap": { base: "/api/v1", plural: "configmaps", namespaced: true },
  "v1/Service": { base: "/api/v1", plural: "services", namespaced: true },
  "apps/v1/Deployment": { base: "/apis/apps/v1", plural: "deployments", namespaced: true },
  "apps/v1/StatefulSet": { base: "/apis/apps/v1", plural: "statefulsets", namespaced: true },
  "batch/v1/Job": { base: "/apis/batch/v1", plural: "jobs", namespaced: true },
  "rbac.authorization.k8s.io/v1/Role": {
    base: "/apis/rbac.authorization.k8s.io/v1",
    plural: "roles",
    namespaced: true,
  },
  "rbac.authorization.k8s.io/v1/RoleBinding": {
    base: "/apis/rbac.authorization.k8s.io/v1",
    plural: "rolebindings",
    namespaced: true,
  },
  "networking.k8s.io/v1/NetworkPolicy": {
    base: "/apis/networking.k8s.io/v1",
    plural: "networkpolicies",
    namespaced: true,
  },
  "networking.k8s.io/v1/Ingress": {
    base: "/apis/networking.k8s.io/v1",
    plural: "ingresses",
    namespaced: true,
  },
  "policy/v1/PodDisruptionBudget": {
    base: "/apis/policy/v1",
    plural: "poddisruptionbudgets",
    namespaced: true,
  },
};

class ApiClient {
  readonly #cp: ControlPlane;
  readonly #client: Deno.HttpClient;
  constructor(cp: ControlPlane) {
    this.#cp = cp;
    this.#client = Deno.createHttpClient({ caCerts: [cp.caPem] });
  }
  async request(
    method: string,
    path: string,
    body: unknown,
    contentType = "application/json",
  ): Promise<{ status: number; json: unknown }> {
    const response = await fetch(`${this.#cp.server}${path}`, {
      method,
      client: this.#client,
      headers: {
        authorization: `Bearer ${this.#cp.adminToken}`,
        "content-type": contentType,
        accept: "application/json",
      },
      body: JSON.stringify(body),
    });
    return { status: response.status, json: await response.json() };
  }
  /** Server-side apply, whatever the answer. */
  async tryApply(obj: K8sObject, dryRun: boolean): Promise<{ status: number; json: unknown }> {
    const resource = RESOURCES[`${obj.apiVersion}/${obj.kind}`];
    assert.ok(resource, `a known built-in kind: ${obj.apiVersion}/${obj.kind}`);
    const ns = resource.namespaced ? `/namespaces/${obj.metadata.namespace}` : "";
    assert.ok(!resource.namespaced || obj.metadata.namespace, `${obj.kind} has a namespace`);
    const query = `fieldManager=planetary-helm-test&force=true${dryRun ? "&dryRun=All" : ""}`;
    return await this.request(
      "PATCH",
      `${resource.base}${ns}/${resource.plural}/${obj.metadata.name}?${query}`,
      obj,
      "application/apply-patch+yaml",
    );
  }
  /** Server-side apply (JSON is YAML, so the body is the object as JSON). */
  async apply(obj: K8sObject, dryRun: boolean): Promise<unknown> {
    const { status, json } = await this.tryApply(obj, dryRun);
    assert.ok(
      status === 200 || status === 201,
      `${dryRun ? "dry-run " : ""}apply ${obj.kind}/${obj.metadata.name}: ${status} ${
        JSON.stringify(get(json, "message") ?? json)
      }`,
    );
    assert.equal(get(json, "metadata.name"), obj.metadata.name);
    return json;
  }
  async can(user: string, namespace: string, verb: string, resource: string): Promise<boolean> {
    const [, , ns] = user.split(":");
    const { status, json } = await this.request(
      "POST",
      "/apis/authorization.k8s.io/v1/subjectaccessreviews",
      {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user,
          groups: [
            "system:serviceaccounts",
            `system:serviceaccounts:${ns}`,
            "system:authenticated",
          ],
          resourceAttributes: {
            namespace,
            verb,
            resource: resource.split("/")[0],
            subresource: resource.split("/")[1] ?? "",
          },
        },
      },
    );
    assert.equal(status, 201);
    return get(json, "status.allowed") === true;
  }
  close(): void {
    this.#client.close();
  }
}

async function applyAll(api: ApiClient, objects: K8sObject[]): Promise<void> {
  const namespaces = objects.filter((o) => o.kind === "Namespace");
  const rest = objects.filter((o) => o.kind !== "Namespace");
  for (const ns of namespaces) {
    await api.apply(ns, true);
    await api.apply(ns, false);
  }
  for (const obj of rest) await api.apply(obj, true);
  for (const obj of rest) {
    const applied = await api.apply(obj, false);
    assert.ok(get(applied, "metadata.uid"), `${obj.kind}/${obj.metadata.name} is stored`);
  }
}

Deno.test({
  name: "k8s/manifests and the all-on render are accepted by a real kube-apiserver",
  ignore: !hasHelm || !requireControlPlane(),
  async fn() {
    const cp = await startControlPlane({ nodes: [] });
    const api = new ApiClient(cp);
    try {
      // the committed plain manifests, exactly as `kubectl apply -k k8s/manifests` would send them
      const manifests: K8sObject[] = [];
      for (const name of ["namespace.yaml", "planetary.yaml"]) {
        manifests.push(...parseObjects(await Deno.readTextFile(new URL(name, MANIFESTS_DIR))));
      }
      await applyAll(api, manifests);
      // an upgrade without Helm: the next version's migration Job is a new object, accepted;
      // the same change under the old name is what `kubectl apply` could not do
      const oldJob = migrationJob(manifests);
      const newJob = migrationJob(await renderDefault(["image.tag=0.2.0"]));
      assert.notEqual(newJob.metadata.name, oldJob.metadata.name);
      assert.equal((await api.tryApply(newJob, false)).status, 201, "a new Job is created");
      const reused = await api.tryApply({ ...newJob, metadata: oldJob.metadata }, true);
      assert.equal(reused.status, 422, "a Job's pod template cannot change");
      assert.match(String(get(reused.json, "message")), /field is immutable/);
      // every option on, as another release in another namespace
      const allOn = await renderAllOn("planetary-all");
      await applyAll(api, [
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "planetary-all" } },
        ...allOn,
      ]);
      // what the accounts of the default install may do
      const sa = (name: string): string => `system:serviceaccount:planetary:planetary-${name}`;
      for (const who of ["orchestrator", "monitor"]) {
        for (
          const [verb, resource] of [["create", "pods"], ["watch", "pods"], ["get", "pods/log"]]
        ) {
          assert.ok(
            await api.can(sa(who), "planetary-tasks", verb!, resource!),
            `${who} ${verb} ${resource}`,
          );
        }
        assert.ok(
          !(await api.can(sa(who), "planetary", "create", "pods")),
          "not in its own namespace",
        );
        assert.ok(!(await api.can(sa(who), "planetary-tasks", "get", "secrets")), "no secrets");
        assert.ok(!(await api.can(sa(who), "default", "list", "pods")), "not elsewhere");
      }
      assert.ok(!(await api.can(sa("api"), "planetary-tasks", "list", "pods")), "the api: nothing");
      assert.ok(
        !(await api.can(
          "system:serviceaccount:planetary-tasks:planetary-task",
          "planetary-tasks",
          "get",
          "pods",
        )),
        "task pods: nothing",
      );
    } catch (error) {
      console.error(cp.logTails(20));
      throw error;
    } finally {
      api.close();
      await cp.stop();
    }
  },
});
