/**
 * `planetary serve` moves task files between cloud stores: a real serve subprocess (exactly
 * `SERVE_PERMISSIONS`) configured for S3 (moto, with IAM auth), Azure Blob (Azurite) and GCS
 * (fake-gcs-server) at once, only through the provider variables of its environment. Tasks
 * submitted over HTTP read a FILE and a DIRECTORY from one store and write a FILE, a DIRECTORY
 * and wildcard matches to another; the storage credentials reach the transporter containers
 * only (an executor that prints its environment sees none) and no secret value shows up in the
 * API, serve's output, the data folder (database, pod logs) or the pod specs.
 *
 * Needs the host runtime and the emulators of `tests/emulators/install.sh`; missing ones skip
 * locally and fail under CI=true.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import { Storage as GcsSdk } from "@google-cloud/storage";
import type { V1Container } from "@kubernetes/client-node";
import {
  AzureBlobStorage,
  GcsStorage,
  joinUrl,
  S3Storage,
  type Storage,
} from "../src/storage/mod.ts";
import type { PodEvent } from "../src/orchestrator/backend.ts";
import { resolveServeOptions } from "../src/server/serve_config.ts";
import { startServer } from "../src/server/start_server.ts";
import { STORAGE_SECRET_NAME } from "../src/server/storage_environment.ts";
import { openTaskStore } from "../src/store/open_store.ts";
import { TesClient } from "../src/client/mod.ts";
import type { TesOutputFileLog, TesTask } from "../src/tes/model.ts";
import { requireComponent } from "./_harness/component.ts";
import {
  AZURITE_ACCOUNT,
  AZURITE_KEY,
  azuriteConnectionString,
  type Emulator,
  emulatorInstalled,
  type MotoEmulator,
  startAzurite,
  startFakeGcs,
  startMoto,
} from "./_harness/emulators.ts";
import { type ServeHarness, startServe } from "./_harness/serve.ts";
import { hostRuntimeWorks } from "./_harness/host_runtime.ts";

const ENABLED = requireComponent(
  await hostRuntimeWorks(),
  "serve cloud: the host runtime needs util-linux `unshare` and root or user namespaces",
) && requireComponent(
  emulatorInstalled("s3") && emulatorInstalled("azure") && emulatorInstalled("gcs"),
  "serve cloud: storage emulators not installed (run `sh tests/emulators/install.sh`)",
);

/** Longest time one task may take (the 2-core CI machine runs several at once). */
const TASK_DEADLINE_MS = 180_000;
const MIB = 1024 * 1024;
const ALPINE = "alpine:3.20";

/** The variables an executor must never see (their names, whatever their value). */
const STORAGE_NAMES = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_REGION",
  "AZURE_STORAGE_CONNECTION_STRING",
  "PLANETARY_S3_ENDPOINT",
  "PLANETARY_GCS_ENDPOINT",
  "GOOGLE_CLOUD_PROJECT",
];

/** One emulated store: where the test reads and writes it, and its task URLs. */
interface Store {
  name: "s3" | "azure" | "gcs";
  storage: Storage;
  /** URL of `path` in the store's source container/bucket. */
  source(path: string): string;
  /** URL of `path` in the store's destination container/bucket. */
  dest(path: string): string;
}

/** Deterministic bytes (every byte value, in an order that depends on `seed`). */
function bytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 131 + seed * 17 + (i >> 12)) & 0xff;
  return out;
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

async function readBytes(storage: Storage, url: string): Promise<Uint8Array> {
  return new Uint8Array(await new Response(await storage.read(url)).arrayBuffer());
}

async function put(storage: Storage, url: string, data: Uint8Array): Promise<void> {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(data);
      controller.close();
    },
  });
  await storage.write(url, body, { size: data.length });
}

/** The input tree of a source store: a FILE and a DIRECTORY (nested, a space, a larger file). */
function inputTree(
  store: Store["name"],
): { sample: Uint8Array; reads: Record<string, Uint8Array> } {
  const seed = store.length;
  return {
    sample: new TextEncoder().encode(`sample from ${store}: ünïcode\n`),
    reads: {
      "r1.fastq": new TextEncoder().encode(`@${store}-r1\nACGT\n+\nIIII\n`),
      "lane 2/r2.fastq": new TextEncoder().encode(`@${store}-r2\nTTTT\n+\nIIII\n`),
      "big.bin": bytes(2 * MIB + 3, seed),
    },
  };
}

/**
 * A task that copies its inputs to its outputs and prints its environment: inputs from
 * `from`, outputs to `to` under `prefix`.
 */
function copyTask(from: Store, to: Store, prefix: string): TesTask {
  return {
    name: `${from.name}-to-${to.name}`,
    inputs: [
      { url: from.source("in/sample.txt"), path: "/data/in/sample.txt", type: "FILE" },
      { url: from.source("in/reads"), path: "/data/in/reads", type: "DIRECTORY" },
    ],
    outputs: [
      { url: to.dest(`${prefix}/sample.txt`), path: "/data/out/sample.txt", type: "FILE" },
      { url: to.dest(`${prefix}/results`), path: "/data/results", type: "DIRECTORY" },
      {
        url: to.dest(`${prefix}/logs`),
        path: "/data/logs/*.log",
        path_prefix: "/data/logs/",
        type: "DIRECTORY",
      },
    ],
    executors: [{
      image: ALPINE,
      command: [
        "/bin/sh",
        "-c",
        "set -e; mkdir -p /data/out /data/results /data/logs; " +
        "cp /data/in/sample.txt /data/out/sample.txt; cp -R /data/in/reads/. /data/results/; " +
        "wc -c < /data/in/sample.txt > /data/logs/count.log; " +
        "ls /data/in/reads > /data/logs/listing.log; echo skipped > /data/logs/not-a-log.txt; " +
        "env",
      ],
    }],
  };
}

/** The outputs a {@linkcode copyTask} must report, sorted by URL. */
function expectedOutputs(from: Store, to: Store, prefix: string): TesOutputFileLog[] {
  const { sample, reads } = inputTree(from.name);
  const count = new TextEncoder().encode(`${sample.length}\n`);
  const listing = new TextEncoder().encode("big.bin\nlane 2\nr1.fastq\n");
  const files: [string, string, number][] = [
    [to.dest(`${prefix}/sample.txt`), "/data/out/sample.txt", sample.length],
    ...Object.entries(reads).map(([rel, data]): [string, string, number] => [
      joinUrl(to.dest(`${prefix}/results`), rel),
      `/data/results/${rel}`,
      data.length,
    ]),
    [joinUrl(to.dest(`${prefix}/logs`), "count.log"), "/data/logs/count.log", count.length],
    [joinUrl(to.dest(`${prefix}/logs`), "listing.log"), "/data/logs/listing.log", listing.length],
  ];
  return files
    .map(([url, path, size]) => ({ url, path, size_bytes: String(size) }))
    .sort((a, b) => a.url.localeCompare(b.url));
}

function sortedOutputs(task: TesTask): TesOutputFileLog[] {
  return [...task.logs?.[0]?.outputs ?? []].sort((a, b) => a.url.localeCompare(b.url));
}

/** Every regular file under `dir` (recursively), for a byte search. */
async function* filesUnder(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* filesUnder(path);
    else if (entry.isFile) yield path;
  }
}

/** The files under `dir` that hold any of `needles` (as bytes). */
async function filesHolding(dir: string, needles: string[]): Promise<string[]> {
  const latin1 = new TextDecoder("latin1");
  const found: string[] = [];
  for await (const file of filesUnder(dir)) {
    const text = latin1.decode(await Deno.readFile(file).catch(() => new Uint8Array()));
    if (needles.some((needle) => text.includes(needle))) found.push(file);
  }
  return found;
}

/** Starts the three emulators with a source and a destination container/bucket each. */
async function startStores(): Promise<{
  emulators: Emulator[];
  moto: MotoEmulator;
  env: Record<string, string>;
  stores: Record<Store["name"], Store>;
}> {
  const emulators: Emulator[] = [];
  try {
    const started = await Promise.all([startMoto({ auth: true }), startAzurite(), startFakeGcs()]);
    emulators.push(...started);
    const [moto, azurite, gcs] = started;
    const connectionString = azuriteConnectionString(azurite.endpoint);
    const s3Client = new S3Client({
      region: "us-east-1",
      endpoint: moto.endpoint,
      forcePathStyle: true,
      credentials: moto.credentials,
    });
    const blobs = BlobServiceClient.fromConnectionString(connectionString);
    const gcsSdk = new GcsSdk({ apiEndpoint: gcs.endpoint, projectId: "test" });
    for (const bucket of ["planetary-src", "planetary-dst"]) {
      await s3Client.send(new CreateBucketCommand({ Bucket: bucket }));
      await gcsSdk.createBucket(bucket);
    }
    for (const container of ["src", "dst"]) await blobs.getContainerClient(container).create();
    const env: Record<string, string> = {
      PLANETARY_S3_ENDPOINT: moto.endpoint,
      AWS_ACCESS_KEY_ID: moto.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: moto.credentials.secretAccessKey,
      AWS_REGION: "us-east-1",
      AZURE_STORAGE_CONNECTION_STRING: connectionString,
      PLANETARY_GCS_ENDPOINT: gcs.endpoint,
      GOOGLE_CLOUD_PROJECT: "test",
    };
    const stores: Record<Store["name"], Store> = {
      s3: {
        name: "s3",
        storage: new S3Storage({
          endpoint: moto.endpoint,
          forcePathStyle: true,
          region: "us-east-1",
          credentials: moto.credentials,
        }),
        source: (path) => `s3://planetary-src/${path}`,
        dest: (path) => `s3://planetary-dst/${path}`,
      },
      azure: {
        name: "azure",
        storage: new AzureBlobStorage({ connectionString }),
        source: (path) => `az://${AZURITE_ACCOUNT}/src/${path}`,
        dest: (path) => `az://${AZURITE_ACCOUNT}/dst/${path}`,
      },
      gcs: {
        name: "gcs",
        storage: new GcsStorage({ apiEndpoint: gcs.endpoint, projectId: "test" }),
        source: (path) => `gs://planetary-src/${path}`,
        dest: (path) => `gs://planetary-dst/${path}`,
      },
    };
    for (const store of Object.values(stores)) {
      const { sample, reads } = inputTree(store.name);
      await put(store.storage, store.source("in/sample.txt"), sample);
      for (const [rel, data] of Object.entries(reads)) {
        await put(store.storage, joinUrl(store.source("in/reads"), rel), data);
      }
    }
    return { emulators, moto, env, stores };
  } catch (error) {
    await Promise.all(emulators.map((e) => e.stop()));
    throw error;
  }
}

Deno.test({
  name: "planetary serve runs tasks that read from one cloud store and write to another",
  ignore: !ENABLED,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const { emulators, moto, env, stores } = await startStores();
    const secrets = [moto.credentials.secretAccessKey, AZURITE_KEY];
    let server: ServeHarness | undefined;
    let failed = false;
    try {
      server = await startServe({ maxTasks: 4, env });
      const client = server.client;
      const info = await client.serviceInfo();
      for (const prefix of ["s3://", "az://", "gs://"]) {
        assert(info.storage?.includes(prefix), `service-info storage: ${info.storage}`);
      }

      const routes: [Store, Store][] = [
        [stores.s3, stores.azure],
        [stores.azure, stores.gcs],
        [stores.gcs, stores.s3],
      ];
      const run = crypto.randomUUID().slice(0, 8);
      const prefix = (from: Store) => `${run}/from-${from.name}`;
      const missingUrl = stores.s3.source(`in/missing-${run}.txt`);
      // Submitted together: they run side by side (maxTasks 4).
      const ids = await Promise.all([
        ...routes.map(([from, to]) => client.createTask(copyTask(from, to, prefix(from)))),
        client.createTask({
          name: "missing-input",
          inputs: [{ url: missingUrl, path: "/data/in/missing.txt", type: "FILE" }],
          executors: [{ image: ALPINE, command: ["cat", "/data/in/missing.txt"] }],
        }),
      ]);
      const tasks = await Promise.all(
        ids.map((id) =>
          client.waitForTask(id, { intervalMs: 200, signal: AbortSignal.timeout(TASK_DEADLINE_MS) })
        ),
      );

      for (const [i, [from, to]] of routes.entries()) {
        await t.step(
          `${from.name} → ${to.name}: FILE, DIRECTORY and wildcard outputs`,
          async () => {
            const task = tasks[i]!;
            assert.equal(task.state, "COMPLETE", JSON.stringify(task, null, 2));
            assert.deepEqual(sortedOutputs(task), expectedOutputs(from, to, prefix(from)));
            const { sample, reads } = inputTree(from.name);
            const dest = to.storage;
            assert.deepEqual(
              await readBytes(dest, to.dest(`${prefix(from)}/sample.txt`)),
              sample,
            );
            const listed: Record<string, number> = {};
            for await (const entry of dest.list(to.dest(`${prefix(from)}/results`))) {
              listed[entry.relativePath] = entry.size;
            }
            assert.deepEqual(
              listed,
              Object.fromEntries(Object.entries(reads).map(([rel, data]) => [rel, data.length])),
            );
            for (const [rel, data] of Object.entries(reads)) {
              const copied = await readBytes(
                dest,
                joinUrl(to.dest(`${prefix(from)}/results`), rel),
              );
              assert.equal(sha256(copied), sha256(data), rel);
            }
            const logs = to.dest(`${prefix(from)}/logs`);
            assert.equal(
              new TextDecoder().decode(await readBytes(dest, joinUrl(logs, "count.log"))),
              `${sample.length}\n`,
            );
            const logNames: string[] = [];
            for await (const entry of dest.list(logs)) logNames.push(entry.relativePath);
            assert.deepEqual(logNames.sort(), ["count.log", "listing.log"]);
          },
        );
      }

      await t.step("executors see none of the storage variables", () => {
        for (const task of tasks.slice(0, routes.length)) {
          const stdout = task.logs?.[0]?.logs[0]?.stdout ?? "";
          assert.match(stdout, /^PATH=/m, "the executor printed its environment");
          for (const name of STORAGE_NAMES) {
            assert(!new RegExp(`^${name}=`, "m").test(stdout), `executor saw ${name}`);
          }
          for (const value of [...secrets, moto.endpoint]) assert(!stdout.includes(value));
        }
      });

      await t.step("a missing object ends SYSTEM_ERROR with a reason naming its URL", () => {
        const task = tasks[routes.length]!;
        assert.equal(task.state, "SYSTEM_ERROR", JSON.stringify(task, null, 2));
        const reason = (task.logs ?? []).flatMap((l) => l.system_logs ?? []).join("\n");
        assert(reason.includes(missingUrl), reason);
        assert.match(reason, /not found/i);
        assert.equal(task.logs?.[0]?.logs.length ?? 0, 0, "the executor must not run");
      });

      await t.step("no secret value in the API, serve's output or its data folder", async () => {
        const full = JSON.stringify(await Promise.all(ids.map((id) => client.getTask(id, "FULL"))));
        const listed = JSON.stringify(await client.listTasks({ view: "FULL" }));
        for (const value of secrets) {
          assert(!full.includes(value), "a secret in a FULL task");
          assert(!listed.includes(value), "a secret in the FULL task list");
        }
        const { dataDir } = server!;
        assert.deepEqual(await filesHolding(dataDir, secrets), []);
        const stopped = await server!.stop();
        assert.equal(stopped.code, 0);
        const log = server!.log();
        for (const value of secrets) assert(!log.includes(value), "a secret in serve's output");
        // With the database closed cleanly, everything it wrote is on disk.
        assert.deepEqual(await filesHolding(dataDir, secrets), []);
      });
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      if (failed && server) console.error(`--- planetary serve log ---\n${server.log()}`);
      await server?.close();
      await Promise.all(emulators.map((e) => e.stop()));
    }
  },
});

Deno.test({
  name: "startServer() names the storage Secret on the transporter containers only",
  ignore: !ENABLED,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { emulators, moto, env, stores } = await startStores();
    const root = await Deno.makeTempDir({ prefix: "planetary-serve-cloud-" });
    const store = await openTaskStore({});
    try {
      const resolved = await resolveServeOptions(
        { port: "0", dataDir: root, runtime: "host" },
        env,
      );
      const server = await startServer({
        ...resolved,
        store,
        handleSignals: false,
        announce: false,
        api: { logRequests: false },
      });
      const events: PodEvent[] = [];
      const watch = new AbortController();
      const watching = server.execution!.backend.watchPods((e) => events.push(e), watch.signal);
      try {
        const client = new TesClient(server.url, { retries: 0 });
        const id = await client.createTask({
          inputs: [{ url: stores.s3.source("in/sample.txt"), path: "/in/sample.txt" }],
          outputs: [{ url: stores.gcs.dest("inproc/sample.txt"), path: "/in/sample.txt" }],
          executors: [{ image: ALPINE, command: ["env"] }],
        });
        const task = await client.waitForTask(id, {
          intervalMs: 200,
          signal: AbortSignal.timeout(TASK_DEADLINE_MS),
        });
        assert.equal(task.state, "COMPLETE", JSON.stringify(task, null, 2));
        assert.deepEqual(
          await readBytes(stores.gcs.storage, stores.gcs.dest("inproc/sample.txt")),
          inputTree("s3").sample,
        );
      } finally {
        watch.abort();
        await watching;
        await server.close();
      }
      const pod = events.find((e) => e.type === "ADDED")?.pod;
      assert(pod?.spec, "no pod seen");
      const containers: V1Container[] = [
        ...pod.spec.initContainers ?? [],
        ...pod.spec.containers,
      ];
      const secretRef = [{ secretRef: { name: STORAGE_SECRET_NAME } }];
      for (const c of containers) {
        if (c.name === "inputs" || c.name === "outputs") {
          assert.deepEqual(c.envFrom, secretRef, c.name);
        } else {
          assert.equal(c.envFrom, undefined, `${c.name} must not get the storage Secret`);
        }
        const names = (c.env ?? []).map((e) => e.name);
        for (const name of STORAGE_NAMES) assert(!names.includes(name), `${c.name}: ${name}`);
      }
      assert.deepEqual(containers.map((c) => c.name).sort(), ["executor-0", "inputs", "outputs"]);
      const shown = JSON.stringify(events);
      for (const value of [moto.credentials.secretAccessKey, AZURITE_KEY, moto.endpoint]) {
        assert(!shown.includes(value), "a storage value in a pod spec or status");
      }
    } finally {
      await store.close();
      await Deno.remove(root, { recursive: true }).catch(() => {});
      await Promise.all(emulators.map((e) => e.stop()));
    }
  },
});
