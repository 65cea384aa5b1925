"""A small Toil workflow for tests/toil_test.ts: two jobs each square a number and store the
result as a file in the job store; a follow-on job reads both files and writes their sum to the
file given as --out. Run with a file job store in a folder the tasks see at the same path.

Usage: python workflow.py JOBSTORE --out FILE [Toil options, e.g. --batchSystem tes]
"""

import os

from toil.common import Toil
from toil.job import Job


def square(job, x):
    path = os.path.join(job.fileStore.getLocalTempDir(), "square.txt")
    with open(path, "w") as f:
        f.write(f"{x * x}\n")
    return job.fileStore.writeGlobalFile(path)


def total(job, file_ids):
    values = []
    for file_id in file_ids:
        with open(job.fileStore.readGlobalFile(file_id)) as f:
            values.append(int(f.read()))
    return sum(values)


def root(job):
    squares = [job.addChildJobFn(square, x).rv() for x in (3, 4)]
    return job.addFollowOnJobFn(total, squares).rv()


if __name__ == "__main__":
    parser = Job.Runner.getDefaultArgumentParser()
    parser.add_argument("--out", required=True, help="file that receives the sum")
    options = parser.parse_args()
    with Toil(options) as toil:
        result = toil.start(Job.wrapJobFn(root)) if not toil.options.restart else toil.restart()
    with open(options.out, "w") as f:
        f.write(f"{result}\n")
