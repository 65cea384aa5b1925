import assert from "node:assert/strict";
import { copyToLog, describeLogWriteError, readLogTail } from "./container_log.ts";

async function withFile(content: Uint8Array | string, fn: (path: string) => Promise<void>) {
  const path = await Deno.makeTempFile({ prefix: "planetary-log-test-" });
  try {
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("readLogTail() returns the last 2048 bytes of a 10 MB single line", async () => {
  const line = new Uint8Array(10_000_000).fill(0x61);
  line.set(new TextEncoder().encode("THE-END"), line.length - 7);
  await withFile(
    new Uint8Array([...new TextEncoder().encode("first\n"), ...line, 0x0a]),
    async (path) => {
      const tail = await readLogTail(path);
      assert.equal(new TextEncoder().encode(tail).length, 2048);
      assert.ok(tail.endsWith("aTHE-END"), tail.slice(-20));
      assert.ok(!tail.includes("\n"));
    },
  );
});

Deno.test("readLogTail() keeps the last lines and drops the final newline", async () => {
  const lines = Array.from({ length: 200 }, (_, i) => `line ${i}`);
  await withFile(lines.join("\n") + "\n", async (path) => {
    assert.equal(await readLogTail(path, { maxLines: 3 }), "line 197\nline 198\nline 199");
    const tail = await readLogTail(path);
    assert.equal(tail.split("\n").length, 80);
    assert.ok(tail.startsWith("line 120\n"));
  });
});

Deno.test("readLogTail() never splits a UTF-8 character", async () => {
  await withFile("é".repeat(5000), async (path) => {
    const tail = await readLogTail(path, { maxBytes: 101 });
    assert.equal(tail, "é".repeat(50));
  });
});

Deno.test("readLogTail() answers '' for a missing file and a short file whole", async () => {
  assert.equal(await readLogTail("/nonexistent/planetary.log"), "");
  await withFile("only\n", async (path) => assert.equal(await readLogTail(path), "only"));
});

Deno.test("copyToLog() never rejects on a full disk: it reports once and drains", async () => {
  const chunks = Array.from({ length: 100 }, () => new Uint8Array(1024));
  let reads = 0;
  const source = (): ReadableStream<Uint8Array> =>
    ReadableStream.from(chunks).pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          reads++;
          controller.enqueue(chunk);
        },
      }),
    );
  let writes = 0;
  const full = {
    write(): Promise<number> {
      writes++;
      if (writes > 3) {
        return Promise.reject(new Error("No space left on device (os error 28)"));
      }
      return Promise.resolve(1024);
    },
  };
  const errors: unknown[] = [];
  const error = await copyToLog([source(), source()], full, (e) => errors.push(e));
  assert.equal(errors.length, 1);
  assert.equal(describeLogWriteError(error), "no space left on device");
  assert.equal(reads, 200, "both streams are read to their end");
  assert.equal(writes, 4, "no write after the first failure");
});
