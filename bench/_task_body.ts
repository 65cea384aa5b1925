/**
 * The task body every API benchmark submits: shaped like a real alignment task.
 *
 * @module
 */

/**
 * A realistic task: 2 inputs, 2 outputs, resources, 3 tags, 1 executor.
 *
 * @param i Its number (names, URLs and tags follow it).
 * @returns The JSON text of the task.
 */
export function taskBody(i: number): string {
  return JSON.stringify({
    name: `align-s${i}`,
    description: "bwa mem of one sample against the reference",
    inputs: [
      {
        name: "reads",
        url: `https://data.example.org/bench/samples/s${i}/reads.fq.gz`,
        path: "/data/in/reads.fq.gz",
        type: "FILE",
      },
      {
        name: "reference",
        url: "https://data.example.org/bench/ref/GRCh38.fa",
        path: "/data/in/ref.fa",
      },
    ],
    outputs: [
      {
        name: "alignment",
        url: `https://data.example.org/bench/out/s${i}/aligned.sam`,
        path: "/data/out/aligned.sam",
        type: "FILE",
      },
      {
        url: `https://data.example.org/bench/out/s${i}/logs`,
        path: "/data/out/logs",
        type: "DIRECTORY",
      },
    ],
    resources: { cpu_cores: 4, ram_gb: 8, disk_gb: 50, preemptible: true },
    executors: [{
      image: "quay.io/biocontainers/bwa:0.7.17--h7132678_9",
      command: ["bwa", "mem", "-t", "4", "/data/in/ref.fa", "/data/in/reads.fq.gz"],
      workdir: "/data",
      stdout: "/data/out/aligned.sam",
      stderr: "/data/out/logs/bwa.err",
      env: { SAMPLE: `s${i}` },
    }],
    // Same tag shapes as the seeded rows: batch ≈ 1 task in 1,000, project ≈ 1 in 10.
    tags: { batch: `b${i % 1000}`, project: `p${i % 10}`, sample: `s${i}` },
  });
}
