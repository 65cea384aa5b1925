import assert from "node:assert/strict";
import { ApiException } from "@kubernetes/client-node";
import { backoffDelay, HttpStatusError, parseRetryAfter, retry, transientError } from "./retry.ts";

function recordingSleep(): { waits: number[]; sleep: (ms: number) => Promise<void> } {
  const waits: number[] = [];
  return { waits, sleep: (ms) => (waits.push(ms), Promise.resolve()) };
}

Deno.test("retry() retries 5xx and network errors, then returns the value", async () => {
  const { waits, sleep } = recordingSleep();
  const errors = [new HttpStatusError(503, "unavailable"), new TypeError("connection refused")];
  let calls = 0;
  const value = await retry(() => {
    const error = errors[calls++];
    return error ? Promise.reject(error) : Promise.resolve("ok");
  }, { sleep, random: () => 0, initialDelayMs: 100 });
  assert.equal(value, "ok");
  assert.equal(calls, 3);
  assert.deepEqual(waits, [50, 100]);
});

Deno.test("retry() does not retry a 4xx answer", async () => {
  const { waits, sleep } = recordingSleep();
  let calls = 0;
  const conflict = new ApiException(409, "conflict", "{}", {});
  await assert.rejects(
    retry(() => (calls++, Promise.reject(conflict)), { sleep }),
    (e) => e === conflict,
  );
  assert.equal(calls, 1);
  assert.deepEqual(waits, []);
});

Deno.test("retry() honours Retry-After of a 429, capped at maxDelayMs", async () => {
  const { waits, sleep } = recordingSleep();
  let calls = 0;
  const busy = new ApiException(429, "too many", "{}", { "Retry-After": "3" });
  const value = await retry(
    () => calls++ < 2 ? Promise.reject(busy) : Promise.resolve(1),
    { sleep, random: () => 0, maxDelayMs: 2500 },
  );
  assert.equal(value, 1);
  assert.deepEqual(waits, [2500, 2500]);
});

Deno.test("retry() gives up after maxAttempts with the last error", async () => {
  const { sleep } = recordingSleep();
  let calls = 0;
  await assert.rejects(
    retry(() => Promise.reject(new HttpStatusError(500, `boom ${++calls}`)), {
      sleep,
      maxAttempts: 3,
    }),
    /boom 3/,
  );
  assert.equal(calls, 3);
});

Deno.test("retry() stops when its signal aborts", async () => {
  const controller = new AbortController();
  let calls = 0;
  await assert.rejects(
    retry(() => {
      calls++;
      controller.abort();
      return Promise.reject(new TypeError("network"));
    }, { signal: controller.signal }),
    TypeError,
  );
  assert.equal(calls, 1);
});

Deno.test("transientError() tells transient answers from final ones", () => {
  assert.deepEqual(transientError(new HttpStatusError(502, "bad gateway")), {});
  assert.deepEqual(transientError(new HttpStatusError(429, "slow down", 1000)), { afterMs: 1000 });
  assert.equal(transientError(new HttpStatusError(403, "forbidden")), false);
  assert.equal(transientError(new DOMException("aborted", "AbortError")), false);
  assert.equal(transientError(new Error("a bug")), false);
  assert.deepEqual(transientError(Object.assign(new Error("reset"), { code: "ECONNRESET" })), {});
});

Deno.test("backoffDelay() doubles up to the cap, with jitter in the upper half", () => {
  assert.deepEqual([1, 2, 3, 4, 10].map((n) => backoffDelay(n, 100, 1000, () => 0)), [
    50,
    100,
    200,
    400,
    500,
  ]);
  assert.equal(backoffDelay(10, 100, 1000, () => 0.999), 1000);
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates", () => {
  assert.equal(parseRetryAfter("2"), 2000);
  assert.equal(parseRetryAfter(undefined), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
  const now = Date.parse("2025-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Wed, 01 Jan 2025 00:00:05 GMT", now), 5000);
});
