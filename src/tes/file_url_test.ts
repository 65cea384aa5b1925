import { deepStrictEqual, equal } from "node:assert/strict";
import {
  filePathFromUrl,
  fileUrlFromPath,
  isInsideFolders,
  normalizeAbsolutePath,
} from "./file_url.ts";

/** How `src/storage/file/file_storage.ts` turns a `file://` URL path into a host path. */
function adapterPath(url: string): string {
  const path = /^file:\/\/[^/?#]*(\/[^?#]*)?/i.exec(url)?.[1] ?? "/";
  const joined = path.split("/").map(decodeURIComponent).join("/").replace(/\/+/g, "/");
  return joined.length > 1 ? joined.replace(/\/$/, "") : joined;
}

Deno.test("normalizeAbsolutePath() drops empty and . segments", () => {
  deepStrictEqual(normalizeAbsolutePath("/a//b/./c/"), { ok: true, value: "/a/b/c" });
  deepStrictEqual(normalizeAbsolutePath("//"), { ok: true, value: "/" });
  deepStrictEqual(normalizeAbsolutePath("/."), { ok: true, value: "/" });
});

Deno.test("normalizeAbsolutePath() refuses relative paths and .. segments", () => {
  equal(normalizeAbsolutePath("a/b").ok, false);
  equal(normalizeAbsolutePath("").ok, false);
  equal(normalizeAbsolutePath("/a/../b").ok, false);
  equal(normalizeAbsolutePath("/a/..").ok, false);
});

Deno.test("fileUrlFromPath() round-trips awkward paths through the file adapter's decoding", () => {
  for (
    const path of [
      "/data/plain.txt",
      "/data/with space/a b",
      "/data/100%/%41",
      "/data/#hash/?query&x=1",
      "/données/日本/😀",
      "/a+b/c;d/e=f/g@h/i:j/k,l/'m'/(n)",
      "/tab\there/new\nline",
    ]
  ) {
    const url = fileUrlFromPath(path);
    if (!url.ok) throw new Error(url.message);
    equal(adapterPath(url.value), path, url.value);
    deepStrictEqual(filePathFromUrl(url.value), { ok: true, value: path });
  }
});

Deno.test("fileUrlFromPath() keeps a trailing slash and drops . and empty segments", () => {
  deepStrictEqual(fileUrlFromPath("/data//out/./"), { ok: true, value: "file:///data/out/" });
  deepStrictEqual(fileUrlFromPath("/"), { ok: true, value: "file:///" });
});

Deno.test("fileUrlFromPath() refuses .. segments and relative paths", () => {
  equal(fileUrlFromPath("/data/../etc").ok, false);
  equal(fileUrlFromPath("data/x").ok, false);
});

Deno.test("filePathFromUrl() accepts an empty or localhost host", () => {
  deepStrictEqual(filePathFromUrl("file:///a/b"), { ok: true, value: "/a/b" });
  deepStrictEqual(filePathFromUrl("file://LOCALHOST/a//b/"), { ok: true, value: "/a/b" });
  deepStrictEqual(filePathFromUrl("file://"), { ok: true, value: "/" });
});

Deno.test("filePathFromUrl() refuses what the file adapter refuses", () => {
  for (
    const url of [
      "file://server/share",
      "file:/single/slash",
      "file:///a/../b",
      "file:///a/%2E%2E/b",
      "file:///a/./b",
      "file:///a/%2Fb",
      "file:///a/%00b",
      "file:///a/%zz",
      "file:///a?b",
      "file:///a#b",
    ]
  ) {
    equal(filePathFromUrl(url).ok, false, url);
  }
});

Deno.test("isInsideFolders() respects folder boundaries", () => {
  equal(isInsideFolders("/tmp", ["/tmp"]), true);
  equal(isInsideFolders("/tmp/x", ["/tmp"]), true);
  equal(isInsideFolders("/tmp/x", ["/tmp/"]), true);
  equal(isInsideFolders("/tmp/x", ["//tmp/./"]), true);
  equal(isInsideFolders("/tmpx", ["/tmp"]), false);
  equal(isInsideFolders("/", ["/tmp"]), false);
  equal(isInsideFolders("/anything", ["/"]), true);
  equal(isInsideFolders("/tmp/x", []), false);
});

Deno.test("isInsideFolders() ignores relative folders and folders with ..", () => {
  equal(isInsideFolders("/tmp/x", ["tmp"]), false);
  equal(isInsideFolders("/tmp/x", ["/data/../tmp"]), false);
});
