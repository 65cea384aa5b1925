/**
 * The `deno run` images of `k8s/Dockerfile` (tests/_harness/service_images.ts), built here with
 * no registry and run in a private Docker engine the way a pod runs them: as uid 65532 with a
 * read-only root file system and no capabilities. The transporter downloads a `file://` input
 * and inline content into a volume and uploads an output; the api migrates a real PostgreSQL and
 * answers service-info and a task round trip over the host network; the other services load
 * their whole module graph (`--help`). Without the engine (or PostgreSQL) it skips with one line,
 * and fails under `CI=true`.
 */
import assert from "node:assert/strict";
import { API_PERMISSIONS } from "../cli/api.ts";
import { SERVE_PERMISSIONS } from "../cli/commands/serve.ts";
import { MONITOR_PERMISSIONS } from "../cli/monitor.ts";
import { ORCHESTRATOR_PERMISSIONS } from "../cli/orchestrator.ts";
import { CLI_PERMISSIONS } from "../cli/permissions.ts";
import { TRANSPORTER_PERMISSIONS, TRANSPORTER_V8_FLAGS } from "../transporter/main.ts";
import { REPORT_PREFIX, type TransferReport, type TransferSpec } from "../src/pod/layout.ts";
import { requireComponent } from "./_harness/component.ts";
import { type DockerEngine, dockerMissing, startDockerd } from "./_harness/docker.ts";
import { freePort } from "./_harness/emulators.ts";
import { parseCompileTask } from "./_harness/images.ts";
import { createDatabase, PG_BIN, postgresInstalled, startPostgres } from "./_harness/postgres.ts";
import {
  buildServiceImages,
  SERVICE_TARGETS,
  serviceEntrypoint,
  type ServiceImages,
  serviceImagesMissing,
  type ServiceTarget,
} from "./_harness/service_images.ts";

const ROOT = new URL("../", import.meta.url);
const DOCKERFILE = Deno.readTextFileSync(new URL("k8s/Dockerfile", ROOT));

/** Per target: the compile task and the permission constants its entrypoint exports. */
const COMPILED: Record<ServiceTarget, { task: string; constants: readonly string[][] }> = {
  api: { task: "compile:api", constants: [[...API_PERMISSIONS]] },
  orchestrator: { task: "compile:orchestrator", constants: [[...ORCHESTRATOR_PERMISSIONS]] },
  monitor: { task: "compile:monitor", constants: [[...MONITOR_PERMISSIONS]] },
  transporter: { task: "compile:transporter", constants: [[...TRANSPORTER_PERMISSIONS]] },
  // the planetary binary: client verbs, serve and the hidden transporter command
  serve: {
    task: "compile:cli",
    constants: [[...CLI_PERMISSIONS], [...SERVE_PERMISSIONS], [...TRANSPORTER_PERMISSIONS]],
  },
};

/** The only flags besides permission and V8 flags a `deno run` target may add. */
const RUN_FLAGS: readonly string[] = ["--cached-only", "--frozen", "--config=/app/deno.json"];

function compileTask(task: string): ReturnType<typeof parseCompileTask> {
  const json = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT))) as {
    tasks: Record<string, string>;
  };
  return parseCompileTask(task, json.tasks[task]!);
}

for (const target of SERVICE_TARGETS) {
  Deno.test(`k8s/Dockerfile ${target}-run runs its compile task's entry with exactly its flags`, () => {
    const argv = serviceEntrypoint(target);
    const compiled = compileTask(COMPILED[target].task);
    assert.deepEqual(argv.slice(0, 2), ["/usr/local/bin/deno", "run"]);
    const entryAt = argv.indexOf(`/app/${compiled.entry}`);
    assert.ok(entryAt > 0, `runs /app/${compiled.entry}: ${argv.join(" ")}`);
    const flags = argv.slice(2, entryAt);
    const permissions = flags.filter((f) => /^--(allow|deny)-/.test(f));
    assert.deepEqual(permissions, compiled.permissions, "the compile task's permission flags");
    const union = new Set(COMPILED[target].constants.flat());
    assert.deepEqual([...permissions].sort(), [...union].sort(), "the exported constants");
    assert.deepEqual(flags.filter((f) => f.startsWith("--v8-flags")), compiled.v8Flags);
    if (target === "transporter") assert.deepEqual(compiled.v8Flags, [...TRANSPORTER_V8_FLAGS]);
    const others = flags.filter((f) => !/^--(allow|deny)-|^--v8-flags=/.test(f));
    assert.deepEqual(others, [...RUN_FLAGS], "no other flag (no --allow-all, no reload)");
    if (target === "serve") {
      assert.deepEqual(argv.slice(entryAt + 1), ["serve", "--host", "0.0.0.0"]);
    } else assert.equal(argv.length, entryAt + 1, "no arguments after the entry");
  });
}

Deno.test("k8s/Dockerfile deno run targets: public base names, nonroot, classic-builder safe", () => {
  const pinned = Deno.readTextFileSync(new URL(".deno-version", ROOT)).trim().replace(/^deno /, "");
  assert.match(DOCKERFILE, new RegExp(`^ARG DENO_BIN_IMAGE=denoland/deno:bin-${pinned}$`, "m"));
  assert.match(DOCKERFILE, /^ARG RUNTIME_IMAGE=gcr\.io\/distroless\/cc-debian12:nonroot$/m);
  // a `# syntax=` line makes BuildKit pull a frontend image, which cannot be pulled here
  assert.doesNotMatch(DOCKERFILE, /^# *syntax=/m);
  const stages = DOCKERFILE.split(/^FROM /m);
  const base = stages.find((s) => s.startsWith("${RUNTIME_IMAGE} AS run-base\n"));
  assert.ok(base, "run-base FROM the runtime image");
  assert.match(base, /USER 65532:65532\s*$/, "run-base ends as uid 65532");
  // the classic builder builds every stage before the target: the run stages come before the
  // release builder, whose `deno compile` cannot run here
  const firstRun = DOCKERFILE.indexOf("AS api-run");
  assert.ok(firstRun > 0 && firstRun < DOCKERFILE.indexOf("AS builder"));
});

// ---------------------------------------------------------------------------------------------
// built and run in an engine

const missing = dockerMissing() ?? await serviceImagesMissing() ??
  (postgresInstalled() ? undefined : `PostgreSQL 15 server binaries not found in ${PG_BIN}`);
const ENABLED = requireComponent(missing === undefined, missing ?? "");

/** `docker run` options of every container here: as a pod's security context has them. */
const LOCKED_DOWN = [
  "--read-only",
  "--user",
  "65532:65532",
  "--cap-drop",
  "ALL",
  "--security-opt",
  "no-new-privileges",
];

async function run(engine: DockerEngine, args: string[]): Promise<{ code: number; out: string }> {
  const result = await engine.docker(["run", "--rm", ...LOCKED_DOWN, ...args]);
  return { code: result.code, out: `${result.stdout}${result.stderr}` };
}

/** A folder the container user (65532) may write. */
async function sharedDir(root: string, name: string): Promise<string> {
  const dir = `${root}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.chmod(dir, 0o777);
  return dir;
}

Deno.test({
  name: "service images build without a registry and run read-only as uid 65532",
  ignore: !ENABLED,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const engineStarted = performance.now();
    await using engine = await startDockerd();
    const engineSeconds = (performance.now() - engineStarted) / 1000;
    const images: ServiceImages = await buildServiceImages({ engine });
    console.error(
      `service images: ${images.cached ? "cached (loaded)" : "built"} in ${
        images.seconds.toFixed(1)
      } s (engine start ${
        engineSeconds.toFixed(1)
      } s); the build took ${images.build.seconds} s; ` +
        `archive ${(images.build.archiveBytes / 2 ** 20).toFixed(0)} MiB, image ` +
        `${(images.build.imageBytes.transporter / 2 ** 20).toFixed(0)} MiB each (layers shared)`,
    );
    const root = await Deno.makeTempDir({ prefix: "planetary-service-images-test-" });
    try {
      await t.step("every image: uid 65532, the Dockerfile's ENTRYPOINT", async () => {
        for (const target of SERVICE_TARGETS) {
          const inspect = await engine.docker([
            "image",
            "inspect",
            "--format",
            "{{json .Config.User}} {{json .Config.Entrypoint}}",
            images.images[target],
          ]);
          assert.equal(inspect.code, 0, inspect.stderr);
          const [user, entrypoint] = inspect.stdout.trim().split(" ", 2).map((v) => JSON.parse(v));
          assert.equal(user, "65532:65532", target);
          assert.deepEqual(entrypoint, serviceEntrypoint(target), target);
        }
      });

      await t.step(
        "transporter: inputs (file:// and inline) into a volume, then outputs",
        async () => {
          const remote = await sharedDir(root, "remote");
          const spec = await sharedDir(root, "spec");
          const data = await sharedDir(root, "data");
          const state = await sharedDir(root, "state");
          const term = await sharedDir(root, "term");
          const results = await sharedDir(root, "results");
          await Deno.writeTextFile(`${remote}/reads.txt`, "ACGT from remote storage\n");
          const transfer: TransferSpec = {
            version: 1,
            taskId: "image-test",
            inputs: [
              { url: "file:///remote/reads.txt", path: "/data/in/reads.txt", type: "FILE" },
              { content: "inline content\n", path: "/data/in/inline.txt", type: "FILE" },
            ],
            outputs: [{ url: "file:///results/out.txt", path: "/data/in/reads.txt", type: "FILE" }],
            executors: [],
            tailBytes: 1024,
          };
          await Deno.writeTextFile(`${spec}/transfer.json`, JSON.stringify(transfer));
          const volumes = [
            "--network",
            "none",
            "-v",
            `${remote}:/remote:ro`,
            "-v",
            `${results}:/results`,
            "-v",
            `${spec}:/planetary/spec:ro`,
            "-v",
            `${data}:/data`,
            "-v",
            `${state}:/planetary/state`,
            "-v",
            `${term}:/planetary/term`,
            "-e",
            "PLANETARY_FILE_ALLOW_LIST=/remote:/results",
            "-e",
            "PLANETARY_TERMINATION_LOG=/planetary/term/termination-log",
            "-e",
            "NO_COLOR=1",
            images.images.transporter,
          ];
          const inputs = await run(engine, [...volumes, "inputs", "/planetary/spec/transfer.json"]);
          assert.equal(inputs.code, 0, inputs.out);
          assert.equal(
            await Deno.readTextFile(`${data}/in/reads.txt`),
            "ACGT from remote storage\n",
          );
          assert.equal(await Deno.readTextFile(`${data}/in/inline.txt`), "inline content\n");
          const outputs = await engine.docker([
            "run",
            "--rm",
            ...LOCKED_DOWN,
            ...volumes,
            "outputs",
            "/planetary/spec/transfer.json",
          ]);
          assert.equal(outputs.code, 0, outputs.stderr);
          const line = outputs.stdout.split("\n").find((l) => l.startsWith(REPORT_PREFIX));
          assert.ok(line, `a report line: ${outputs.stdout}`);
          const report = JSON.parse(line.slice(REPORT_PREFIX.length)) as TransferReport;
          assert.equal(report.outputs.length, 1, line);
          assert.equal(await Deno.readTextFile(`${results}/out.txt`), "ACGT from remote storage\n");
          // a bad spec: exit 1 and the reason in the termination message
          await Deno.writeTextFile(`${spec}/bad.json`, JSON.stringify({ version: 9 }));
          const bad = await run(engine, [...volumes, "inputs", "/planetary/spec/bad.json"]);
          assert.equal(bad.code, 1, bad.out);
          assert.match(await Deno.readTextFile(`${term}/termination-log`), /transfer spec/);
        },
      );

      await t.step("api: migrate, then service-info and a task over the host network", async () => {
        const cluster = await startPostgres();
        const name = `planetary-api-image-test-${Deno.pid}`;
        try {
          const url = await createDatabase(cluster, "image_test");
          const env = ["--network", "host", "-e", `DATABASE_URL=${url}`, "-e", "NO_COLOR=1"];
          const migrate = await run(engine, [...env, images.images.api, "migrate"]);
          assert.equal(migrate.code, 0, migrate.out);
          assert.match(migrate.out, /migrations applied/);
          const port = freePort();
          const started = await engine.docker([
            "run",
            "--detach",
            "--name",
            name,
            ...LOCKED_DOWN,
            ...env,
            images.images.api,
            "--host",
            "127.0.0.1",
            "--port",
            String(port),
          ]);
          assert.equal(started.code, 0, started.stderr);
          const base = `http://127.0.0.1:${port}/ga4gh/tes/v1`;
          const deadline = Date.now() + 60_000;
          let info: Record<string, unknown> | undefined;
          while (!info) {
            const response = await fetch(`${base}/service-info`).catch(() => undefined);
            if (response?.ok) info = await response.json() as Record<string, unknown>;
            else {
              await response?.body?.cancel();
              if (Date.now() > deadline) {
                const logs = await engine.docker(["logs", name]);
                assert.fail(`no service-info within 60 s:\n${logs.stdout}${logs.stderr}`);
              }
              await new Promise((resolve) => setTimeout(resolve, 200));
            }
          }
          assert.equal((info.type as Record<string, unknown>)?.artifact, "tes");
          const created = await fetch(`${base}/tasks`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ executors: [{ image: "alpine:3.20", command: ["true"] }] }),
          });
          assert.equal(created.status, 200, await created.clone().text());
          const { id } = await created.json() as { id: string };
          const task = await (await fetch(`${base}/tasks/${id}`)).json() as { state: string };
          assert.equal(task.state, "QUEUED", "queued in PostgreSQL (no orchestrator here)");
        } finally {
          await engine.docker(["rm", "--force", name]);
          await cluster.stop();
        }
      });

      await t.step(
        "orchestrator, monitor, serve: the whole module graph loads (--help)",
        async () => {
          for (const target of ["orchestrator", "monitor", "serve"] as const) {
            const help = await run(engine, ["--network", "none", images.images[target], "--help"]);
            assert.equal(help.code, 0, `${target}: ${help.out}`);
            assert.match(help.out, /Usage|usage/, target);
          }
        },
      );
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
