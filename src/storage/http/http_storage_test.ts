import assert from "node:assert/strict";
import { HttpStorage, parseRetryAfter } from "./http_storage.ts";
import { StorageError, StorageNotFoundError, StoragePermissionError } from "../storage_error.ts";

interface TestServer {
  base: string;
  hits: Map<string, number>;
  close: () => Promise<void>;
}

const CHUNK = new Uint8Array(64 * 1024).fill(0x61);
const CHUNKS = 32; // 2 MiB

function startServer(): TestServer {
  const hits = new Map<string, number>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    const hit = (hits.get(path) ?? 0) + 1;
    hits.set(path, hit);
    switch (path) {
      case "/data": {
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent++ < CHUNKS) controller.enqueue(CHUNK);
            else controller.close();
          },
        });
        return new Response(req.method === "HEAD" ? null : body, {
          headers: { "content-length": String(CHUNK.length * CHUNKS) },
        });
      }
      case "/flaky":
        return hit <= 2 ? new Response("busy", { status: 503 }) : new Response("finally");
      case "/limited":
        return hit === 1
          ? new Response("slow down", { status: 429, headers: { "retry-after": "7" } })
          : new Response("allowed");
      case "/always-503":
        return new Response("down", { status: 503 });
      case "/forbidden":
        return new Response("no", { status: 403 });
      case "/bad-request":
        return new Response("no", { status: 400 });
      default:
        return new Response("not found", { status: 404 });
    }
  });
  const { port } = server.addr as Deno.NetAddr;
  return { base: `http://127.0.0.1:${port}`, hits, close: () => server.shutdown() };
}

/** Records requested delays instead of waiting (a fake clock). */
function fakeSleep(): { delays: number[]; sleep: (ms: number) => Promise<void> } {
  const delays: number[] = [];
  return { delays, sleep: (ms) => (delays.push(ms), Promise.resolve()) };
}

Deno.test("HttpStorage.read() streams a 200 body", async () => {
  const server = startServer();
  try {
    const storage = new HttpStorage();
    const stream = await storage.read(`${server.base}/data`);
    let total = 0;
    let chunks = 0;
    for await (const chunk of stream) {
      total += chunk.byteLength;
      chunks++;
    }
    assert.equal(total, CHUNK.length * CHUNKS);
    assert.ok(chunks > 1, "body arrives in several chunks");
    assert.deepEqual(await storage.stat(`${server.base}/data`), {
      type: "file",
      size: CHUNK.length * CHUNKS,
    });
  } finally {
    await server.close();
  }
});

Deno.test("HttpStorage.read() maps 404 to StorageNotFoundError without the query", async () => {
  const server = startServer();
  try {
    const storage = new HttpStorage();
    const url = `http://user:hunter2@127.0.0.1:${new URL(server.base).port}/missing?sig=SECRET`;
    const error = await storage.read(url).catch((e) => e);
    assert.ok(error instanceof StorageNotFoundError);
    assert.equal(error.code, "NOT_FOUND");
    assert.match(error.message, /\/missing/);
    assert.doesNotMatch(error.message, /SECRET|hunter2|user/);
    assert.equal(server.hits.get("/missing"), 1, "404 is not retried");
    assert.equal(await storage.stat(`${server.base}/missing`), undefined);
  } finally {
    await server.close();
  }
});

Deno.test("HttpStorage.read() retries 503 with capped exponential backoff", async () => {
  const server = startServer();
  try {
    const clock = fakeSleep();
    const storage = new HttpStorage({
      sleep: clock.sleep,
      jitter: false,
      initialDelayMs: 100,
      maxDelayMs: 150,
    });
    assert.equal(await new Response(await storage.read(`${server.base}/flaky`)).text(), "finally");
    assert.equal(server.hits.get("/flaky"), 3);
    assert.deepEqual(clock.delays, [100, 150]);
  } finally {
    await server.close();
  }
});

Deno.test("HttpStorage.read() honours Retry-After on 429", async () => {
  const server = startServer();
  try {
    const clock = fakeSleep();
    const storage = new HttpStorage({ sleep: clock.sleep, initialDelayMs: 1 });
    assert.equal(
      await new Response(await storage.read(`${server.base}/limited`)).text(),
      "allowed",
    );
    assert.deepEqual(clock.delays, [7000]);
  } finally {
    await server.close();
  }
});

Deno.test("HttpStorage.read() gives up after maxAttempts", async () => {
  const server = startServer();
  try {
    const clock = fakeSleep();
    const storage = new HttpStorage({ sleep: clock.sleep, maxAttempts: 3 });
    const error = await storage.read(`${server.base}/always-503?token=SECRET`).catch((e) => e);
    assert.ok(error instanceof StorageError);
    assert.equal(error.code, "IO_ERROR");
    assert.match(error.message, /after 3 attempts.*HTTP 503/);
    assert.doesNotMatch(error.message, /SECRET/);
    assert.equal(server.hits.get("/always-503"), 3);
    assert.equal(clock.delays.length, 2);
  } finally {
    await server.close();
  }
});

Deno.test("HttpStorage.read() does not retry 403 or 400", async () => {
  const server = startServer();
  try {
    const storage = new HttpStorage({ sleep: fakeSleep().sleep });
    await assert.rejects(storage.read(`${server.base}/forbidden`), StoragePermissionError);
    await assert.rejects(storage.read(`${server.base}/bad-request`), /HTTP 400/);
    assert.equal(server.hits.get("/forbidden"), 1);
    assert.equal(server.hits.get("/bad-request"), 1);
  } finally {
    await server.close();
  }
});

Deno.test("HttpStorage.read() retries network errors and redacts the URL", async () => {
  // a port that was free a moment ago: connection refused
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  const clock = fakeSleep();
  const storage = new HttpStorage({ sleep: clock.sleep, maxAttempts: 2 });
  const error = await storage.read(`http://127.0.0.1:${port}/x?sig=SECRET`).catch((e) => e);
  assert.ok(error instanceof StorageError);
  assert.match(error.message, /after 2 attempts/);
  assert.doesNotMatch(error.message, /SECRET/);
  assert.equal(clock.delays.length, 1);
});

Deno.test("HttpStorage.write() refuses uploads", async () => {
  const storage = new HttpStorage();
  const error = await storage.write("https://example.org/out?sig=SECRET", new Response("x").body!)
    .catch((e) => e);
  assert.ok(error instanceof StorageError);
  assert.equal(error.code, "UNSUPPORTED");
  assert.match(
    error.message,
    /upload over http\(s\) is not supported: https:\/\/example\.org\/out$/,
  );
});

Deno.test("HttpStorage.list() refuses directory listing", async () => {
  const storage = new HttpStorage();
  const error = await (async () => {
    for await (const _ of storage.list("https://example.org/dir/")) { /* drain */ }
  })().catch((e) => e);
  assert.ok(error instanceof StorageError);
  assert.equal(error.code, "UNSUPPORTED");
  assert.match(error.message, /listing a directory over http\(s\) is not supported/);
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
  const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:10 GMT", now), 10_000);
});
