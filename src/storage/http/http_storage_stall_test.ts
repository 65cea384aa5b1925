import assert from "node:assert/strict";
import { HttpStorage } from "./http_storage.ts";
import { StorageError } from "../storage_error.ts";
import { stallTimeoutMsFromEnv } from "../_stall_timeout.ts";

/** A loopback server that sends its headers and one chunk, then drips nothing more. */
function dripServer(): { base: string; close: () => Promise<void> } {
  const pending: ReadableStreamDefaultController<Uint8Array>[] = [];
  const unanswered: (() => void)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/no-headers") {
      // answers only when the server closes, long after the client gave up
      return new Promise<Response>((resolve) =>
        unanswered.push(() => resolve(new Response("late")))
      );
    }
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("first byte"));
        pending.push(controller);
      },
    });
    return new Response(body, { headers: { "content-length": "1000000" } });
  });
  const { port } = server.addr as Deno.NetAddr;
  return {
    base: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const c of pending) c.close();
      for (const answer of unanswered) answer();
      await server.shutdown();
    },
  };
}

Deno.test("HttpStorage.read() fails a body that stops dripping: stalled: no data", async () => {
  const server = dripServer();
  try {
    const storage = new HttpStorage({ stallTimeoutMs: 300, maxAttempts: 1 });
    const body = await storage.read(`${server.base}/drip?sig=SECRET`);
    const chunks: number[] = [];
    await assert.rejects(
      async () => {
        for await (const chunk of body) chunks.push(chunk.length);
      },
      (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.match(
          error.message,
          /^stalled: no data for 0\.3 s: http:\/\/127\.0\.0\.1:\d+\/drip/,
        );
        assert.doesNotMatch(error.message, /SECRET/);
        return true;
      },
    );
    assert.deepEqual(chunks, [10]);
  } finally {
    await server.close();
  }
});

Deno.test("HttpStorage.read() gives up on a server that never answers", async () => {
  const server = dripServer();
  try {
    const storage = new HttpStorage({
      stallTimeoutMs: 200,
      maxAttempts: 2,
      sleep: () => Promise.resolve(),
    });
    await assert.rejects(
      storage.read(`${server.base}/no-headers`),
      /GET failed after 2 attempts \(last: stalled: no response for 0\.2 s\)/,
    );
  } finally {
    await server.close();
  }
});

Deno.test("stallTimeoutMsFromEnv() reads PLANETARY_STORAGE_STALL_SECONDS", () => {
  const before = Deno.env.get("PLANETARY_STORAGE_STALL_SECONDS");
  try {
    Deno.env.delete("PLANETARY_STORAGE_STALL_SECONDS");
    assert.equal(stallTimeoutMsFromEnv(), 60_000);
    Deno.env.set("PLANETARY_STORAGE_STALL_SECONDS", "2.5");
    assert.equal(stallTimeoutMsFromEnv(), 2500);
    Deno.env.set("PLANETARY_STORAGE_STALL_SECONDS", "soon");
    assert.throws(() => stallTimeoutMsFromEnv(), RangeError);
  } finally {
    if (before === undefined) Deno.env.delete("PLANETARY_STORAGE_STALL_SECONDS");
    else Deno.env.set("PLANETARY_STORAGE_STALL_SECONDS", before);
  }
});
