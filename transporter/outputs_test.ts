import assert from "node:assert/strict";
import type { TransferOutput, TransferSpec } from "../src/pod/layout.ts";
import { uploadOutputs } from "./outputs.ts";

/** A pod folder and an allow-listed "remote" folder reached through `file://` URLs. */
async function withFolders(body: (pod: string, remote: string) => Promise<void>): Promise<void> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "outputs-test-" }));
  try {
    await Deno.mkdir(`${root}/pod`);
    await Deno.mkdir(`${root}/remote`);
    await body(`${root}/pod`, `${root}/remote`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function spec(outputs: TransferOutput[]): TransferSpec {
  return { version: 1, taskId: "t", inputs: [], outputs, executors: [], tailBytes: 16 };
}

Deno.test("uploadOutputs() warns, without an error, about outputs absent after the executors", async () => {
  await withFolders(async (pod, remote) => {
    await Deno.writeTextFile(`${pod}/there.txt`, "here");
    await Deno.mkdir(`${pod}/empty-glob-dir`);
    const result = await uploadOutputs(
      spec([
        { url: `file://${remote}/there.txt`, path: `${pod}/there.txt`, type: "FILE" },
        { url: `file://${remote}/opt.txt`, path: `${pod}/opt.txt`, type: "FILE" },
        { url: `file://${remote}/dir`, path: `${pod}/no-dir`, type: "DIRECTORY" },
        {
          url: `file://${remote}/globbed`,
          path: `${pod}/empty-glob-dir/*.bam`,
          path_prefix: `${pod}/empty-glob-dir`,
          type: "FILE",
        },
        { url: `file://${remote}/deep`, path: `${pod}/missing/*/x.txt`, type: "FILE" },
      ]),
      { config: { fileAllowList: [remote] } },
    );
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.outputs, [
      { url: `file://${remote}/there.txt`, path: `${pod}/there.txt`, size_bytes: "4" },
    ]);
    assert.deepEqual(result.warnings, [
      `output #1 (FILE ${pod}/opt.txt): not found after the executors finished; nothing uploaded`,
      `output #2 (DIRECTORY ${pod}/no-dir): not found after the executors finished; ` +
      "nothing uploaded",
      `output #3 (FILE ${pod}/empty-glob-dir/*.bam): no path matches the pattern after the ` +
      "executors finished; nothing uploaded",
      `output #4 (FILE ${pod}/missing/*/x.txt): no path matches the pattern after the ` +
      "executors finished; nothing uploaded",
    ]);
    assert.equal(result.bytes, 4);
    assert.deepEqual([...Deno.readDirSync(remote)].map((e) => e.name), ["there.txt"]);
  });
});

Deno.test("uploadOutputs() keeps the wrong kind, an unreadable path and a refused URL as errors", async () => {
  await withFolders(async (pod, remote) => {
    await Deno.mkdir(`${pod}/a-dir`);
    await Deno.writeTextFile(`${pod}/a-file`, "f");
    await Deno.writeTextFile(`${pod}/ok.txt`, "ok");
    await Deno.symlink(`${pod}/loop`, `${pod}/loop`);
    const result = await uploadOutputs(
      spec([
        { url: `file://${remote}/a-dir`, path: `${pod}/a-dir`, type: "FILE" },
        { url: `file://${remote}/a-file`, path: `${pod}/a-file`, type: "DIRECTORY" },
        { url: `file://${remote}/loop`, path: `${pod}/loop`, type: "FILE" },
        { url: "file:///not-allowed/ok.txt", path: `${pod}/ok.txt`, type: "FILE" },
      ]),
      { config: { fileAllowList: [remote] } },
    );
    assert.deepEqual(result.warnings, []);
    assert.deepEqual(result.outputs, []);
    assert.equal(result.errors.length, 4, result.errors.join("\n"));
    assert.match(result.errors[0]!, /^output #0 .*a-dir.* is not a regular file \(declare/);
    assert.match(result.errors[1]!, /^output #1 .*a-file is not a directory/);
    assert.match(result.errors[2]!, /^output #2 .*loop/);
    assert.match(result.errors[3]!, /^output #3 .*not-allowed/);
  });
});
