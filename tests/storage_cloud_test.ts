/**
 * One storage conformance suite run against every adapter: `file://`, S3 (moto), Azure Blob
 * (Azurite) and GCS (fake-gcs-server), each emulator started on a free loopback port. Then
 * the transporter (a subprocess with its production permissions) moves a directory from one
 * cloud store to another.
 *
 * Emulators come from `tests/emulators/install.sh`; missing ones skip locally and fail under
 * CI=true.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { crc32 as zlibCrc32 } from "node:zlib";
import { CreateBucketCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import { Storage as GcsSdk } from "@google-cloud/storage";
import {
  AzureBlobStorage,
  FileStorage,
  GcsStorage,
  joinUrl,
  S3Storage,
  type Storage,
  StorageError,
  storageForUrl,
} from "../src/storage/mod.ts";
import { cloudStorageFromEnv } from "../src/storage/cloud_storage_from_env.ts";
import { REPORT_PREFIX, type TransferReport, type TransferSpec } from "../src/pod/layout.ts";
import { TRANSPORTER_PERMISSIONS, TRANSPORTER_V8_FLAGS } from "../transporter/main.ts";
import { resolveServeOptions } from "../src/server/serve_config.ts";
import { startServer } from "../src/server/start_server.ts";
import { requireComponent } from "./_harness/component.ts";
import {
  azuriteConnectionString,
  type Emulator,
  emulatorInstalled,
  type StallingProxy,
  startAzurite,
  startFakeGcs,
  startMoto,
  startStallingProxy,
} from "./_harness/emulators.ts";

const MIB = 1024 * 1024;
const LARGE = 100 * MIB + 12_345; // several parts, and a ragged last one
const INSTALL = "run `sh tests/emulators/install.sh`";

/** One store under test. */
interface Store {
  name: string;
  storage: Storage;
  /** A fresh directory URL (no trailing `/`). */
  dir(name: string): string;
  /** Storage with a wrong secret, and that secret (absent when the store has no auth). */
  wrongCredentials?: { storage: Storage; secret: string };
  /**
   * Storage whose requests go through `proxy` (absent when there is no network), reading
   * objects above `rangedReadThreshold` by parallel ranges.
   */
  throughProxy?: (proxyEndpoint: string, rangedReadThreshold?: number) => Storage;
  /** The emulator behind, if any. */
  emulator?: Emulator;
}

// --- helpers ---------------------------------------------------------------------------

function bytesStream(data: string): ReadableStream<Uint8Array> {
  return new Response(data).body ?? new ReadableStream({ start: (c) => c.close() });
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

/** Deterministic, non-repeating content of `size` bytes, generated 1 MiB at a time. */
function generated(size: number, seed: number): ReadableStream<Uint8Array> {
  const block = new Uint8Array(MIB);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + seed * 7) & 0xff;
  let sent = 0;
  let n = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= size) return controller.close();
      const chunk = block.slice(0, Math.min(MIB, size - sent));
      new DataView(chunk.buffer).setUint32(0, n++); // every MiB differs
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
}

/** Passes bytes through while hashing them (SHA-256). */
function hashing(): { stream: TransformStream<Uint8Array, Uint8Array>; hex: () => string } {
  const hash = createHash("sha256");
  let hex = "";
  return {
    stream: new TransformStream({
      transform(chunk, controller) {
        hash.update(chunk);
        controller.enqueue(chunk);
      },
      flush() {
        hex = hash.digest("hex");
      },
    }),
    hex: () => hex,
  };
}

async function listed(storage: Storage, url: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for await (const entry of storage.list(url)) {
    assert.equal(entry.url, joinUrl(url, entry.relativePath));
    out[entry.relativePath] = entry.size;
  }
  return out;
}

/**
 * A tiny HTTP proxy in front of an emulator that answers the first `failures` requests with
 * 503 and 429 in turn (a throttling, then overloaded, service) and forwards the rest.
 */
function faultyProxy(target: string, failures: number): {
  endpoint: string;
  rejected: () => number;
  forwarded: () => number;
  close: () => Promise<void>;
} {
  let rejected = 0;
  let forwarded = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (rejected < failures) {
      await req.body?.cancel();
      rejected++;
      const status = rejected % 2 === 1 ? 503 : 429;
      return new Response(
        status === 503
          ? "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
          : "<Error><Code>TooManyRequests</Code><Message>Too many requests.</Message></Error>",
        { status, headers: { "content-type": "application/xml", "retry-after": "0" } },
      );
    }
    forwarded++;
    const url = new URL(req.url);
    const headers = new Headers(req.headers);
    headers.delete("host");
    const response = await fetch(`${target}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body: req.body,
      redirect: "manual",
    });
    return new Response(response.body, { status: response.status, headers: response.headers });
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    rejected: () => rejected,
    forwarded: () => forwarded,
    close: () => server.shutdown(),
  };
}

/**
 * A loopback HTTP proxy in front of an emulator that flips one byte (at offset 1,000) of every
 * response body longer than 64 KiB, the way a faulty network path or disk would: object data
 * arrives damaged while listings and metadata are untouched.
 */
function corruptingProxy(target: string): {
  endpoint: string;
  corrupted: () => number;
  close: () => Promise<void>;
} {
  let corrupted = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const headers = new Headers(req.headers);
    headers.delete("host");
    const response = await fetch(`${target}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body: req.body,
      redirect: "manual",
    });
    const length = Number(response.headers.get("content-length") ?? "0");
    if (req.method !== "GET" || response.body === null || length <= 64 * 1024) {
      return new Response(response.body, { status: response.status, headers: response.headers });
    }
    corrupted++;
    let offset = 0;
    const flip = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (offset <= 1000 && 1000 < offset + chunk.byteLength) {
          chunk = chunk.slice();
          chunk[1000 - offset] = chunk[1000 - offset]! ^ 0xff;
        }
        offset += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    return new Response(response.body.pipeThrough(flip), {
      status: response.status,
      headers: response.headers,
    });
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    corrupted: () => corrupted,
    close: () => server.shutdown(),
  };
}

/**
 * Reads `url` through a corrupting proxy, once by one stream and once by parallel ranges, and
 * expects both to fail with an integrity error instead of ending cleanly.
 */
async function assertCorruptionDetected(
  target: string,
  makeStorage: (proxyEndpoint: string, rangedReadThreshold?: number) => Storage,
  url: string,
): Promise<void> {
  const proxy = corruptingProxy(target);
  try {
    for (const threshold of [Infinity, 4 * MIB]) {
      const before = proxy.corrupted();
      const storage = makeStorage(proxy.endpoint, threshold);
      await assert.rejects(
        (async () => {
          for await (const _ of await storage.read(url)) { /* drain */ }
        })(),
        (error) => {
          assert.ok(error instanceof StorageError, `threshold ${threshold}: ${error}`);
          assert.match(error.message, /integrity|checksum|mismatch|did not match/i);
          return true;
        },
        `a damaged download (ranged reads above ${threshold} bytes) must not end cleanly`,
      );
      assert.ok(proxy.corrupted() > before, "the proxy damaged the object's bytes");
    }
  } finally {
    await proxy.close();
  }
}

// --- the conformance suite -------------------------------------------------------------

async function conformance(t: Deno.TestContext, store: Store): Promise<void> {
  const { storage } = store;

  await t.step(`${store.name}: write() then read() round-trips a small object`, async () => {
    const url = `${store.dir("small")}/hello world.txt`;
    assert.deepEqual(await storage.write(url, bytesStream("hello, storage\n"), { size: 15 }), {
      size: 15,
    });
    assert.equal(await readAll(await storage.read(url)), "hello, storage\n");
    assert.deepEqual(await storage.stat(url), { type: "file", size: 15 });
    // Overwrite replaces.
    await storage.write(url, bytesStream("v2"));
    assert.equal(await readAll(await storage.read(url)), "v2");
  });

  await t.step(`${store.name}: write() and read() handle an empty object`, async () => {
    const url = `${store.dir("empty")}/empty.bin`;
    assert.deepEqual(await storage.write(url, bytesStream(""), { size: 0 }), { size: 0 });
    assert.equal(await readAll(await storage.read(url)), "");
    assert.deepEqual(await storage.stat(url), { type: "file", size: 0 });
  });

  await t.step(`${store.name}: write() refuses a stream shorter than its size`, async () => {
    const url = `${store.dir("short")}/short.bin`;
    await assert.rejects(
      storage.write(url, bytesStream("12345"), { size: 6 }),
      (error) => error instanceof StorageError && /size mismatch/.test(error.message),
    );
    assert.equal(await storage.stat(url), undefined, "no partial object is left behind");
  });

  // Object stores have no directories, so the adapter itself must refuse; file:// leaves that to
  // the file system (covered beside FileStorage), so the step is not registered for it.
  if (store.name !== "file") {
    await t.step(
      `${store.name}: write() to a directory URL is refused and the stream canceled`,
      async () => {
        let canceled = false;
        let sent = 0;
        const stream = new ReadableStream<Uint8Array>({
          pull: (c) => (sent++ < 4 ? c.enqueue(new Uint8Array(8)) : c.close()),
          cancel: () => {
            canceled = true;
          },
        });
        await assert.rejects(
          storage.write(`${store.dir("dirwrite")}/`, stream),
          (error) => error instanceof StorageError && error.code === "INVALID_URL",
        );
        assert.equal(canceled, true, "the producer is released");
      },
    );
  }

  await t.step(
    `${store.name}: write() then read() stream a ${LARGE} byte object intact`,
    async () => {
      const url = `${store.dir("large")}/large.bin`;
      const up = hashing();
      const result = await storage.write(url, generated(LARGE, 1).pipeThrough(up.stream), {
        size: LARGE,
      });
      assert.equal(result.size, LARGE);
      assert.deepEqual(await storage.stat(url), { type: "file", size: LARGE });
      const down = hashing();
      let bytes = 0;
      for await (const chunk of (await storage.read(url)).pipeThrough(down.stream)) {
        bytes += chunk.byteLength;
      }
      assert.equal(bytes, LARGE);
      assert.equal(down.hex(), up.hex(), "SHA-256 of what came back equals what went up");
    },
  );

  await t.step(`${store.name}: list() yields every object under a prefix only`, async () => {
    const base = store.dir("tree");
    const files: Record<string, string> = {
      "a/top.txt": "1",
      "a/b/c.txt": "22",
      "a/b/d/e f.txt": "333",
      "a/b/d/g/h.txt": "4444",
      "ab/sibling.txt": "55555", // shares the prefix "a" but is not under "a/"
      "a.txt": "666666",
    };
    for (const [path, content] of Object.entries(files)) {
      await storage.write(
        `${base}/${path.split("/").map(encodeURIComponent).join("/")}`,
        bytesStream(content),
      );
    }
    assert.deepEqual(await listed(storage, `${base}/a`), {
      "top.txt": 1,
      "b/c.txt": 2,
      "b/d/e f.txt": 3,
      "b/d/g/h.txt": 4,
    });
    assert.deepEqual(await listed(storage, `${base}/a/b/d`), { "e f.txt": 3, "g/h.txt": 4 });
    const trailing: Record<string, number> = {};
    for await (const entry of storage.list(`${base}/a/b/`)) trailing[entry.relativePath] = 1;
    assert.deepEqual(Object.keys(trailing).sort(), ["c.txt", "d/e f.txt", "d/g/h.txt"]);
    assert.deepEqual(await storage.stat(`${base}/a`), { type: "directory", size: 0 });
    assert.deepEqual(await storage.stat(`${base}/a/b/d/g`), { type: "directory", size: 0 });
    assert.equal(
      await readAll(await storage.read(`${base}/a/b/d/e%20f.txt`)),
      "333",
    );
  });

  await t.step(`${store.name}: read() of a missing object is a clear not-found`, async () => {
    const url = `${store.dir("missing")}/nothing-here.txt`;
    await assert.rejects(storage.read(url), (error) => {
      assert.ok(error instanceof StorageError);
      assert.equal(error.code, "NOT_FOUND");
      assert.match(error.message, /not found: .*nothing-here\.txt/);
      return true;
    });
    assert.equal(await storage.stat(url), undefined);
  });

  if (store.wrongCredentials !== undefined) {
    const { storage: wrong, secret } = store.wrongCredentials;
    await t.step(
      `${store.name}: wrong credentials fail with a clear reason and no secret`,
      async () => {
        const url = `${store.dir("small")}/hello world.txt`;
        const attempts: [string, () => Promise<unknown>][] = [
          ["read", () => wrong.read(url)],
          ["write", () => wrong.write(`${store.dir("denied")}/x.txt`, bytesStream("x"))],
          ["list", async () => {
            for await (const _ of wrong.list(store.dir("small"))) { /* drain */ }
          }],
        ];
        for (const [what, attempt] of attempts) {
          await assert.rejects(attempt(), (error) => {
            assert.ok(error instanceof StorageError, `${what}: ${error}`);
            assert.equal(error.code, "PERMISSION_DENIED", `${what}: ${error.message}`);
            assert.match(error.message, /permission denied \(.*(403|credentials)/);
            const everything = `${error.message} ${error.stack} ${String(error.cause)} ${
              Deno.inspect(error, { depth: 10 })
            }`;
            assert.ok(!everything.includes(secret), `${what} leaks the secret: ${everything}`);
            return true;
          });
        }
      },
    );
  }

  if (store.throughProxy !== undefined) {
    const makeStorage = store.throughProxy;
    await t.step(`${store.name}: read() fails on bytes damaged in transit`, async () => {
      const url = `${store.dir("damaged")}/damaged.bin`;
      await storage.write(url, generated(9 * MIB + 7, 3), { size: 9 * MIB + 7 });
      await assertCorruptionDetected(store.emulator!.endpoint, makeStorage, url);
    });

    await t.step(`${store.name}: 503 and 429 answers are retried until success`, async () => {
      const proxy = faultyProxy(store.emulator!.endpoint, 4);
      try {
        const flaky = makeStorage(proxy.endpoint);
        const url = `${store.dir("retry")}/retried.txt`;
        await flaky.write(url, bytesStream("survived"), { size: 8 });
        assert.equal(await readAll(await flaky.read(url)), "survived");
        assert.equal(proxy.rejected(), 4, "the first four requests were refused");
        assert.ok(proxy.forwarded() >= 2);
      } finally {
        await proxy.close();
      }
    });
  }
}

// --- stall timeouts --------------------------------------------------------------------

/** The stall timeout the stall steps use (`stallTimeoutMs`), and how it reads in messages. */
const STALL_MS = 1500;
const STALL_TEXT = "1.5 s";

/** One store behind a {@linkcode StallingProxy}. */
interface StallCase {
  name: string;
  /** The proxy in front of the store's emulator (every byte of `storage` goes through it). */
  proxy: StallingProxy;
  /** Storage through the proxy with `stallTimeoutMs: STALL_MS`, reading by ranges above the threshold. */
  storage: (rangedReadThreshold?: number) => Storage;
  /** Storage straight to the emulator (to set up objects and look at the end state). */
  direct: Storage;
  /** A fresh directory URL. */
  dir(name: string): string;
  /** The operation named in the error of an unanswered request (`S3 HeadObject, 2 attempts`). */
  unanswered: RegExp;
  /** Whether an unanswered metadata request is abandoned rather than aborted (no signal). */
  abandonsUnanswered?: boolean;
  /**
   * Storage through the proxy with `stallTimeoutMs: UPLOAD_STALL_MS` that sends a
   * `UPLOAD_DRIP_SIZE` object in ONE request (absent: the store cuts uploads into parts that
   * each take less than the stall timeout, so a steady upload proves nothing there).
   */
  oneRequestUpload?: () => Storage;
}

/** Stall timeout of the steady-upload step: see there why it is longer. */
const UPLOAD_STALL_MS = 5000;
const UPLOAD_DRIP_SIZE = 24 * MIB;

/** Waits (up to 60 s) until the client has closed every stalled connection: no socket is held. */
async function released(proxy: StallingProxy): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (proxy.stalledOpen() > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(proxy.stalledOpen(), 0, "the stalled connection was closed by the client");
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.byteLength;
  return bytes;
}

function assertStall(error: unknown, url: string, detail: RegExp): true {
  assert.ok(error instanceof StorageError, String(error));
  const escaped = url.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  assert.match(
    error.message,
    new RegExp(
      `^stalled: no (data|response) for ${STALL_TEXT.replace(".", "\\.")} \\(.*\\): ${escaped}$`,
    ),
  );
  assert.match(error.message, detail);
  return true;
}

/**
 * Stalls each kind of transfer for real (a TCP proxy that stops forwarding), and drips one
 * slowly: a stalled download, an unanswered request and a stalled upload fail with the stall
 * reason; a slow download that keeps moving for longer than the stall timeout succeeds.
 */
async function stallSteps(t: Deno.TestContext, c: StallCase): Promise<void> {
  const size = 2 * MIB + 5;
  const url = `${c.dir("stall")}/object.bin`;
  await c.direct.write(url, generated(size, 5), { size });

  for (const [how, threshold] of [["one stream", Infinity], ["ranges", 256 * 1024]] as const) {
    await t.step(`${c.name}: read() by ${how} fails when the body stops arriving`, async () => {
      // An object of its own: fake-gcs-server holds a lock on an object it is still sending.
      const url = `${c.dir("stall")}/object.bin`;
      await c.direct.write(url, generated(size, 5), { size });
      c.proxy.setPolicy({ responseBytes: 128 * 1024 });
      const before = c.proxy.stalledConnections();
      let received = 0;
      try {
        await assert.rejects(
          (async () => {
            for await (const chunk of await c.storage(threshold).read(url)) {
              received += chunk.byteLength;
            }
          })(),
          (error) => assertStall(error, url, /stalled: no data/),
        );
      } finally {
        c.proxy.setPolicy({});
      }
      assert.ok(c.proxy.stalledConnections() > before, "the proxy stopped a response");
      assert.ok(received < size, `${received} of ${size} bytes arrived before the stall`);
      await released(c.proxy);
    });
  }

  await t.step(`${c.name}: a request that gets no answer fails, retries bounded`, async () => {
    c.proxy.setPolicy({ responseBytes: 0 });
    try {
      await assert.rejects(c.storage().read(url), (error) => assertStall(error, url, c.unanswered));
      if (c.abandonsUnanswered !== true) await released(c.proxy);
    } finally {
      c.proxy.setPolicy({});
    }
  });

  await t.step(`${c.name}: write() fails when the store stops taking the body`, async () => {
    const target = `${c.dir("stall-up")}/upload.bin`;
    c.proxy.setPolicy({ requestBytes: 64 * 1024 });
    try {
      await assert.rejects(
        c.storage().write(target, generated(size, 6), { size }),
        (error) => assertStall(error, target, /upload|Put/),
      );
      // (Whether the client then closed the socket is not seen here: a proxy that reads nothing
      // from the client cannot tell it closed.)
    } finally {
      c.proxy.setPolicy({});
    }
    // Never a partial object: none, or (when the proxy let the held bytes through after the
    // failure, before the client closed its socket) the whole one.
    const landed = await c.direct.stat(target);
    assert.ok(landed === undefined || landed.size === size, `partial object: ${landed?.size}`);
  });

  if (c.oneRequestUpload !== undefined) {
    const storage = c.oneRequestUpload;
    await t.step(
      `${c.name}: write() of a steady upload longer than the stall timeout is not cut`,
      async () => {
        // An upload is watched as the socket takes its bytes; the last send buffer (about 4 MB on
        // loopback) drains after the last byte is taken, so the drip must empty it within the
        // stall timeout: 64 KiB every 15 ms (about 4 MB/s; half that on a loaded machine) for
        // 24 MiB, about 6 s in all, against a 5 s stall timeout.
        const target = `${c.dir("drip-up")}/upload.bin`;
        c.proxy.setPolicy({ drip: { bytes: 64 * 1024, everyMs: 15 } });
        try {
          const result = await storage().write(target, generated(UPLOAD_DRIP_SIZE, 9), {
            size: UPLOAD_DRIP_SIZE,
          });
          assert.equal(result.size, UPLOAD_DRIP_SIZE);
        } finally {
          c.proxy.setPolicy({});
        }
        assert.deepEqual(await c.direct.stat(target), { type: "file", size: UPLOAD_DRIP_SIZE });
      },
    );
  }

  for (const [how, threshold] of [["one stream", Infinity], ["ranges", 64 * 1024]] as const) {
    await t.step(
      `${c.name}: read() by ${how} of a slow but steady download is not cut`,
      async () => {
        const small = `${c.dir("drip")}/drip.bin`;
        const dripSize = 160 * 1024;
        await c.direct.write(small, generated(dripSize, 7), { size: dripSize });
        // 16 KiB every 200 ms: about 2 s in all, longer than the stall timeout, but never a
        // gap as long as it.
        c.proxy.setPolicy({ drip: { bytes: 16 * 1024, everyMs: 200 } });
        try {
          const sent = hashing();
          await drain(generated(dripSize, 7).pipeThrough(sent.stream));
          const got = hashing();
          const bytes = await drain(
            (await c.storage(threshold).read(small)).pipeThrough(got.stream),
          );
          assert.equal(bytes, dripSize);
          assert.equal(got.hex(), sent.hex());
        } finally {
          c.proxy.setPolicy({});
        }
      },
    );
  }
}

Deno.test({
  name: "S3Storage fails stalled transfers and keeps slow ones (moto behind a stalling proxy)",
  ignore: !requireComponent(emulatorInstalled("s3"), `moto not installed (${INSTALL})`),
  async fn(t) {
    const moto = await startMoto();
    const proxy = startStallingProxy(`127.0.0.1:${moto.port}`);
    try {
      await new S3Client({
        region: "us-east-1",
        endpoint: moto.endpoint,
        forcePathStyle: true,
        credentials: moto.credentials,
      }).send(new CreateBucketCommand({ Bucket: "stalls" }));
      await stallSteps(t, {
        name: "s3",
        proxy,
        storage: (rangedReadThreshold = Infinity) =>
          new S3Storage({
            endpoint: proxy.endpoint,
            forcePathStyle: true,
            credentials: moto.credentials,
            maxAttempts: 2,
            stallTimeoutMs: STALL_MS,
            rangedReadThreshold,
          }),
        direct: new S3Storage({
          endpoint: moto.endpoint,
          forcePathStyle: true,
          credentials: moto.credentials,
        }),
        dir: (name) => `s3://stalls/${unique(name)}`,
        unanswered: /\(S3 HeadObject, 2 attempts\)/,
      });
    } finally {
      await proxy.close();
      await moto.stop();
    }
  },
});

Deno.test({
  name:
    "AzureBlobStorage fails stalled transfers and keeps slow ones (Azurite behind a stalling proxy)",
  ignore: !requireComponent(emulatorInstalled("azure"), `Azurite not installed (${INSTALL})`),
  async fn(t) {
    const azurite = await startAzurite();
    const proxy = startStallingProxy(`127.0.0.1:${azurite.port}`);
    try {
      const connectionString = azuriteConnectionString(azurite.endpoint);
      await BlobServiceClient.fromConnectionString(connectionString).getContainerClient("stalls")
        .create();
      await stallSteps(t, {
        name: "azure",
        proxy,
        storage: (rangedReadThreshold = Infinity) =>
          new AzureBlobStorage({
            connectionString: azuriteConnectionString(proxy.endpoint),
            retry: { maxAttempts: 2, initialDelayMs: 10 },
            stallTimeoutMs: STALL_MS,
            rangedReadThreshold,
          }),
        direct: new AzureBlobStorage({ connectionString }),
        dir: (name) => `az://devstoreaccount1/stalls/${unique(name)}`,
        unanswered: /\(Azure GetBlobProperties, 2 attempts\)/,
        oneRequestUpload: () =>
          new AzureBlobStorage({
            connectionString: azuriteConnectionString(proxy.endpoint),
            stallTimeoutMs: UPLOAD_STALL_MS,
            blockSize: UPLOAD_DRIP_SIZE, // one Put Blob
          }),
      });
    } finally {
      await proxy.close();
      await azurite.stop();
    }
  },
});

Deno.test({
  name:
    "GcsStorage fails stalled transfers and keeps slow ones (fake-gcs-server behind a stalling proxy)",
  ignore: !requireComponent(emulatorInstalled("gcs"), `fake-gcs-server not installed (${INSTALL})`),
  async fn(t) {
    // Resumable uploads go to the session URL the server hands out: make it the proxy's.
    const proxy = startStallingProxy();
    const gcs = await startFakeGcs({ externalUrl: proxy.endpoint });
    proxy.target = `127.0.0.1:${gcs.port}`;
    try {
      await new GcsSdk({ apiEndpoint: gcs.endpoint, projectId: "test" }).createBucket("stalls");
      await stallSteps(t, {
        name: "gcs",
        proxy,
        storage: (rangedReadThreshold = Infinity) =>
          new GcsStorage({
            apiEndpoint: proxy.endpoint,
            maxAttempts: 2,
            stallTimeoutMs: STALL_MS,
            rangedReadThreshold,
          }),
        direct: new GcsStorage({ apiEndpoint: gcs.endpoint }),
        dir: (name) => `gs://stalls/${unique(name)}`,
        unanswered: /\(GCS objects\.get\)/,
        abandonsUnanswered: true, // the SDK's metadata calls take no signal
        oneRequestUpload: () =>
          new GcsStorage({ apiEndpoint: proxy.endpoint, stallTimeoutMs: UPLOAD_STALL_MS }),
      });
    } finally {
      await proxy.close();
      await gcs.stop();
    }
  },
});

// --- the stores ------------------------------------------------------------------------

let counter = 0;
const unique = (name: string): string => `${name}-${Date.now().toString(36)}-${counter++}`;

Deno.test("FileStorage passes the storage conformance suite", async (t) => {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "storage-conf-" }));
  try {
    await conformance(t, {
      name: "file",
      storage: new FileStorage({ allowList: [root] }),
      dir: (name) => `file://${root}/${unique(name)}`,
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "S3Storage passes the storage conformance suite against moto",
  ignore: !requireComponent(emulatorInstalled("s3"), `moto not installed (${INSTALL})`),
  async fn(t) {
    const moto = await startMoto({ auth: true });
    try {
      const { credentials, endpoint } = moto;
      await new S3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials })
        .send(new CreateBucketCommand({ Bucket: "conformance" }));
      const at = (e: string, secretAccessKey = credentials.secretAccessKey): S3Storage =>
        new S3Storage({
          endpoint: e,
          forcePathStyle: true,
          rangedReadThreshold: 16 * MIB, // exercise parallel ranged reads
          credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey },
        });
      await conformance(t, {
        name: "s3",
        storage: at(endpoint),
        dir: (name) => `s3://conformance/${unique(name)}`,
        wrongCredentials: {
          storage: at(endpoint, "WrongSecretKeyValue1234567890abcdefghij"),
          secret: "WrongSecretKeyValue1234567890abcdefghij",
        },
        emulator: moto,
      });
    } finally {
      await moto.stop();
    }
    // Retries need a moto without auth: the proxy changes the signed Host header.
    const open = await startMoto();
    try {
      const { credentials, endpoint } = open;
      await new S3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials })
        .send(new CreateBucketCommand({ Bucket: "retries" }));
      await t.step("s3: 503 and 429 answers are retried until success", async () => {
        const proxy = faultyProxy(endpoint, 2); // the SDK's throttling backoff is slow
        try {
          const flaky = new S3Storage({
            endpoint: proxy.endpoint,
            forcePathStyle: true,
            credentials,
          });
          await flaky.write("s3://retries/retried.txt", bytesStream("survived"), { size: 8 });
          assert.equal(await readAll(await flaky.read("s3://retries/retried.txt")), "survived");
          assert.equal(proxy.rejected(), 2);
        } finally {
          await proxy.close();
        }
      });
      await t.step(
        "s3: a multipart upload keeps a full-object CRC32 of what was sent",
        async () => {
          const s3 = new S3Storage({ endpoint, forcePathStyle: true, credentials });
          const size = 20 * MIB + 5; // three 8 MiB parts (the last chunk must hold its 4-byte index)
          let crc = 0;
          const tap = new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              crc = zlibCrc32(chunk, crc);
              controller.enqueue(chunk);
            },
          });
          await s3.write("s3://retries/crc.bin", generated(size, 4).pipeThrough(tap), { size });
          const head = await new S3Client({
            region: "us-east-1",
            endpoint,
            forcePathStyle: true,
            credentials,
          }).send(
            new HeadObjectCommand({ Bucket: "retries", Key: "crc.bin", ChecksumMode: "ENABLED" }),
          );
          const expected = new Uint8Array(4);
          new DataView(expected.buffer).setUint32(0, crc);
          assert.equal(head.ChecksumType, "FULL_OBJECT");
          assert.equal(head.ChecksumCRC32, btoa(String.fromCharCode(...expected)));
          assert.match(head.ETag ?? "", /-3"?$/, "three parts");
          await assertCorruptionDetected(
            endpoint,
            (proxied, rangedReadThreshold) =>
              new S3Storage({
                endpoint: proxied,
                forcePathStyle: true,
                credentials,
                ...(rangedReadThreshold === undefined ? {} : { rangedReadThreshold }),
              }),
            "s3://retries/crc.bin",
          );
        },
      );
      await t.step(
        "cloudStorageFromEnv() wires GCS HMAC keys as s3:// with a custom endpoint",
        async () => {
          // The path documented for GCS HMAC keys (endpoint https://storage.googleapis.com),
          // checked for its wiring against moto: env -> S3Storage -> requests that succeed.
          const env: Record<string, string> = {
            PLANETARY_S3_ENDPOINT: endpoint,
            AWS_ACCESS_KEY_ID: "GOOG1EHMACKEYID",
            AWS_SECRET_ACCESS_KEY: "hmac-secret",
            PLANETARY_GCS: "false", // gs:// is on by default (application-default credentials)
          };
          const setup = cloudStorageFromEnv((name) => env[name]);
          assert.deepEqual(setup.schemes, ["s3"]);
          const s3 = storageForUrl("s3://retries/hmac.txt", { adapters: setup.adapters });
          assert.ok(s3 instanceof S3Storage);
          await s3.write("s3://retries/hmac.txt", bytesStream("hmac"));
          assert.equal(await readAll(await s3.read("s3://retries/hmac.txt")), "hmac");
        },
      );
    } finally {
      await open.stop();
    }
  },
});

Deno.test({
  name: "AzureBlobStorage passes the storage conformance suite against Azurite",
  ignore: !requireComponent(emulatorInstalled("azure"), `Azurite not installed (${INSTALL})`),
  async fn(t) {
    const azurite = await startAzurite();
    try {
      const connectionString = azuriteConnectionString(azurite.endpoint);
      await BlobServiceClient.fromConnectionString(connectionString)
        .getContainerClient("conformance").create();
      const wrongKey = btoa("not-the-azurite-key-but-64-bytes-long-enough-to-look-real-12345");
      await conformance(t, {
        name: "azure",
        storage: new AzureBlobStorage({
          connectionString,
          retry: { initialDelayMs: 10 },
          rangedReadThreshold: 16 * MIB, // exercise parallel ranged reads
        }),
        dir: (name) => `az://devstoreaccount1/conformance/${unique(name)}`,
        wrongCredentials: {
          storage: new AzureBlobStorage({
            connectionString: connectionString.replace(
              /AccountKey=[^;]+/,
              `AccountKey=${wrongKey}`,
            ),
          }),
          secret: wrongKey,
        },
        throughProxy: (endpoint, rangedReadThreshold) =>
          new AzureBlobStorage({
            connectionString: azuriteConnectionString(endpoint),
            retry: { initialDelayMs: 10 },
            ...(rangedReadThreshold === undefined ? {} : { rangedReadThreshold }),
          }),
        emulator: azurite,
      });
    } finally {
      await azurite.stop();
    }
  },
});

Deno.test({
  name: "GcsStorage passes the storage conformance suite against fake-gcs-server",
  ignore: !requireComponent(emulatorInstalled("gcs"), `fake-gcs-server not installed (${INSTALL})`),
  async fn(t) {
    const gcs = await startFakeGcs();
    try {
      await new GcsSdk({ apiEndpoint: gcs.endpoint, projectId: "test" }).createBucket(
        "conformance",
      );
      await conformance(t, {
        name: "gcs",
        storage: new GcsStorage({ apiEndpoint: gcs.endpoint, rangedReadThreshold: 16 * MIB }),
        dir: (name) => `gs://conformance/${unique(name)}`,
        throughProxy: (endpoint, rangedReadThreshold) =>
          new GcsStorage({
            apiEndpoint: endpoint,
            maxRetryDelayMs: 1000,
            ...(rangedReadThreshold === undefined ? {} : { rangedReadThreshold }),
          }),
        emulator: gcs,
      });
      // fake-gcs-server does not check credentials, so a hand-written fake answers the 403
      // that GCS gives a caller without access.
      await t.step("gcs: a 403 from the service is a clear permission error", async () => {
        const server = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen() {} },
          () =>
            Response.json({
              error: { code: 403, message: "Caller does not have storage.objects.get access" },
            }, {
              status: 403,
            }),
        );
        try {
          const denied = new GcsStorage({ apiEndpoint: `http://127.0.0.1:${server.addr.port}` });
          await assert.rejects(denied.read("gs://conformance/x"), (error) => {
            assert.ok(error instanceof StorageError);
            assert.equal(error.code, "PERMISSION_DENIED");
            assert.match(error.message, /HTTP 403/);
            return true;
          });
        } finally {
          await server.shutdown();
        }
      });
    } finally {
      await gcs.stop();
    }
  },
});

// --- the transporter between stores ----------------------------------------------------

const MAIN = new URL("../transporter/main.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;

async function transporter(
  mode: "inputs" | "outputs",
  spec: TransferSpec,
  root: string,
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const specPath = `${root}/spec-${mode}.json`;
  await Deno.writeTextFile(specPath, JSON.stringify(spec));
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...TRANSPORTER_V8_FLAGS, ...TRANSPORTER_PERMISSIONS, MAIN, mode, specPath],
    cwd: REPO,
    env: {
      PLANETARY_STATE_DIR: `${root}/state`,
      PLANETARY_TERMINATION_LOG: `${root}/termination-log`,
      NO_COLOR: "1",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test({
  name: "transporter moves a directory from S3 to Azure Blob and GCS",
  ignore: !requireComponent(
    emulatorInstalled("s3") && emulatorInstalled("azure") && emulatorInstalled("gcs"),
    `storage emulators not installed (${INSTALL})`,
  ),
  async fn() {
    const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "transporter-cloud-" }));
    const emulators: Emulator[] = [];
    try {
      const [moto, azurite, gcs] = await Promise.all([startMoto(), startAzurite(), startFakeGcs()]);
      emulators.push(moto, azurite, gcs);
      const connectionString = azuriteConnectionString(azurite.endpoint);
      const env: Record<string, string> = {
        PLANETARY_S3_ENDPOINT: moto.endpoint,
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        AWS_REGION: "us-east-1",
        AZURE_STORAGE_CONNECTION_STRING: connectionString,
        PLANETARY_GCS_ENDPOINT: gcs.endpoint,
        // big.bin (20 MiB) is then downloaded by parallel ranges, checked by its CRC32.
        PLANETARY_STORAGE_RANGED_READ_MIB: "8",
      };
      const { adapters } = cloudStorageFromEnv((name) => env[name]);
      await new S3Client({
        region: "us-east-1",
        endpoint: moto.endpoint,
        forcePathStyle: true,
        credentials: moto.credentials,
      }).send(new CreateBucketCommand({ Bucket: "source" }));
      await BlobServiceClient.fromConnectionString(connectionString).getContainerClient("dest")
        .create();
      await new GcsSdk({ apiEndpoint: gcs.endpoint, projectId: "test" }).createBucket("dest");

      const s3 = adapters.s3!;
      const tree: Record<string, string> = {
        "reads/r1.fastq": "@r1\nACGT\n+\nIIII\n",
        "reads/lane 2/r2.fastq": "@r2\nTTTT\n+\nIIII\n",
        "ref.fa": ">chr1\nACGTACGT\n",
      };
      for (const [path, content] of Object.entries(tree)) {
        await s3.write(
          `s3://source/run/${path.split("/").map(encodeURIComponent).join("/")}`,
          bytesStream(content),
        );
      }
      await s3.write("s3://source/run/big.bin", generated(20 * MIB, 2), { size: 20 * MIB });
      await Deno.mkdir(`${root}/state`);
      const spec: TransferSpec = {
        version: 1,
        taskId: "cloud-1",
        inputs: [{ url: "s3://source/run", path: `${root}/pod/in`, type: "DIRECTORY" }],
        outputs: [
          { url: "az://devstoreaccount1/dest/copy", path: `${root}/pod/in`, type: "DIRECTORY" },
          { url: "gs://dest/copy", path: `${root}/pod/in`, type: "DIRECTORY" },
        ],
        executors: [],
        tailBytes: 1024,
      };
      const inputs = await transporter("inputs", spec, root, env);
      assert.equal(inputs.code, 0, inputs.stderr);
      assert.equal(
        await Deno.readTextFile(`${root}/pod/in/reads/lane 2/r2.fastq`),
        tree["reads/lane 2/r2.fastq"],
      );
      const sent = hashing();
      for await (const _ of generated(20 * MIB, 2).pipeThrough(sent.stream)) { /* hash */ }
      const got = hashing();
      for await (
        const _ of (await Deno.open(`${root}/pod/in/big.bin`)).readable.pipeThrough(got.stream)
      ) {
        /* hash */
      }
      assert.equal(got.hex(), sent.hex(), "big.bin arrived intact through ranged reads");
      const outputs = await transporter("outputs", spec, root, env);
      assert.equal(outputs.code, 0, outputs.stderr);
      const line = outputs.stdout.split("\n").find((l) => l.startsWith(REPORT_PREFIX))!;
      const report: TransferReport = JSON.parse(line.slice(REPORT_PREFIX.length));
      assert.equal(report.outputs.length, 8);
      const big = report.outputs.find((o) => o.url === "gs://dest/copy/big.bin");
      assert.equal(big?.size_bytes, String(20 * MIB));

      for (const base of ["az://devstoreaccount1/dest/copy", "gs://dest/copy"]) {
        const store = storageForUrl(base, { adapters });
        const found = await listed(store, base);
        assert.deepEqual(found, {
          "reads/r1.fastq": tree["reads/r1.fastq"]!.length,
          "reads/lane 2/r2.fastq": tree["reads/lane 2/r2.fastq"]!.length,
          "ref.fa": tree["ref.fa"]!.length,
          "big.bin": 20 * MIB,
        });
        assert.equal(
          await readAll(await store.read(`${base}/reads/lane%202/r2.fastq`)),
          tree["reads/lane 2/r2.fastq"],
        );
      }

      // A missing source names the input and the reason, without any secret.
      const missing = await transporter(
        "inputs",
        {
          ...spec,
          inputs: [{ url: "s3://source/nope.txt", path: `${root}/pod/nope.txt`, type: "FILE" }],
        },
        root,
        env,
      );
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /input #0 .*s3:\/\/source\/nope\.txt.* not found/);
    } finally {
      await Promise.all(emulators.map((e) => e.stop()));
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "transporter fails a stalled S3 input after PLANETARY_STORAGE_STALL_SECONDS, naming it",
  ignore: !requireComponent(emulatorInstalled("s3"), `moto not installed (${INSTALL})`),
  async fn() {
    const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "transporter-stall-" }));
    const moto = await startMoto();
    const proxy = startStallingProxy(`127.0.0.1:${moto.port}`);
    try {
      const s3 = new S3Storage({
        endpoint: moto.endpoint,
        forcePathStyle: true,
        credentials: moto.credentials,
      });
      await new S3Client({
        region: "us-east-1",
        endpoint: moto.endpoint,
        forcePathStyle: true,
        credentials: moto.credentials,
      }).send(new CreateBucketCommand({ Bucket: "source" }));
      await s3.write("s3://source/big.bin", generated(4 * MIB, 8), { size: 4 * MIB });
      await Deno.mkdir(`${root}/state`);
      proxy.setPolicy({ responseBytes: 256 * 1024 });
      const run = await transporter(
        "inputs",
        {
          version: 1,
          taskId: "stall-1",
          inputs: [{ url: "s3://source/big.bin", path: `${root}/pod/big.bin`, type: "FILE" }],
          outputs: [],
          executors: [],
          tailBytes: 1024,
        },
        root,
        {
          PLANETARY_S3_ENDPOINT: proxy.endpoint,
          AWS_ACCESS_KEY_ID: "test",
          AWS_SECRET_ACCESS_KEY: "test",
          AWS_REGION: "us-east-1",
          PLANETARY_GCS: "false",
          PLANETARY_STORAGE_STALL_SECONDS: "1",
        },
      );
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        /input #0 .*stalled: no data for 1 s \(S3 GetObject \(body\)\): s3:\/\/source\/big\.bin/,
      );
      const termination = await Deno.readTextFile(`${root}/termination-log`);
      assert.match(termination, /stalled: no data for 1 s .*s3:\/\/source\/big\.bin/);
    } finally {
      await proxy.close();
      await moto.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});

// --- serve: configured stores decide the accepted URL schemes ----------------------------

Deno.test("planetary serve accepts only the enabled storage schemes and lists them", async () => {
  // s3:// and gs:// are on by default; PLANETARY_GCS=false turns gs:// off, Azure is unset.
  const env: Record<string, string> = {
    PLANETARY_S3_ENDPOINT: "http://127.0.0.1:9",
    PLANETARY_GCS: "false",
  };
  const resolved = await resolveServeOptions({ backend: "none" }, (name) => env[name]);
  assert.deepEqual(resolved.cloudStorage, { schemes: ["s3"], prefixes: ["s3://"] });
  const dataDir = await Deno.makeTempDir({ prefix: "storage-serve-" });
  const server = await startServer({
    ...resolved,
    handleSignals: false,
    announce: false,
    port: 0,
    dataDir,
    api: { logRequests: false },
  });
  try {
    const submit = (url: string, where: "inputs" | "outputs") =>
      fetch(`${server.url}/ga4gh/tes/v1/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          executors: [{ image: "alpine", command: ["true"] }],
          [where]: [{ url, path: "/data/x.txt" }],
        }),
      });
    const accepted = await submit("s3://bucket/x.txt", "inputs");
    assert.equal(accepted.status, 200, await accepted.clone().text());
    await accepted.body?.cancel();
    for (const [url, where] of [["gs://b/x.txt", "inputs"], ["az://a/c/x", "outputs"]] as const) {
      const refused = await submit(url, where);
      assert.equal(refused.status, 400);
      assert.match(await refused.text(), new RegExp(`${where}\\[0\\]\\.url`));
    }
    const info = await (await fetch(`${server.url}/service-info`)).json();
    assert.deepEqual(info.storage, ["http://", "https://", "s3://"]);
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(`${dataDir}.lock`).catch(() => {}); // the store's lock beside its folder
  }
});
