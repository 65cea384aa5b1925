import assert from "node:assert/strict";
import { expandWildcard, hasWildcard, literalPrefix, matchWildcard } from "./wildcard.ts";

Deno.test("matchWildcard() matches * ? and literals like fnmatch", () => {
  const cases: [string, string, boolean][] = [
    ["*.txt", "a.txt", true],
    ["*.txt", ".txt", false], // leading period must be explicit
    ["*.txt", "a.txt.gz", false],
    ["*", "", true],
    ["a*b*c", "aXXbYYc", true],
    ["a*b*c", "aXXbYY", false],
    ["?", "a", true],
    ["?", "", false],
    ["?", "é", true], // one character, not one byte
    ["??", "é", false],
    ["file", "file", true],
    ["file", "File", false],
    ["a.c", "abc", false], // "." is not a regex dot
    ["(x)+", "(x)+", true], // regex metacharacters are literal
  ];
  for (const [pattern, name, expected] of cases) {
    assert.equal(matchWildcard(pattern, name), expected, `${pattern} vs ${name}`);
  }
});

Deno.test("matchWildcard() handles bracket expressions", () => {
  const cases: [string, string, boolean][] = [
    ["[abc]", "b", true],
    ["[abc]", "d", false],
    ["[a-c]x", "bx", true],
    ["[a-c]x", "dx", false],
    ["[!a-c]x", "dx", true],
    ["[!a-c]x", "ax", false],
    ["[^a-c]x", "dx", true],
    ["[]]", "]", true],
    ["[!]]", "]", false],
    ["[!]]", "a", true],
    ["[a-]", "-", true],
    ["[[:digit:]]*", "7up", true],
    ["[[:digit:]]*", "up", false],
    ["[[:alpha:][:digit:]]", "Q", true],
    ["[[:upper:]]", "q", false],
    ["[[:space:]]", " ", true],
    ["[z-a]", "m", false], // reversed range matches nothing
    ["[\\]]", "]", true],
    ["a[", "a[", true], // unterminated bracket is literal
    ["[[:bogus:]]", "b", false],
    ["[.]x", ".x", false], // a bracket never matches a leading period
    ["[!a]x", ".x", false],
    [".[!.]*", ".a", true],
    [".*", ".hidden", true],
    [".*", "visible", false],
  ];
  for (const [pattern, name, expected] of cases) {
    assert.equal(matchWildcard(pattern, name), expected, `${pattern} vs ${name}`);
  }
});

Deno.test("matchWildcard() treats backslash as a quote", () => {
  assert.equal(matchWildcard("\\*", "*"), true);
  assert.equal(matchWildcard("\\*", "a"), false);
  assert.equal(matchWildcard("a\\?", "a?"), true);
  assert.equal(matchWildcard("a\\?", "ab"), false);
});

Deno.test("matchWildcard() never matches a slash", () => {
  assert.equal(matchWildcard("*", "a/b"), false);
  assert.equal(matchWildcard("a?b", "a/b"), false);
  assert.equal(matchWildcard("a[!x]b", "a/b"), false);
  assert.equal(matchWildcard("a[[:punct:]]b", "a/b"), false);
});

Deno.test("hasWildcard() detects only unquoted, well-formed wildcards", () => {
  assert.equal(hasWildcard("/out/*.txt"), true);
  assert.equal(hasWildcard("/out/a?"), true);
  assert.equal(hasWildcard("/out/[ab]"), true);
  assert.equal(hasWildcard("/out/a[1"), false);
  assert.equal(hasWildcard("/out/\\*"), false);
  assert.equal(hasWildcard("/out/plain.txt"), false);
});

Deno.test("literalPrefix() stops at the first wildcard segment", () => {
  assert.equal(literalPrefix("/out/*.txt"), "/out");
  assert.equal(literalPrefix("/out/run-*/x.txt"), "/out");
  assert.equal(literalPrefix("/*"), "/");
  assert.equal(literalPrefix("/a/b/c?"), "/a/b");
});

Deno.test("expandWildcard() walks directories, skips hidden files and sorts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const path of ["run-1/x.txt", "run-2/x.txt", "run-2/y.log", ".run-3/x.txt"]) {
      await Deno.mkdir(`${dir}/${path.split("/")[0]}`, { recursive: true });
      await Deno.writeTextFile(`${dir}/${path}`, path);
    }
    await Deno.writeTextFile(`${dir}/run-1/.x.txt`, "hidden");
    assert.deepEqual(await expandWildcard(`${dir}/run-*/*.txt`), [
      `${dir}/run-1/x.txt`,
      `${dir}/run-2/x.txt`,
    ]);
    assert.deepEqual(await expandWildcard(`${dir}/.run-?/x.txt`), [`${dir}/.run-3/x.txt`]);
    assert.deepEqual(await expandWildcard(`${dir}/run-[!1]`), [`${dir}/run-2`]);
    assert.deepEqual(await expandWildcard(`${dir}/nothing-*`), []);
    assert.deepEqual(await expandWildcard(`${dir}/run-*/missing.txt`), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
