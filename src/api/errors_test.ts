import assert from "node:assert/strict";
import { HttpError, isStoreUnavailable, toHttpError } from "./errors.ts";
import { InvalidPageTokenError, TaskNotFoundError } from "../store/task_store.ts";

Deno.test("toHttpError() maps store errors to 404 and 400 with their message", () => {
  const notFound = toHttpError(new TaskNotFoundError("abc"));
  assert.equal(notFound.error.status, 404);
  assert.equal(notFound.error.message, 'Task "abc" not found');
  assert.equal(notFound.unexpected, false);
  const token = toHttpError(new InvalidPageTokenError());
  assert.equal(token.error.status, 400);
  assert.match(token.error.message, /^page_token/);
});

Deno.test("toHttpError() hides unknown errors behind a 500 and marks them for logging", () => {
  const { error, unexpected } = toHttpError(new Error("relation tasks does not exist at /secret"));
  assert.equal(error.status, 500);
  assert.equal(error.message, "Internal server error");
  assert.equal(unexpected, true);
  assert.equal(toHttpError("a string").error.status, 500);
});

Deno.test("toHttpError() answers 503 when the database cannot be reached", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), {
    code: "ECONNREFUSED",
  });
  const wrapped = new Error("query failed", { cause: refused });
  const { error } = toHttpError(wrapped);
  assert.equal(error.status, 503);
  assert.doesNotMatch(error.message, /127\.0\.0\.1/);
});

Deno.test("isStoreUnavailable() follows causes and ignores ordinary errors", () => {
  assert.equal(isStoreUnavailable(new Deno.errors.ConnectionRefused("x")), true);
  assert.equal(
    isStoreUnavailable(new Error("a", { cause: Object.assign(new Error("b"), { code: "57P01" }) })),
    true,
  );
  assert.equal(isStoreUnavailable(Object.assign(new Error("dup"), { code: "23505" })), false);
  assert.equal(isStoreUnavailable(undefined), false);
});

Deno.test("HttpError() keeps its status, code and headers", () => {
  const error = new HttpError(405, "nope", { headers: { allow: "GET" } });
  assert.equal(error.code, "METHOD_NOT_ALLOWED");
  assert.deepEqual(error.headers, { allow: "GET" });
  assert.equal(error.name, "HttpError");
});
