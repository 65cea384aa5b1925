/**
 * The chart's values documentation: README.md is generated from values.schema.json and is
 * current, and the schema's defaults are exactly values.yaml.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import {
  CHART_DIR,
  currentValuesDoc,
  type SchemaNode,
  valueDocs,
} from "../k8s/tools/values_doc.ts";

async function schema(): Promise<SchemaNode> {
  return JSON.parse(await Deno.readTextFile(new URL("values.schema.json", CHART_DIR)));
}

/** Leaves of values.yaml, by dotted key, descending into maps the schema describes by keys. */
function leaves(values: unknown, node: SchemaNode, prefix = ""): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (node.properties && !node.$ref && values && typeof values === "object") {
    for (const [key, value] of Object.entries(values)) {
      const child = node.properties[key];
      const path = prefix ? `${prefix}.${key}` : key;
      if (!child) {
        out.set(path, value);
        continue;
      }
      for (const [k, v] of leaves(value, child, path)) out.set(k, v);
    }
    return out;
  }
  out.set(prefix, values);
  return out;
}

Deno.test("renderValuesDoc() matches k8s/chart/planetary/README.md (run `deno task values-doc`)", async () => {
  const onDisk = await Deno.readTextFile(new URL("README.md", CHART_DIR));
  assert.ok(onDisk === await currentValuesDoc(), "README.md is stale: run deno task values-doc");
});

Deno.test("valueDocs() documents every value of values.yaml with its default", async () => {
  const root = await schema();
  const values = parseYaml(await Deno.readTextFile(new URL("values.yaml", CHART_DIR)));
  const docs = new Map(valueDocs(root).map((d) => [d.key, d]));
  const fromValues = leaves(values, root);
  assert.deepEqual([...fromValues.keys()].sort(), [...docs.keys()].sort());
  for (const [key, value] of fromValues) {
    const doc = docs.get(key)!;
    assert.deepEqual(doc.default, value, `schema default of ${key} equals values.yaml`);
    assert.ok(doc.description.length > 3, `${key} has a description`);
  }
});

Deno.test("valueDocs() lists nested leaves with their types and allowed values", () => {
  const docs = valueDocs({
    definitions: { r: { type: "object" } },
    properties: {
      a: { properties: { b: { type: "integer", default: 1, description: "B." } } },
      c: { $ref: "#/definitions/r", default: {}, description: "C." },
      d: { type: "string", enum: ["x", "y"], default: "x", description: "D." },
    },
  });
  assert.deepEqual(docs, [
    { key: "a.b", type: "integer", default: 1, description: "B." },
    { key: "c", type: "object", default: {}, description: "C." },
    { key: "d", type: "string", default: "x", description: "D. One of `x`, `y`." },
  ]);
});
