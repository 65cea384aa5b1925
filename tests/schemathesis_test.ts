/**
 * Schemathesis (an OpenAPI fuzzer) against `planetary serve --backend none`, with the TES v1.1
 * OpenAPI document (`tests/schemathesis/task_execution_service.openapi.yaml`), checking only
 * `not_a_server_error`: whatever it sends, the server never answers 5xx. Bounded (a fixed
 * number of examples per operation, one worker) and seeded, so a run is repeatable.
 * Schemathesis is installed by `tests/schemathesis/install.sh` into
 * ~/.cache/planetary/schemathesis-<version>.
 */
import assert from "node:assert/strict";
import { PLANETARY_CACHE, venvReady } from "./_harness/cache.ts";
import { requireComponent } from "./_harness/component.ts";
import { startServe } from "./_harness/serve.ts";

const SCHEMATHESIS_VERSION = "4.32.5";
const VENV = `${PLANETARY_CACHE}/schemathesis-${SCHEMATHESIS_VERSION}`;
const SPEC = new URL("./schemathesis/task_execution_service.openapi.yaml", import.meta.url)
  .pathname;
const SEED = "20240611";
const MAX_EXAMPLES = "25";

Deno.test({
  name: "planetary serve answers no 5xx to Schemathesis fuzzing the TES OpenAPI document",
  ignore: !requireComponent(
    venvReady(VENV),
    `Schemathesis venv missing: run tests/schemathesis/install.sh (${VENV})`,
  ),
  async fn() {
    const server = await startServe({ args: ["--backend", "none"] });
    const reportDir = await Deno.makeTempDir({ prefix: "planetary-schemathesis-" });
    try {
      const out = await new Deno.Command(`${VENV}/bin/st`, {
        args: [
          "run",
          SPEC,
          "--url",
          `${server.url}/ga4gh/tes/v1`,
          "--checks",
          "not_a_server_error",
          "--max-examples",
          MAX_EXAMPLES,
          "--seed",
          SEED,
          "--phases",
          "examples,coverage,fuzzing",
          "--workers",
          "1",
          "--request-timeout",
          "30",
          "--report-dir",
          reportDir,
        ],
        // Its example database (`.schemathesis/`) goes to the temporary folder, not the repo.
        cwd: reportDir,
        env: { NO_COLOR: "1", SCHEMATHESIS_TELEMETRY: "false" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `${text}\n--- server log ---\n${server.log().slice(-4000)}`);
      assert.match(text, /Operations:\s+5 selected \/ 5 total/, text);
      const cases = /Test cases:\s+(\d+) generated, (\d+) passed/.exec(text);
      assert.ok(cases !== null && Number(cases[1]) > 100, `too few cases ran:\n${text}`);
      assert.equal(cases[2], cases[1], text);
    } finally {
      await server.close();
      await Deno.remove(reportDir, { recursive: true });
    }
  },
});
