import assert from "node:assert/strict";
import { expandVariables, pendingPodStatus } from "./pod_runner.ts";

Deno.test("expandVariables() substitutes defined $(VAR) and unescapes $$", () => {
  const vars = new Map([["A", "1"], ["B", "$(A)"]]);
  assert.equal(expandVariables("x$(A)y", vars), "x1y");
  assert.equal(expandVariables("$(B)", vars), "$(A)");
  assert.equal(expandVariables("$$(A)", vars), "$(A)");
  assert.equal(expandVariables("$(MISSING) $() $(A", vars), "$(MISSING) $() $(A");
  assert.equal(expandVariables("$HOME `id` $", vars), "$HOME `id` $");
});

Deno.test("pendingPodStatus() marks a pod waiting for a slot as unschedulable", () => {
  const now = new Date(0);
  assert.equal(pendingPodStatus(now).conditions?.[0]?.status, "True");
  const waiting = pendingPodStatus(now, "no slot");
  assert.equal(waiting.phase, "Pending");
  assert.deepEqual(waiting.conditions?.[0], {
    type: "PodScheduled",
    status: "False",
    reason: "Unschedulable",
    message: "no slot",
    lastTransitionTime: now,
  });
});
