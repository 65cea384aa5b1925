import assert from "node:assert/strict";
import { rangedRead, readExactly } from "./_ranged_read.ts";

function streamOf(chunks: number[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i >= chunks.length) return c.close();
      c.enqueue(new Uint8Array(chunks[i]!).fill(i++));
    },
  });
}

Deno.test("rangedRead() yields ranges in order whatever order they complete in", async () => {
  const data = new Uint8Array(10).map((_, i) => i);
  const pending: { offset: number; into: Uint8Array; resolve: (b: Uint8Array) => void }[] = [];
  const stream = rangedRead({
    size: 10,
    rangeSize: 3,
    concurrency: 4,
    fetchRange: (offset, into) => {
      const { promise, resolve } = Promise.withResolvers<Uint8Array>();
      pending.push({ offset, into, resolve });
      return promise;
    },
  });
  const body = new Response(stream).arrayBuffer();
  await Promise.resolve(); // let the first pull start all four ranges
  assert.deepEqual(pending.map((p) => p.offset), [0, 3, 6, 9]);
  for (const p of [...pending].reverse()) {
    p.into.set(data.subarray(p.offset, p.offset + p.into.byteLength));
    p.resolve(p.into);
  }
  assert.deepEqual(new Uint8Array(await body), data);
});

Deno.test("rangedRead() reuses concurrency + 1 range buffers for a large object", async () => {
  const size = 3 * 1024 * 1024 + 5;
  const data = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
  const buffers = new Set<ArrayBufferLike>();
  const stream = rangedRead({
    size,
    rangeSize: 64 * 1024,
    concurrency: 2,
    fetchRange: async (offset, into) => {
      buffers.add(into.buffer);
      await new Promise((resolve) => setTimeout(resolve, (offset / 65536) % 3));
      into.set(data.subarray(offset, offset + into.byteLength));
      return into;
    },
  });
  let largest = 0;
  const got = new Uint8Array(size);
  let filled = 0;
  for await (const chunk of stream) {
    largest = Math.max(largest, chunk.byteLength);
    assert.ok(!buffers.has(chunk.buffer), "the stream yields copies, never a reused buffer");
    got.set(chunk, filled);
    filled += chunk.byteLength;
  }
  assert.equal(filled, size);
  assert.deepEqual(got, data);
  assert.equal(buffers.size, 3, "2 in flight + 1 draining, for 50 ranges");
  assert.ok(largest <= 256 * 1024);
});

Deno.test("rangedRead() fails the stream on a short range and stops the others", async () => {
  let aborted = false;
  const stream = rangedRead({
    size: 100,
    rangeSize: 10,
    concurrency: 2,
    fetchRange: (offset, into, signal) => {
      signal.addEventListener("abort", () => aborted = true);
      return Promise.resolve(offset === 10 ? into.subarray(0, 4) : into);
    },
  });
  await assert.rejects(new Response(stream).arrayBuffer(), /range at 10: expected 10 bytes, got 4/);
  assert.ok(aborted);
});

Deno.test("readExactly() fills the buffer and refuses a longer body", async () => {
  const into = new Uint8Array(5);
  const bytes = await readExactly(streamOf([2, 3]), into);
  assert.equal(bytes, into);
  assert.deepEqual([...bytes], [0, 0, 1, 1, 1]);
  assert.equal((await readExactly(streamOf([2]), new Uint8Array(5))).byteLength, 2);
  await assert.rejects(readExactly(streamOf([4, 4]), new Uint8Array(5)), RangeError);
});
