import assert from "node:assert/strict";
import { formatBytes, TransferProgress } from "./progress.ts";
import { downloadInputs } from "./inputs.ts";
import { uploadOutputs } from "./outputs.ts";

Deno.test("formatBytes() uses decimal units", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(1500), "1.50 kB");
  assert.equal(formatBytes(1_073_741_824), "1.07 GB");
  assert.equal(formatBytes(250_000_000), "250.0 MB");
});

Deno.test("TransferProgress: a line per file while few, totals with the rate", async () => {
  const lines: string[] = [];
  let now = 0;
  const progress = new TransferProgress({
    mode: "outputs",
    log: (line) => lines.push(line),
    intervalMs: 0,
    now: () => now,
  });
  progress.plan(2);
  const counted = progress.count(ReadableStream.from([new Uint8Array(600_000)]));
  for await (const _ of counted) { /* drain */ }
  progress.fileDone("s3://bucket/a?X-Amz-Signature=secret", 600_000);
  now = 2000;
  progress.fileDone("file:///data/b", 400_000, false);
  assert.deepEqual(lines, [
    "outputs: 1/2 files: s3://bucket/a (600.0 kB)",
    "outputs: 2/2 files: file:///data/b (400.0 kB)",
  ]);
  assert.equal(progress.totals(), "outputs: 2/2 files, 1.00 MB in 2 s (0.5 MB/s)");
  progress.stop();
});

Deno.test("TransferProgress: many small files get no line each, large ones do", () => {
  const lines: string[] = [];
  const progress = new TransferProgress({
    mode: "inputs",
    log: (line) => lines.push(line),
    intervalMs: 0,
    fileLinesUpTo: 3,
    largeFileBytes: 1000,
  });
  progress.plan(100);
  for (let i = 0; i < 99; i++) progress.fileDone(`gs://b/small-${i}`, 10, false);
  progress.fileDone("gs://b/big", 5000, false);
  assert.deepEqual(lines, ["inputs: 100/100 files: gs://b/big (5.00 kB)"]);
  progress.stop();
});

Deno.test("TransferProgress: running totals at the interval until stop()", async () => {
  const lines: string[] = [];
  const progress = new TransferProgress({
    mode: "inputs",
    log: (l) => lines.push(l),
    intervalMs: 20,
  });
  progress.plan(1);
  await new Promise((resolve) => setTimeout(resolve, 120));
  progress.stop();
  const seen = lines.length;
  assert.ok(seen >= 2, `running totals were written: ${JSON.stringify(lines)}`);
  assert.match(lines[0]!, /^inputs: 0\/1 files, 0 B in \d+ s \(0\.0 MB\/s\)$/);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(lines.length, seen, "nothing after stop()");
});

Deno.test("downloadInputs() and uploadOutputs() report each file and the bytes moved", async () => {
  const root = await Deno.makeTempDir({ prefix: "planetary-progress-" });
  try {
    await Deno.mkdir(`${root}/store/dir/sub`, { recursive: true });
    await Deno.writeTextFile(`${root}/store/a.txt`, "hello");
    await Deno.writeTextFile(`${root}/store/dir/b.txt`, "bb");
    await Deno.writeTextFile(`${root}/store/dir/sub/c.txt`, "ccc");
    const config = { fileAllowList: [root] };
    const lines: string[] = [];
    const downloads = new TransferProgress({
      mode: "inputs",
      log: (l) => lines.push(l),
      intervalMs: 0,
    });
    const stats = await downloadInputs({
      version: 1,
      taskId: "t",
      inputs: [
        { url: `file://${root}/store/a.txt`, path: `${root}/pod/a.txt`, type: "FILE" },
        { url: `file://${root}/store/dir`, path: `${root}/pod/dir`, type: "DIRECTORY" },
        { content: "inline", path: `${root}/pod/inline.txt`, type: "FILE" },
      ],
      outputs: [],
      executors: [],
      tailBytes: 0,
    }, { config, progress: downloads });
    downloads.stop();
    assert.deepEqual(stats, { files: 4, bytes: 16 });
    assert.equal(lines.length, 4, lines.join("\n"));
    assert.ok(lines.some((l) => l.endsWith(`/4 files: file://${root}/store/a.txt (5 B)`)));
    assert.ok(lines.some((l) => l.endsWith(`/4 files: file://${root}/store/dir/sub/c.txt (3 B)`)));
    assert.match(downloads.totals(), /^inputs: 4\/4 files, 16 B in \d+ s/);

    lines.length = 0;
    const uploads = new TransferProgress({
      mode: "outputs",
      log: (l) => lines.push(l),
      intervalMs: 0,
    });
    const result = await uploadOutputs({
      version: 1,
      taskId: "t",
      inputs: [],
      outputs: [{ url: `file://${root}/out`, path: `${root}/pod/dir`, type: "DIRECTORY" }],
      executors: [],
      tailBytes: 0,
    }, { config, progress: uploads });
    uploads.stop();
    assert.deepEqual(result.errors, []);
    // uploads run in parallel: which file finishes first may vary
    assert.deepEqual(lines.map((l) => l.slice(0, "outputs: 1/2".length)).sort(), [
      "outputs: 1/2",
      "outputs: 2/2",
    ]);
    assert.deepEqual(lines.map((l) => l.slice(l.indexOf("file://"))).sort(), [
      `file://${root}/out/b.txt (2 B)`,
      `file://${root}/out/sub/c.txt (3 B)`,
    ]);
    assert.equal(lines.length, 2);
    assert.match(uploads.totals(), /^outputs: 2\/2 files, 5 B in \d+ s/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
