import assert from "node:assert/strict";
import {
  onEachChunk,
  StallError,
  stallMessage,
  StallWatchdog,
  touchEach,
  withStallDeadline,
  withStallTimeout,
} from "./_stall_timeout.ts";
import { isRetryableFailure } from "./_retry.ts";
import { StorageError } from "./storage_error.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("StallError names the timeout, the operation, the attempts and the redacted URL", () => {
  const error = new StallError({
    timeoutMs: 60_000,
    url: "https://acct.blob.core.windows.net/c/b?sig=SECRET",
    operation: "Azure GetBlob",
    attempts: 6,
  });
  assert.ok(error instanceof StorageError);
  assert.equal(error.code, "IO_ERROR");
  assert.equal(
    error.message,
    "stalled: no data for 60 s (Azure GetBlob, 6 attempts): https://acct.blob.core.windows.net/c/b",
  );
  assert.equal(
    new StallError({ timeoutMs: 1500, url: "s3://b/k", attempts: 1 }).message,
    "stalled: no data for 1.5 s: s3://b/k",
  );
  assert.equal(stallMessage(2000, "response"), "stalled: no response for 2 s");
});

Deno.test("isRetryableFailure() retries a stalled request", () => {
  assert.equal(isRetryableFailure(new StallError({ timeoutMs: 1000 })), true);
});

Deno.test("StallWatchdog aborts its signal with a StallError when nothing moves", async () => {
  let called = 0;
  const watchdog = new StallWatchdog({ timeoutMs: 50, onStall: () => called++ });
  await new Promise((resolve) => watchdog.signal.addEventListener("abort", resolve));
  assert.equal(watchdog.stalled, true);
  assert.ok(watchdog.signal.reason instanceof StallError);
  assert.equal(called, 1);
  watchdog.touch(); // too late: it stays stalled
  assert.equal(watchdog.stalled, true);
});

Deno.test("StallWatchdog.touch() keeps a slow but moving transfer alive", async () => {
  const watchdog = new StallWatchdog({ timeoutMs: 500 });
  // Twice the timeout in all, never a tenth of it without a touch.
  for (let i = 0; i < 20; i++) {
    await sleep(50);
    watchdog.touch();
  }
  assert.equal(watchdog.stalled, false);
  watchdog.stop();
  await sleep(600);
  assert.equal(watchdog.stalled, false, "a stopped watchdog never fires");
});

Deno.test("withStallTimeout() never trips on a consumer that is slow to read", async () => {
  const source = ReadableStream.from([new Uint8Array(1), new Uint8Array(2), new Uint8Array(3)]);
  const body = withStallTimeout(source, { timeoutMs: 50, url: "s3://b/k" });
  const sizes: number[] = [];
  for await (const chunk of body) {
    sizes.push(chunk.length);
    await sleep(150); // three times the timeout between reads
  }
  assert.deepEqual(sizes, [1, 2, 3]);
});

Deno.test("withStallTimeout() fails a source that stops, naming the operation", async () => {
  let stalled = false;
  const source = new ReadableStream<Uint8Array>({
    start: (c) => c.enqueue(new Uint8Array(4)), // then nothing more
  });
  const body = withStallTimeout(source, {
    timeoutMs: 50,
    url: "gs://b/o",
    operation: "GCS objects.get",
    onStall: () => stalled = true,
  });
  await assert.rejects(
    async () => {
      for await (const _ of body) { /* drain */ }
    },
    (error) => {
      assert.ok(error instanceof StallError);
      assert.match(
        error.message,
        /^stalled: no data for 0\.1 s \(GCS objects\.get\): gs:\/\/b\/o$/,
      );
      return true;
    },
  );
  assert.equal(stalled, true);
});

Deno.test("withStallDeadline() bounds a call that cannot be watched", async () => {
  assert.equal(
    await withStallDeadline(Promise.resolve(7), { timeoutMs: 50, url: "gs://b/o", operation: "x" }),
    7,
  );
  await assert.rejects(
    withStallDeadline(new Promise(() => {}), {
      timeoutMs: 50,
      url: "gs://b/o",
      operation: "GCS objects.get",
    }),
    /^StallError: stalled: no response for 0\.1 s \(GCS objects\.get\): gs:\/\/b\/o$/,
  );
});

Deno.test("onEachChunk() and touchEach() report every chunk and pass it on", async () => {
  const seen: number[] = [];
  const out = onEachChunk(
    ReadableStream.from([new Uint8Array(1), new Uint8Array(5)]),
    (c) => seen.push(c.length),
  );
  assert.equal(new Uint8Array(await new Response(out).arrayBuffer()).length, 6);
  assert.deepEqual(seen, [1, 5]);
  let touches = 0;
  let bytes = 0;
  for await (const chunk of touchEach(ReadableStream.from([new Uint8Array(2)]), () => touches++)) {
    bytes += chunk.length;
  }
  assert.deepEqual([touches, bytes], [1, 2]);
});
