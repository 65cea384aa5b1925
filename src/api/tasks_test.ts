import assert from "node:assert/strict";
import { DEFAULT_PAGE_SIZE, parseListQuery } from "./tasks.ts";
import { HttpError } from "./errors.ts";

const q = (query: string) => parseListQuery(new URLSearchParams(query));

Deno.test("parseListQuery() defaults to MINIMAL and 256 per page", () => {
  assert.deepEqual(q(""), { pageSize: DEFAULT_PAGE_SIZE, view: "MINIMAL" });
});

Deno.test("parseListQuery() zips tag_key and tag_value, missing values meaning any value", () => {
  assert.deepEqual(
    q("tag_key=a&tag_value=1&tag_key=b&tag_key=c&tag_value=&tag_value=3&tag_value=extra").tags,
    { a: "1", b: "", c: "3" },
  );
});

Deno.test("parseListQuery() reads every filter", () => {
  assert.deepEqual(q("name_prefix=run-&state=RUNNING&page_size=2047&page_token=t&view=basic"), {
    pageSize: 2047,
    view: "BASIC",
    namePrefix: "run-",
    state: "RUNNING",
    pageToken: "t",
  });
});

Deno.test("parseListQuery() refuses bad values with a 400 naming the parameter", () => {
  for (
    const [query, name] of [
      ["page_size=0", "page_size"],
      ["page_size=2048", "page_size"],
      ["page_size=1e3", "page_size"],
      ["page_size=%201", "page_size"],
      ["state=done", "state"],
      ["view=ALL", "view"],
      ["tag_key=", "tag_key"],
    ]
  ) {
    assert.throws(() => q(query!), (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.status, 400);
      assert.ok(error.message.startsWith(`${name}:`), error.message);
      return true;
    });
  }
});

Deno.test("parseListQuery() refuses a NUL or an over-long filter with a 400 naming it", () => {
  const long = "x".repeat(10 * 1024);
  for (
    const [query, name] of [
      ["name_prefix=%00", "name_prefix"],
      [`name_prefix=${long}`, "name_prefix"],
      ["tag_key=a%00b", "tag_key"],
      [`tag_key=${long}`, "tag_key"],
      ["tag_key=a&tag_value=%00", "tag_value"],
      [`tag_key=a&tag_value=${long}`, "tag_value"],
      ["page_token=%00", "page_token"],
      [`page_token=${long}`, "page_token"],
      ["view=%00", "view"],
      [`view=${long}`, "view"],
      ["state=%00", "state"],
      [`state=${long}`, "state"],
    ]
  ) {
    assert.throws(() => q(query!), (error: unknown) => {
      assert.ok(error instanceof HttpError, String(error));
      assert.equal(error.status, 400);
      assert.ok(error.message.startsWith(`${name}:`), error.message);
      assert.ok(error.message.length < 300, "the message does not echo the whole value");
      return true;
    });
  }
});

Deno.test("parseListQuery() keeps a tag_key named __proto__ as a filter", () => {
  assert.deepEqual(Object.entries(q("tag_key=__proto__&tag_value=x").tags ?? {}), [[
    "__proto__",
    "x",
  ]]);
});
