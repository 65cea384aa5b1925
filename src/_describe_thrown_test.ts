import assert from "node:assert/strict";
import { describeThrown } from "./_describe_thrown.ts";

Deno.test("describeThrown() renders an Error's message and its chain of causes", () => {
  const inner = new Error("ECONNREFUSED 127.0.0.1:5432");
  const middle = new Error("cannot connect to PostgreSQL", { cause: inner });
  assert.equal(
    describeThrown(new Error("cannot open the task store", { cause: middle })),
    "cannot open the task store: cannot connect to PostgreSQL: ECONNREFUSED 127.0.0.1:5432",
  );
  // A cause the message already quotes is not repeated.
  assert.equal(
    describeThrown(new Error("failed: boom", { cause: new Error("boom") })),
    "failed: boom",
  );
  assert.equal(describeThrown(new TypeError("")), "TypeError");
  assert.equal(describeThrown(new Error("outer", { cause: { status: 1 } })), "outer: {status: 1}");
});

Deno.test("describeThrown() renders objects with their fields, never [object Object]", () => {
  // What PGlite throws when its initdb exits (Emscripten's ExitStatus, not an Error).
  class ExitStatus {
    name = "ExitStatus";
    message = "Program terminated with exit(1)";
    constructor(public status: number) {}
  }
  assert.equal(
    describeThrown(new ExitStatus(1)),
    "ExitStatus: Program terminated with exit(1) {status: 1}",
  );
  assert.equal(describeThrown({ status: 1 }), "{status: 1}");
  assert.equal(
    describeThrown({ code: "E", detail: { path: "/x" } }),
    '{code: "E", detail: {path: "/x"}}',
  );
  assert.equal(describeThrown(new (class Oops {})()), "Oops {}");
  assert.equal(describeThrown(Object.create(null)), "{}");
  const loop: Record<string, unknown> = { a: 1 };
  loop.self = loop;
  assert.equal(describeThrown(loop), "{a: 1, self: (circular)}");
  for (const value of [{}, { status: 1 }, new ExitStatus(2), [1], new Map()]) {
    assert.doesNotMatch(describeThrown(value), /\[object /);
  }
});

Deno.test("describeThrown() renders strings, numbers, null and the other primitives", () => {
  assert.equal(describeThrown("disk full"), "disk full");
  assert.equal(describeThrown(""), '""');
  assert.equal(describeThrown(42), "42");
  assert.equal(describeThrown(10n), "10n");
  assert.equal(describeThrown(null), "null");
  assert.equal(describeThrown(undefined), "undefined");
  assert.equal(describeThrown(Symbol("s")), "Symbol(s)");
  assert.equal(describeThrown(function named() {}), "function named");
});

Deno.test("describeThrown() survives values that throw when read, and caps the length", () => {
  const hostile = new Proxy({}, {
    ownKeys() {
      throw new Error("no");
    },
  });
  assert.match(describeThrown(hostile), /cannot be read/);
  assert.equal(describeThrown("x".repeat(5_000)).length, 2_000);
});
