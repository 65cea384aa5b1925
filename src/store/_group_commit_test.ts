/**
 * Tests of the group committer: batches form only while earlier ones are in flight, stay
 * within `maxBatch`, answer each caller only after its batch was written, and a bad item
 * fails alone.
 */
import assert from "node:assert/strict";
import { GroupCommitter } from "./_group_commit.ts";

/** A batch writer whose batches finish when the test says so. */
function controlledWriter() {
  const batches: { items: number[]; finish: (error?: Error) => void }[] = [];
  const write = (items: readonly number[]): Promise<string[]> => {
    const { promise, resolve, reject } = Promise.withResolvers<string[]>();
    batches.push({
      items: [...items],
      finish: (error) => error ? reject(error) : resolve(items.map((i) => `r${i}`)),
    });
    return promise;
  };
  return { batches, write };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("an item on an idle committer is written at once, alone", async () => {
  const { batches, write } = controlledWriter();
  const committer = new GroupCommitter(write);
  const result = committer.add(1);
  assert.deepEqual(batches.map((b) => b.items), [[1]]);
  batches[0]!.finish();
  assert.equal(await result, "r1");
});

Deno.test("items arriving while batches are in flight go together in the next batch", async () => {
  const { batches, write } = controlledWriter();
  const committer = new GroupCommitter(write, { maxInFlight: 2, maxBatch: 3 });
  const answered: number[] = [];
  const results = Array.from({ length: 9 }, (_, i) =>
    committer.add(i).then((r) => {
      answered.push(i);
      return r;
    }));
  // two in flight (one item each), the other seven wait
  assert.deepEqual(batches.map((b) => b.items), [[0], [1]]);
  await tick();
  assert.deepEqual(answered, [], "nobody is answered before its batch is written");
  batches[0]!.finish();
  await tick();
  assert.deepEqual(batches.map((b) => b.items), [[0], [1], [2, 3, 4]]);
  assert.deepEqual(answered, [0]);
  batches[1]!.finish();
  await tick();
  assert.deepEqual(batches.map((b) => b.items).slice(3), [[5, 6, 7]]);
  batches[2]!.finish();
  await tick();
  assert.deepEqual(batches.map((b) => b.items).slice(4), [[8]]);
  batches[3]!.finish();
  batches[4]!.finish();
  assert.deepEqual(await Promise.all(results), Array.from({ length: 9 }, (_, i) => `r${i}`));
});

Deno.test("a failed batch is written again item by item: only the bad item fails", async () => {
  const writes: number[][] = [];
  const committer = new GroupCommitter<number, string>(
    (items) => {
      writes.push([...items]);
      return items.includes(13) ? Promise.reject(new Error("13 refused")) : Promise.resolve(
        items.map((i) => `r${i}`),
      );
    },
    { maxInFlight: 1 },
  );
  const settled = await Promise.allSettled([11, 12, 13, 14].map((i) => committer.add(i)));
  assert.deepEqual(settled.map((r) => r.status === "fulfilled" ? r.value : "rejected"), [
    "r11",
    "r12",
    "rejected",
    "r14",
  ]);
  const reason = (settled[2] as PromiseRejectedResult).reason as Error;
  assert.equal(reason.message, "13 refused");
  // [11] alone (idle), then [12, 13, 14] together, which failed and was split
  assert.deepEqual(writes, [[11], [12, 13, 14], [12], [13], [14]]);
});

Deno.test("a writer that answers the wrong number of results fails its callers", async () => {
  const committer = new GroupCommitter<number, string>(() => Promise.resolve([]));
  await assert.rejects(committer.add(1), /returned 0 results for 1/);
});

Deno.test("maxInFlight and maxBatch below 1 are refused", () => {
  const write = () => Promise.resolve([]);
  assert.throws(() => new GroupCommitter(write, { maxInFlight: 0 }), RangeError);
  assert.throws(() => new GroupCommitter(write, { maxBatch: 0 }), RangeError);
});
