/**
 * `planetary serve` fails with a message that says what is wrong and what to do, and exit
 * code 2, for what a user gets wrong: a data folder that holds something else, bad shared
 * folders, unknown storage schemes. Never `[object Object]`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SERVE_PERMISSIONS } from "../cli/commands/serve.ts";

const CLI = new URL("../cli/planetary.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

async function serve(args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--config", CONFIG, ...SERVE_PERMISSIONS, CLI, "serve", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("planetary serve refuses a --data-dir that holds other files, exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "planetary-not-a-db-" });
  try {
    await Deno.writeTextFile(`${dir}/x`, "");
    const { code, stderr } = await serve(["--port", "0", "--data-dir", dir]);
    assert.equal(code, 2, stderr);
    assert.ok(
      stderr.startsWith(
        `planetary serve: --data-dir ${dir} is not empty and holds no Planetary database: ` +
          "choose another folder or empty it\n",
      ),
      stderr,
    );
    assert.doesNotMatch(stderr, /\[object /);
    // Nothing was written into the folder.
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["x"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("planetary serve refuses a --data-dir that is a file, exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "planetary-not-a-db-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "");
    const { code, stderr } = await serve(["--port", "0", "--data-dir", `${dir}/file`]);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^planetary serve: --data-dir \S+\/file is not a folder: choose a folder/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("planetary serve checks --shared-dir and --storage-schemes, exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "planetary-shared-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "");
    const cases: [string[], RegExp][] = [
      [
        ["--shared-dir", "relative/dir"],
        /--shared-dir: must be an absolute folder, got "relative\/dir"/,
      ],
      [
        ["--shared-dir", `${dir}/missing`],
        /--shared-dir \S+\/missing: does not exist; create it first/,
      ],
      [["--shared-dir", `${dir}/file`], /--shared-dir \S+\/file: is not a folder/],
      [
        ["--storage-schemes", "file,ftp"],
        /--storage-schemes: unknown scheme "ftp"; use a comma list of file, http, https, s3, gs, az/,
      ],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await serve(["--port", "0", "--data-dir", `${dir}/data`, ...args]);
      assert.equal(code, 2, stderr);
      assert.match(stderr, message);
      assert.match(stderr, /Usage: planetary serve/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
