import assert from "node:assert/strict";
import { chunkedUpload } from "./_chunked_upload.ts";
import { rangedRead } from "./_ranged_read.ts";

function streamOf(chunks: number[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i >= chunks.length) return c.close();
      c.enqueue(new Uint8Array(chunks[i]!).fill(i++));
    },
  });
}

Deno.test("chunkedUpload() cuts a stream into full parts with bounded parallelism", async () => {
  const parts: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const result = await chunkedUpload(streamOf([3, 7, 1, 10]), {
    partSize: 4,
    concurrency: 2,
    uploadPart: async (index, bytes) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await Promise.resolve();
      parts[index] = bytes.byteLength;
      inFlight--;
    },
  });
  assert.deepEqual(result, { parts: 6, bytes: 21 });
  assert.deepEqual(parts, [4, 4, 4, 4, 4, 1]);
  assert.ok(maxInFlight <= 2);
});

Deno.test("chunkedUpload() stops and rethrows the first part failure", async () => {
  await assert.rejects(
    chunkedUpload(streamOf([16, 16, 16]), {
      partSize: 4,
      concurrency: 2,
      uploadPart: (index) => index === 1 ? Promise.reject(new Error("part 1")) : Promise.resolve(),
    }),
    /part 1/,
  );
});

Deno.test("rangedRead() yields ranges in order whatever order they complete in", async () => {
  const data = new Uint8Array(10).map((_, i) => i);
  const pending: { offset: number; count: number; resolve: (b: Uint8Array) => void }[] = [];
  const stream = rangedRead({
    size: 10,
    rangeSize: 3,
    concurrency: 4,
    fetchRange: (offset, count) => {
      const { promise, resolve } = Promise.withResolvers<Uint8Array>();
      pending.push({ offset, count, resolve });
      return promise;
    },
  });
  const body = new Response(stream).arrayBuffer();
  await Promise.resolve(); // let the first pull start all four ranges
  assert.deepEqual(pending.map((p) => p.offset), [0, 3, 6, 9]);
  for (const p of [...pending].reverse()) p.resolve(data.slice(p.offset, p.offset + p.count));
  assert.deepEqual(new Uint8Array(await body), data);
});
