import assert from "node:assert/strict";
import { isTaskId, newTaskId, TASK_ID_PATTERN } from "./task_id.ts";

Deno.test("newTaskId() makes DNS-1123 labels that never repeat", () => {
  const ids = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const id = newTaskId();
    assert.match(id, TASK_ID_PATTERN);
    assert.match(id, /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/);
    ids.add(id);
  }
  assert.equal(ids.size, 10_000);
});

Deno.test("newTaskId() uses every base32 character", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) for (const c of newTaskId().slice(1)) seen.add(c);
  assert.equal(seen.size, 32);
});

Deno.test("isTaskId() rejects other shapes", () => {
  assert.equal(isTaskId(newTaskId()), true);
  for (const bad of ["", "abc", "2" + "a".repeat(25), "A".repeat(26), "a".repeat(27), "../x"]) {
    assert.equal(isTaskId(bad), false, bad);
  }
});
