import { assert, assertEquals } from "./testdata/assert.ts";
import { isLabelValue, labelValue, podName } from "./pod_name.ts";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A small seeded PRNG (mulberry32) so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = [..."abcXYZ019-_./ $`'\"\n\t;*✓é日", "\u{1F600}", "\u0000", "-", "."];

function randomId(next: () => number): string {
  const length = Math.floor(next() * 120);
  let id = "";
  for (let i = 0; i < length; i++) id += ALPHABET[Math.floor(next() * ALPHABET.length)];
  return id;
}

Deno.test("podName() keeps a simple id readable", () => {
  assertEquals(podName("0f3a-77"), "task-0f3a-77");
});

Deno.test("podName() gives a valid DNS-1123 label of at most 63 characters for any id", () => {
  const next = random(20240611);
  const ids = ["", "-", "UPPER", "a".repeat(58), "a".repeat(59), "x".repeat(500), "ends-", "✓"];
  for (let i = 0; i < 5000; i++) ids.push(randomId(next));
  const names = new Map<string, string>();
  for (const id of ids) {
    const name = podName(id);
    assert(DNS_LABEL.test(name), `invalid name ${JSON.stringify(name)} for ${JSON.stringify(id)}`);
    assert(name.length <= 63, `too long: ${name}`);
    assert(name.startsWith("task-"));
    assertEquals(podName(id), name, "names must be deterministic");
    const other = names.get(name);
    assert(other === undefined || other === id, `${JSON.stringify(id)} and ${other} collide`);
    names.set(name, id);
  }
});

Deno.test("podName() tells apart ids that differ only in case or punctuation", () => {
  assert(podName("ABC") !== podName("abc"));
  assert(podName("a_b") !== podName("a.b"));
  assert(podName("x".repeat(100) + "1") !== podName("x".repeat(100) + "2"));
});

Deno.test("labelValue() gives a valid label value for any string", () => {
  const next = random(7);
  const values = ["", "abc", "A.b_c-9", "-x", "x-", "y".repeat(64), "✓"];
  for (let i = 0; i < 5000; i++) values.push(randomId(next));
  for (const value of values) {
    const label = labelValue(value);
    assert(
      isLabelValue(label),
      `invalid label ${JSON.stringify(label)} for ${JSON.stringify(value)}`,
    );
    if (isLabelValue(value)) assertEquals(label, value);
  }
});
