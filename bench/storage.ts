/**
 * Storage benchmark: for each store (file, S3 on moto, Azure Blob on Azurite, GCS on
 * fake-gcs-server) moves one large file and many small files through the Planetary adapter
 * and through the SDK's plain single-stream put/get, then runs the transporter (`inputs`, then
 * `outputs`) on the large file and on a directory of the small files, reading each run's peak
 * RSS (VmHWM).
 *
 * ```sh
 * sh tests/emulators/install.sh
 * deno run -A bench/storage.ts [--size-mib 1024] [--files 1000] [--stores file,s3,azure,gcs]
 *   [--transporter-only] [--env PLANETARY_STORAGE_RANGED_READ_MIB=off ...] [--v8-flags none]
 * ```
 *
 * `--env NAME=VALUE` (repeatable) is set for the transporter and for the in-process adapters,
 * which are built by `cloudStorageFromEnv()` like the transporter's. `--transporter-only` skips
 * the adapter-vs-SDK rows. `--v8-flags a,b` replaces the transporter's `TRANSPORTER_V8_FLAGS`
 * (`none`: V8's defaults).
 *
 * Emulators are single-process programs on this machine, so absolute figures say more about
 * them than about the cloud; the ratio adapter/baseline and the RSS are what this measures.
 */
import { parseArgs } from "node:util";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import { Storage as GcsSdk } from "@google-cloud/storage";
import { cloudStorageFromEnv, FileStorage, type Storage } from "../src/storage/mod.ts";
import { TRANSPORTER_PERMISSIONS, TRANSPORTER_V8_FLAGS } from "../transporter/main.ts";
import {
  azuriteConnectionString,
  type Emulator,
  startAzurite,
  startFakeGcs,
  startMoto,
} from "../tests/_harness/emulators.ts";

const MIB = 1024 * 1024;
const { values } = parseArgs({
  args: Deno.args,
  options: {
    "size-mib": { type: "string", default: "1024" },
    files: { type: "string", default: "1000" },
    "small-bytes": { type: "string", default: "4096" },
    stores: { type: "string", default: "file,s3,azure,gcs" },
    parallelism: { type: "string", default: "16" },
    "transporter-only": { type: "boolean", default: false },
    env: { type: "string", multiple: true, default: [] },
    "v8-flags": { type: "string" },
  },
});
/** The transporter's V8 flags: its own, or `--v8-flags=a,b` (`none`: V8's defaults). */
const V8_FLAGS: readonly string[] = values["v8-flags"] === undefined
  ? TRANSPORTER_V8_FLAGS
  : values["v8-flags"] === "none"
  ? []
  : [`--v8-flags=${values["v8-flags"]}`];
const EXTRA_ENV: Record<string, string> = Object.fromEntries(
  values.env.map((pair) => {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new Error(`--env expects NAME=VALUE, got ${pair}`);
    return [pair.slice(0, eq), pair.slice(eq + 1)];
  }),
);
const SIZE = Number(values["size-mib"]) * MIB;
const FILES = Number(values.files);
const SMALL = Number(values["small-bytes"]);
const PARALLEL = Number(values.parallelism);

interface Baseline {
  put(key: string, body: ReadableStream<Uint8Array>, size: number): Promise<void>;
  get(key: string): Promise<ReadableStream<Uint8Array>>;
}

interface Target {
  name: string;
  storage: Storage;
  /** URL of `key` in the benchmark's bucket. */
  url(key: string): string;
  baseline: Baseline;
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** The adapter the transporter would build from `env` (plus `--env`), for `scheme`. */
function adapterFromEnv(scheme: string, env: Record<string, string>): Storage {
  const all = { ...env, ...EXTRA_ENV };
  const adapter = cloudStorageFromEnv((name) => all[name]).adapters[scheme];
  if (adapter === undefined) throw new Error(`no ${scheme} adapter from ${Object.keys(all)}`);
  return adapter;
}

function generated(size: number): ReadableStream<Uint8Array> {
  const block = new Uint8Array(MIB).map((_, i) => (i * 131) & 0xff);
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= size) return controller.close();
      const n = Math.min(MIB, size - sent);
      sent += n;
      controller.enqueue(n === MIB ? block.slice() : block.slice(0, n));
    },
  }, { highWaterMark: 0 });
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += chunk.byteLength;
  return n;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

const nodeStream = (s: ReadableStream<Uint8Array>): Readable =>
  Readable.fromWeb(s as Parameters<typeof Readable.fromWeb>[0]);
const webStream = (r: NodeJS.ReadableStream): ReadableStream<Uint8Array> =>
  Readable.toWeb(r as Readable) as unknown as ReadableStream<Uint8Array>;

async function fileTarget(): Promise<Target> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "bench-file-" }));
  return {
    name: "file",
    storage: new FileStorage({ allowList: [root] }),
    url: (key) => `file://${root}/${key}`,
    baseline: {
      async put(key, body) {
        const path = `${root}/base/${key}`;
        await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
        const file = await Deno.open(path, { write: true, create: true, truncate: true });
        await body.pipeTo(file.writable);
      },
      async get(key) {
        return (await Deno.open(`${root}/base/${key}`)).readable;
      },
    },
    env: { PLANETARY_FILE_ALLOW_LIST: root },
    stop: () => Deno.remove(root, { recursive: true }),
  };
}

async function s3Target(): Promise<Target> {
  const moto: Emulator & { credentials: { accessKeyId: string; secretAccessKey: string } } =
    await startMoto();
  const { endpoint, credentials } = moto;
  const client = new S3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials });
  await client.send(new CreateBucketCommand({ Bucket: "bench" }));
  const env = {
    PLANETARY_S3_ENDPOINT: endpoint,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
  };
  return {
    name: "s3 (moto)",
    storage: adapterFromEnv("s3", env),
    url: (key) => `s3://bench/${key}`,
    baseline: {
      async put(key, body, size) {
        await client.send(
          new PutObjectCommand({
            Bucket: "bench",
            Key: `base/${key}`,
            Body: nodeStream(body),
            ContentLength: size,
          }),
        );
      },
      async get(key) {
        const object = await client.send(
          new GetObjectCommand({ Bucket: "bench", Key: `base/${key}` }),
        );
        return object.Body!.transformToWebStream() as ReadableStream<Uint8Array>;
      },
    },
    env,
    stop: () => moto.stop(),
  };
}

async function azureTarget(): Promise<Target> {
  const azurite = await startAzurite();
  const connectionString = azuriteConnectionString(azurite.endpoint);
  const container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient(
    "bench",
  );
  await container.create();
  return {
    name: "azure (Azurite)",
    storage: adapterFromEnv("az", { AZURE_STORAGE_CONNECTION_STRING: connectionString }),
    url: (key) => `az://devstoreaccount1/bench/${key}`,
    baseline: {
      async put(key, body) {
        // The SDK's streaming upload with one block in flight: its plain single stream.
        await container.getBlockBlobClient(`base/${key}`).uploadStream(
          nodeStream(body),
          8 * MIB,
          1,
        );
      },
      async get(key) {
        const response = await container.getBlobClient(`base/${key}`).download();
        return webStream(response.readableStreamBody!);
      },
    },
    env: { AZURE_STORAGE_CONNECTION_STRING: connectionString },
    stop: () => azurite.stop(),
  };
}

async function gcsTarget(): Promise<Target> {
  const gcs = await startFakeGcs();
  const sdk = new GcsSdk({ apiEndpoint: gcs.endpoint, projectId: "bench" });
  await sdk.createBucket("bench");
  const bucket = sdk.bucket("bench");
  return {
    name: "gcs (fake-gcs-server)",
    storage: adapterFromEnv("gs", { PLANETARY_GCS_ENDPOINT: gcs.endpoint }),
    url: (key) => `gs://bench/${key}`,
    baseline: {
      async put(key, body) {
        await pipeline(nodeStream(body), bucket.file(`base/${key}`).createWriteStream());
      },
      get(key) {
        return Promise.resolve(webStream(bucket.file(`base/${key}`).createReadStream()));
      },
    },
    env: { PLANETARY_GCS_ENDPOINT: gcs.endpoint },
    stop: () => gcs.stop(),
  };
}

/** Runs the transporter and reads its peak VmHWM from /proc while it runs (KiB). */
async function transporterPeak(
  mode: "inputs" | "outputs",
  spec: unknown,
  dir: string,
  env: Record<string, string>,
): Promise<{ seconds: number; peakMiB: number }> {
  const specPath = `${dir}/spec-${mode}.json`;
  await Deno.writeTextFile(specPath, JSON.stringify(spec));
  const start = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...V8_FLAGS,
      ...TRANSPORTER_PERMISSIONS,
      new URL("../transporter/main.ts", import.meta.url).pathname,
      mode,
      specPath,
    ],
    env: { PLANETARY_STATE_DIR: `${dir}/state`, PLANETARY_TERMINATION_LOG: `${dir}/term`, ...env },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let peak = 0;
  let done = false;
  const watcher = (async () => {
    while (!done) {
      const status = await Deno.readTextFile(`/proc/${child.pid}/status`).catch(() => "");
      const match = /VmHWM:\s+(\d+) kB/.exec(status);
      if (match) peak = Math.max(peak, Number(match[1]));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const output = await child.output();
  done = true;
  await watcher;
  if (output.code !== 0) {
    throw new Error(`transporter ${mode} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return { seconds: (performance.now() - start) / 1000, peakMiB: peak / 1024 };
}

const fmt = (n: number): string => n.toFixed(1);
const ratio = (base: number, adapter: number): string => (base / adapter).toFixed(2);

/** Adapter vs SDK baseline on the large file and the small files (MB/s, files/s). */
async function throughput(
  target: Target,
  keys: string[],
): Promise<Record<string, string>> {
  const { storage, baseline } = target;
  const mb = SIZE / 1e6;
  const upAdapter = await timed(() =>
    storage.write(target.url("big/one.bin"), generated(SIZE), { size: SIZE })
  );
  const downAdapter = await timed(async () => {
    if (await drain(await storage.read(target.url("big/one.bin"))) !== SIZE) {
      throw new Error("short read");
    }
  });
  const upBase = await timed(() => baseline.put("big/one.bin", generated(SIZE), SIZE));
  const downBase = await timed(async () => {
    if (await drain(await baseline.get("big/one.bin")) !== SIZE) throw new Error("short read");
  });

  const body = (): ReadableStream<Uint8Array> => generated(SMALL);
  const smallUp = await timed(() =>
    pool(keys, PARALLEL, async (key) => {
      await storage.write(target.url(key), body(), { size: SMALL });
    })
  );
  const smallDown = await timed(async () => {
    const entries = [];
    for await (const entry of storage.list(target.url("small"))) entries.push(entry);
    if (entries.length !== FILES) throw new Error(`listed ${entries.length} of ${FILES}`);
    await pool(entries, PARALLEL, async (entry) => void await drain(await storage.read(entry.url)));
  });
  const smallUpBase = await timed(async () => {
    for (const key of keys) await baseline.put(key, body(), SMALL);
  });
  const smallDownBase = await timed(async () => {
    for (const key of keys) await drain(await baseline.get(key));
  });
  return {
    "up MB/s": `${fmt(mb / upAdapter)} (sdk ${fmt(mb / upBase)}, x${ratio(upBase, upAdapter)})`,
    "down MB/s": `${fmt(mb / downAdapter)} (sdk ${fmt(mb / downBase)}, x${
      ratio(downBase, downAdapter)
    })`,
    "small up files/s": `${fmt(FILES / smallUp)} (sdk ${fmt(FILES / smallUpBase)}, x${
      ratio(smallUpBase, smallUp)
    })`,
    "small down files/s": `${fmt(FILES / smallDown)} (sdk ${fmt(FILES / smallDownBase)}, x${
      ratio(smallDownBase, smallDown)
    })`,
  };
}

/** Puts the large file and the small files in place without timing (`--transporter-only`). */
async function seed(target: Target, keys: string[]): Promise<void> {
  await target.storage.write(target.url("big/one.bin"), generated(SIZE), { size: SIZE });
  await pool(keys, PARALLEL, async (key) => {
    await target.storage.write(target.url(key), generated(SMALL), { size: SMALL });
  });
}

/** The transporter on the large file, then on the small files as one DIRECTORY input/output. */
async function transporter(target: Target): Promise<Record<string, string>> {
  const dir = await Deno.makeTempDir({ prefix: "bench-transporter-" });
  const row: Record<string, string> = {};
  try {
    await Deno.mkdir(`${dir}/state`);
    const env = {
      ...target.env,
      PLANETARY_FILE_ALLOW_LIST: `${target.env.PLANETARY_FILE_ALLOW_LIST ?? "/nonexistent"}`,
      ...EXTRA_ENV,
    };
    const big = {
      version: 1,
      taskId: "bench",
      inputs: [{ url: target.url("big/one.bin"), path: `${dir}/pod/one.bin`, type: "FILE" }],
      outputs: [{ url: target.url("big/back.bin"), path: `${dir}/pod/one.bin`, type: "FILE" }],
      executors: [],
      tailBytes: 64,
    };
    const mb = SIZE / 1e6;
    const bigDown = await transporterPeak("inputs", big, dir, env);
    const bigUp = await transporterPeak("outputs", big, dir, env);
    row["transporter in"] = `${fmt(mb / bigDown.seconds)} MB/s, peak RSS ${
      fmt(bigDown.peakMiB)
    } MiB`;
    row["transporter out"] = `${fmt(mb / bigUp.seconds)} MB/s, peak RSS ${fmt(bigUp.peakMiB)} MiB`;
    await Deno.remove(`${dir}/pod`, { recursive: true });
    const small = {
      ...big,
      inputs: [{ url: target.url("small"), path: `${dir}/pod/small`, type: "DIRECTORY" }],
      outputs: [{ url: target.url("small-back"), path: `${dir}/pod/small`, type: "DIRECTORY" }],
    };
    const smallDown = await transporterPeak("inputs", small, dir, env);
    const smallUp = await transporterPeak("outputs", small, dir, env);
    row["transporter small in"] = `${fmt(FILES / smallDown.seconds)} files/s, peak RSS ${
      fmt(smallDown.peakMiB)
    } MiB`;
    row["transporter small out"] = `${fmt(FILES / smallUp.seconds)} files/s, peak RSS ${
      fmt(smallUp.peakMiB)
    } MiB`;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return row;
}

async function bench(target: Target): Promise<Record<string, string>> {
  const keys = Array.from({ length: FILES }, (_, i) => `small/${String(i).padStart(5, "0")}.txt`);
  let rates: Record<string, string> = {};
  if (values["transporter-only"]) await seed(target, keys);
  else rates = await throughput(target, keys);
  return { store: target.name, ...rates, ...await transporter(target) };
}

const makers: Record<string, () => Promise<Target>> = {
  file: fileTarget,
  s3: s3Target,
  azure: azureTarget,
  gcs: gcsTarget,
};

console.log(
  `storage bench: ${
    SIZE / MIB
  } MiB file, ${FILES} x ${SMALL} B files, adapter parallelism ${PARALLEL} for small files (sdk baseline: sequential)${
    values.env.length > 0 ? `, env ${values.env.join(" ")}` : ""
  }, transporter ${V8_FLAGS.join(" ") || "without V8 flags"}`,
);
const rows: Record<string, string>[] = [];
for (const name of values.stores.split(",")) {
  const make = makers[name];
  if (make === undefined) throw new Error(`unknown store ${name}`);
  const target = await make();
  try {
    const row = await bench(target);
    rows.push(row);
    console.log(JSON.stringify(row));
  } finally {
    await target.stop();
  }
}
console.table(rows);
