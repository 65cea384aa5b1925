import assert from "node:assert/strict";
import { decodeUtf8Tail, readTail } from "./tail.ts";

async function withFile(content: Uint8Array, body: (path: string) => Promise<void>) {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, content);
    await body(path);
  } finally {
    await Deno.remove(path);
  }
}

const encode = (text: string) => new TextEncoder().encode(text);

Deno.test("readTail() returns a small file whole", async () => {
  await withFile(encode("hello\nworld\n"), async (path) => {
    assert.equal(await readTail(path, 1000), "hello\nworld\n");
  });
});

Deno.test("readTail() returns the last bytes of a file", async () => {
  await withFile(encode("0123456789"), async (path) => {
    assert.equal(await readTail(path, 4), "6789");
    assert.equal(await readTail(path, 10), "0123456789");
    assert.equal(await readTail(path, 0), "");
  });
});

Deno.test("readTail() returns an empty string for a missing or empty file", async () => {
  assert.equal(await readTail("/nonexistent/planetary/tail", 10), "");
  await withFile(new Uint8Array(), async (path) => {
    assert.equal(await readTail(path, 10), "");
  });
});

Deno.test("readTail() cuts at a UTF-8 boundary", async () => {
  // "é" = c3 a9 (2 bytes), "€" = e2 82 ac (3 bytes), "😀" = f0 9f 98 80 (4 bytes)
  await withFile(encode("a😀b€é"), async (path) => {
    // last 2 bytes = é whole
    assert.equal(await readTail(path, 2), "é");
    // last 3 bytes start inside € (ac) → dropped
    assert.equal(await readTail(path, 3), "é");
    assert.equal(await readTail(path, 5), "€é");
    // start inside 😀 (2 of its 4 bytes remain)
    assert.equal(await readTail(path, 8), "b€é");
    assert.equal(await readTail(path, 10), "😀b€é");
  });
});

Deno.test("readTail() reads only the end of a big file", async () => {
  const path = await Deno.makeTempFile();
  try {
    const file = await Deno.open(path, { write: true });
    // 64 MiB sparse hole then a marker: the tail must be exactly the marker's end
    await file.truncate(64 * 1024 * 1024);
    await file.seek(0, Deno.SeekMode.End);
    await file.write(encode("THE END ✓"));
    file.close();
    assert.equal(await readTail(path, 9), "E END ✓"); // ✓ is 3 bytes
    const tail = await readTail(path, 4096);
    assert.equal(tail.length, 4096 - encode("THE END ✓").length + "THE END ✓".length);
    assert.ok(tail.endsWith("THE END ✓"));
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("decodeUtf8Tail() drops an incomplete character at the end", () => {
  const bytes = encode("ab€");
  assert.equal(decodeUtf8Tail(bytes.subarray(0, 4), false), "ab");
  assert.equal(decodeUtf8Tail(bytes, false), "ab€");
});

Deno.test("readTail() does not follow a symbolic link an executor put in place of its log", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/secret`, "root:hash:19000::::::\n");
    await Deno.symlink(`${dir}/secret`, `${dir}/exec-0.stdout`);
    assert.equal(await readTail(`${dir}/exec-0.stdout`, 1000), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
