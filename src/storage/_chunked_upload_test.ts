import assert from "node:assert/strict";
import { chunkedUpload } from "./_chunked_upload.ts";

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

Deno.test("chunkedUpload() sizes part buffers to a known, shorter stream", async () => {
  const buffers: number[] = [];
  const result = await chunkedUpload(streamOf([3, 2]), {
    partSize: 8 * 1024 * 1024,
    concurrency: 2,
    size: 5,
    uploadPart: (_, bytes) => {
      buffers.push(bytes.buffer.byteLength);
      return Promise.resolve();
    },
  });
  assert.deepEqual(result, { parts: 1, bytes: 5 });
  assert.deepEqual(buffers, [5], "a 5-byte upload allocates 5 bytes, not a whole part");
  const tail: number[] = [];
  await chunkedUpload(streamOf([4, 4, 2]), {
    partSize: 4,
    concurrency: 1,
    size: 10,
    uploadPart: (_, bytes) => {
      tail.push(bytes.buffer.byteLength);
      return Promise.resolve();
    },
  });
  assert.deepEqual(tail, [4, 4, 2], "the last buffer holds only the remainder");
});

Deno.test("chunkedUpload() marks only the final part last, once the stream ended", async () => {
  let ended = false;
  const source = streamOf([4, 4]);
  const reader = source.getReader();
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        c.close();
      } else c.enqueue(value);
    },
  });
  const seen: [number, number, boolean, boolean][] = [];
  await chunkedUpload(stream, {
    partSize: 4,
    concurrency: 2,
    uploadPart: (index, bytes, last) => {
      seen.push([index, bytes.byteLength, last, ended]);
      return Promise.resolve();
    },
  });
  assert.deepEqual(seen, [[0, 4, false, false], [1, 4, true, true]]);
  const empty: [number, boolean][] = [];
  await chunkedUpload(streamOf([]), {
    partSize: 4,
    concurrency: 2,
    uploadPart: (_, bytes, last) => {
      empty.push([bytes.byteLength, last]);
      return Promise.resolve();
    },
  });
  assert.deepEqual(empty, [[0, true]], "an empty stream is one empty, last part");
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
