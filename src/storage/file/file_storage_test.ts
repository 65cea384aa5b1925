import assert from "node:assert/strict";
import { FileStorage } from "./file_storage.ts";
import { StorageError, StorageNotFoundError, StoragePermissionError } from "../storage_error.ts";

const toUrl = (path: string) => `file://${path.split("/").map(encodeURIComponent).join("/")}`;

async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

function streamOf(text: string): ReadableStream<Uint8Array> {
  return new Response(text).body!;
}

async function withDirs(
  body: (allowed: string, outside: string, storage: FileStorage) => Promise<void>,
) {
  const root = await Deno.realPath(await Deno.makeTempDir());
  const allowed = `${root}/allowed`;
  const outside = `${root}/outside`;
  await Deno.mkdir(allowed);
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/secret.txt`, "secret");
  try {
    await body(allowed, outside, new FileStorage({ allowList: [allowed] }));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("FileStorage.write() then read() round-trips and creates parents", async () => {
  await withDirs(async (allowed, _outside, storage) => {
    const url = toUrl(`${allowed}/a/b c/file.txt`);
    assert.deepEqual(await storage.write(url, streamOf("héllo")), { size: 6 });
    assert.equal(await text(await storage.read(url)), "héllo");
    assert.deepEqual(await storage.stat(url), { size: 6, type: "file" });
    assert.deepEqual(await storage.stat(toUrl(`${allowed}/a`)), { size: 0, type: "directory" });
    assert.equal(await storage.stat(toUrl(`${allowed}/missing`)), undefined);
    // no temp files left behind
    const names = [];
    for await (const entry of Deno.readDir(`${allowed}/a/b c`)) names.push(entry.name);
    assert.deepEqual(names, ["file.txt"]);
  });
});

Deno.test("FileStorage.write() with a wrong size hint fails and leaves the target intact", async () => {
  await withDirs(async (allowed, _outside, storage) => {
    const url = toUrl(`${allowed}/f.txt`);
    await storage.write(url, streamOf("old"));
    await assert.rejects(storage.write(url, streamOf("new!"), { size: 10 }), StorageError);
    assert.equal(await Deno.readTextFile(`${allowed}/f.txt`), "old");
    const names = [];
    for await (const entry of Deno.readDir(allowed)) names.push(entry.name);
    assert.deepEqual(names, ["f.txt"]);
  });
});

Deno.test("FileStorage.read() of a missing file throws StorageNotFoundError", async () => {
  await withDirs(async (allowed, _outside, storage) => {
    await assert.rejects(storage.read(toUrl(`${allowed}/nope.txt`)), StorageNotFoundError);
  });
});

Deno.test("FileStorage refuses paths outside the allow-list", async () => {
  await withDirs(async (_allowed, outside, storage) => {
    const url = toUrl(`${outside}/secret.txt`);
    await assert.rejects(storage.read(url), StoragePermissionError);
    await assert.rejects(storage.stat(url), StoragePermissionError);
    await assert.rejects(storage.write(url, streamOf("x")), StoragePermissionError);
    assert.equal(await Deno.readTextFile(`${outside}/secret.txt`), "secret");
    await assert.rejects(storage.read("file:///etc/passwd"), StoragePermissionError);
    // prefix trick: /root/allowed-evil is not inside /root/allowed
    await assert.rejects(
      storage.stat(toUrl(`${outside.replace(/outside$/, "allowed-evil")}`)),
      StoragePermissionError,
    );
  });
});

Deno.test("FileStorage refuses '..' escapes, also percent-encoded", async () => {
  await withDirs(async (allowed, _outside, storage) => {
    for (
      const url of [
        `file://${allowed}/../outside/secret.txt`,
        `file://${allowed}/%2e%2e/outside/secret.txt`,
        `file://${allowed}/%2E%2E/outside/secret.txt`,
        `file://${allowed}/..%2Foutside/secret.txt`,
        `file://${allowed}/./x`,
      ]
    ) {
      await assert.rejects(storage.read(url), StoragePermissionError, url);
      await assert.rejects(storage.write(url, streamOf("x")), StoragePermissionError, url);
    }
    assert.equal(await Deno.readTextFile(`${allowed}/../outside/secret.txt`), "secret");
  });
});

Deno.test("FileStorage refuses symlinks leading out of the allow-list", async () => {
  await withDirs(async (allowed, outside, storage) => {
    await Deno.symlink(`${outside}/secret.txt`, `${allowed}/link.txt`);
    await Deno.symlink(outside, `${allowed}/linkdir`);
    await assert.rejects(storage.read(toUrl(`${allowed}/link.txt`)), StoragePermissionError);
    await assert.rejects(
      storage.read(toUrl(`${allowed}/linkdir/secret.txt`)),
      StoragePermissionError,
    );
    await assert.rejects(
      storage.write(toUrl(`${allowed}/linkdir/new.txt`), streamOf("x")),
      StoragePermissionError,
    );
    await assert.rejects(
      storage.write(toUrl(`${allowed}/link.txt`), streamOf("x")),
      StoragePermissionError,
    );
    await assert.rejects(Deno.stat(`${outside}/new.txt`), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(`${outside}/secret.txt`), "secret");
    // listing a directory holding an escaping symlink fails instead of copying the secret
    await assert.rejects(
      (async () => {
        for await (const _ of storage.list(toUrl(allowed))) { /* drain */ }
      })(),
      StoragePermissionError,
    );
  });
});

Deno.test("FileStorage follows symlinks that stay inside the allow-list", async () => {
  await withDirs(async (allowed, _outside, storage) => {
    await Deno.writeTextFile(`${allowed}/real.txt`, "inside");
    await Deno.symlink(`${allowed}/real.txt`, `${allowed}/link.txt`);
    assert.equal(await text(await storage.read(toUrl(`${allowed}/link.txt`))), "inside");
  });
});

Deno.test("FileStorage.list() yields every file with relative paths", async () => {
  await withDirs(async (allowed, _outside, storage) => {
    await Deno.mkdir(`${allowed}/d/sub`, { recursive: true });
    await Deno.writeTextFile(`${allowed}/d/a.txt`, "a");
    await Deno.writeTextFile(`${allowed}/d/sub/b.txt`, "bb");
    await Deno.writeTextFile(`${allowed}/d/.hidden`, "ccc");
    const entries = [];
    for await (const entry of storage.list(toUrl(`${allowed}/d`))) entries.push(entry);
    entries.sort((a, b) => a.relativePath.localeCompare(b.relativePath));
    assert.deepEqual(entries, [
      { url: toUrl(`${allowed}/d/.hidden`), relativePath: ".hidden", size: 3 },
      { url: toUrl(`${allowed}/d/a.txt`), relativePath: "a.txt", size: 1 },
      { url: toUrl(`${allowed}/d/sub/b.txt`), relativePath: "sub/b.txt", size: 2 },
    ]);
    for (const entry of entries) await (await storage.read(entry.url)).cancel();
  });
});

Deno.test("FileStorage with an empty allow-list refuses everything", async () => {
  const storage = new FileStorage();
  await assert.rejects(storage.stat("file:///tmp"), StoragePermissionError);
});

Deno.test("FileStorage rejects non-local file URLs", async () => {
  const storage = new FileStorage({ allowList: ["/"] });
  await assert.rejects(storage.stat("file://remote-host/etc/passwd"), (error: unknown) => {
    assert.ok(error instanceof StorageError);
    assert.equal(error.code, "INVALID_URL");
    return true;
  });
});
