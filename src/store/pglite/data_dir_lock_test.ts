import assert from "node:assert/strict";
import { acquireDataDirLock, DataDirLockedError } from "./data_dir_lock.ts";

Deno.test("acquireDataDirLock() refuses a second holder until released", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lock = acquireDataDirLock(`${dir}/data/`);
    assert.equal(lock.path, `${dir}/data.lock`);
    assert.equal(await Deno.readTextFile(lock.path), `${Deno.pid}\n`);
    assert.throws(() => acquireDataDirLock(`${dir}/data`), (error: unknown) => {
      assert.ok(error instanceof DataDirLockedError);
      assert.equal(error.code, "DATA_DIR_LOCKED");
      assert.equal(error.holderPid, Deno.pid);
      assert.match(error.message, /in use by process \d+/);
      return true;
    });
    lock.release();
    lock.release();
    const again = acquireDataDirLock(`${dir}/data`);
    again.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireDataDirLock() takes over a lock file nobody holds", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Left behind by a process that died: a pid, but no advisory lock.
    await Deno.writeTextFile(`${dir}/data.lock`, "4194303\n");
    const lock = acquireDataDirLock(`${dir}/data`);
    assert.equal(await Deno.readTextFile(lock.path), `${Deno.pid}\n`);
    lock.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
