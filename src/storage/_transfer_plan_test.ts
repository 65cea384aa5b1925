import assert from "node:assert/strict";
import {
  DEFAULT_RANGED_READ_THRESHOLD,
  parseRangedReadMib,
  partPlan,
  TRANSFER_BUFFER_BUDGET,
} from "./_transfer_plan.ts";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

Deno.test("partPlan() keeps (concurrency + 1) × partSize within the budget for every size", () => {
  for (const maxParts of [10_000, 50_000]) {
    for (const size of [0, 1, 5 * MIB, 64 * MIB, GIB, 100 * GIB, 5 * 1024 * GIB]) {
      const { partSize, concurrency } = partPlan(size, { maxParts });
      assert.ok(concurrency >= 1);
      assert.ok(Math.ceil(size / partSize) <= maxParts, `${size} B fits in ${maxParts} parts`);
      if (partSize * 2 <= TRANSFER_BUFFER_BUDGET) {
        assert.ok((concurrency + 1) * partSize <= TRANSFER_BUFFER_BUDGET, `${size} B`);
      } else {
        assert.equal(concurrency, 1, "parts above half the budget go one at a time");
      }
    }
  }
});

Deno.test("partPlan() picks 8 MiB parts, 3 in flight, for 1 GiB; larger parts when huge", () => {
  assert.deepEqual(partPlan(GIB, { maxParts: 10_000 }), { partSize: 8 * MIB, concurrency: 3 });
  assert.deepEqual(partPlan(4 * MIB, { maxParts: 10_000 }), { partSize: 8 * MIB, concurrency: 1 });
  assert.deepEqual(partPlan(100 * GIB, { maxParts: 10_000 }), {
    partSize: 11 * MIB,
    concurrency: 1,
  });
  assert.deepEqual(partPlan(undefined, { maxParts: 10_000 }), {
    partSize: 16 * MIB,
    concurrency: 1,
  });
  assert.deepEqual(partPlan(GIB, { maxParts: 50_000, budget: 64 * MIB }), {
    partSize: 8 * MIB,
    concurrency: 4,
  });
});

Deno.test("parseRangedReadMib() reads MiB, off, and falls back to the default", () => {
  assert.equal(parseRangedReadMib(undefined), undefined);
  assert.equal(parseRangedReadMib(""), undefined);
  assert.equal(parseRangedReadMib("0"), 0);
  assert.equal(parseRangedReadMib("128"), 128 * MIB);
  assert.equal(parseRangedReadMib("off"), Infinity);
  assert.equal(parseRangedReadMib("nonsense"), undefined);
  assert.equal(parseRangedReadMib("-1"), undefined);
  assert.ok(DEFAULT_RANGED_READ_THRESHOLD >= 64 * MIB);
});

Deno.test("partPlan() takes an explicit concurrency as is, bounded by the number of parts", () => {
  assert.equal(partPlan(GIB, { maxParts: 10_000, concurrency: 8 }).concurrency, 8);
  assert.equal(partPlan(10 * MIB, { maxParts: 10_000, concurrency: 8 }).concurrency, 2);
});
