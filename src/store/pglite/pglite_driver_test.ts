import assert from "node:assert/strict";
import { acquireDataDirLock } from "./data_dir_lock.ts";
import { DataDirNotUsableError, dataDirProblem, openPgliteDriver } from "./pglite_driver.ts";

Deno.test("openPgliteDriver() refuses a folder that holds other files, before PGlite runs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/x`, "");
    await assert.rejects(openPgliteDriver({ dataDir: dir }), (error: unknown) => {
      assert.ok(error instanceof DataDirNotUsableError);
      assert.equal(error.code, "DATA_DIR_NOT_USABLE");
      assert.equal(
        error.message,
        `Data directory "${dir}" is not empty and holds no Planetary database: ` +
          "choose another folder or empty it",
      );
      return true;
    });
    // Nothing was written into it, and the lock beside it was released.
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["x"]);
    acquireDataDirLock(dir).release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dataDirProblem() accepts missing, empty and database folders only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await dataDirProblem(`${dir}/missing`), undefined);
    assert.equal(await dataDirProblem(dir), undefined);
    await Deno.writeTextFile(`${dir}/file`, "");
    assert.equal(await dataDirProblem(`${dir}/file`), "not-a-folder");
    assert.equal(await dataDirProblem(dir), "not-empty");
    await Deno.writeTextFile(`${dir}/PG_VERSION`, "17\n");
    assert.equal(await dataDirProblem(dir), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
