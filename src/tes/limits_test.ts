import { equal } from "node:assert/strict";
import { checkQueryString, TES_STRING_LIMITS, utf8Length } from "./limits.ts";

Deno.test("checkQueryString() accepts a value within the limit", () => {
  equal(checkQueryString("run-", "name_prefix", TES_STRING_LIMITS.name), undefined);
  equal(checkQueryString("", "tag_value", TES_STRING_LIMITS.tagValue), undefined);
  equal(checkQueryString("a".repeat(256), "id", TES_STRING_LIMITS.taskId), undefined);
});

Deno.test("checkQueryString() refuses a NUL character, naming the field", () => {
  equal(
    checkQueryString("a\u0000b", "tag_key", TES_STRING_LIMITS.tagKey),
    "tag_key: must not contain NUL bytes",
  );
});

Deno.test("checkQueryString() refuses a value over the limit in UTF-8 bytes", () => {
  equal(checkQueryString("a".repeat(257), "id", 256), "id: too long: 257 bytes (at most 256)");
  // 129 "é" are 258 UTF-8 bytes.
  equal(
    checkQueryString("é".repeat(129), "tag_key", 256),
    "tag_key: too long: 258 bytes (at most 256)",
  );
  equal(checkQueryString("é".repeat(128), "tag_key", 256), undefined);
});

Deno.test("utf8Length() counts UTF-8 bytes when the value may exceed the limit", () => {
  equal(utf8Length("éé", 3), 4);
  equal(utf8Length("😀", 3), 4);
  equal(utf8Length("abc", 3), 3);
});
