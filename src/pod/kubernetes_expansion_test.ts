import { assertEquals } from "./testdata/assert.ts";
import { escapeKubernetesReferences, expandKubernetesReferences } from "./kubernetes_expansion.ts";

const env: Record<string, string> = { A: "alpha", B: "" };
const lookup = (name: string) => env[name];

Deno.test("expandKubernetesReferences() follows the kubelet's rules", () => {
  const cases: [string, string][] = [
    ["$(A)", "alpha"],
    ["x$(A)y", "xalphay"],
    ["$(B)", ""],
    ["$(C)", "$(C)"],
    ["$$(A)", "$(A)"],
    ["$$$(A)", "$alpha"],
    ["$$", "$"],
    ["$", "$"],
    ["a$", "a$"],
    ["$A", "$A"],
    ["$(A", "$(A"],
    ["${A}", "${A}"],
    ["$✓", "$✓"],
  ];
  for (const [input, want] of cases) {
    assertEquals(expandKubernetesReferences(input, lookup), want, input);
  }
});

Deno.test("escapeKubernetesReferences() survives expansion unchanged", () => {
  const samples = ["", "$", "$$", "$(A)", "$$(A)", "a$(A)$b$", "$(", "$)", "✓$(A)✓", "$\n$(B)"];
  for (const sample of samples) {
    assertEquals(expandKubernetesReferences(escapeKubernetesReferences(sample), lookup), sample);
  }
});
