"""Drives a running Planetary server with the real py-tes client.

Usage: python check_server.py BASE_URL

Creates a task (inputs, outputs, resources, tags, env), gets it in MINIMAL/BASIC/FULL, lists
it with a view and a tag filter, cancels it and gets it again. Every response goes through
py-tes's own unmarshalling, which raises on any key it does not know. Exits 0 when every check
passes; prints the failing check and exits 1 otherwise.
"""
import sys
import uuid

import requests
import tes
from tes.utils import unmarshal


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def main(base_url: str) -> None:
    client = tes.HTTPClient(base_url, timeout=10)

    info = client.get_service_info()
    check(info.type["artifact"] == "tes", f"service-info type: {info.type}")
    check(info.type["group"] == "org.ga4gh", f"service-info group: {info.type}")
    check(isinstance(info.tes_resources_backend_parameters, list), "backend parameters listed")

    run_tag = uuid.uuid4().hex
    task = tes.Task(
        name="py-tes-check",
        description="created by tests/py_tes/check_server.py",
        inputs=[
            tes.Input(path="/data/in.txt", content="hello from py-tes", type="FILE"),
            tes.Input(url="s3://bucket/ref.fa", path="/data/ref.fa", type="FILE"),
        ],
        outputs=[tes.Output(url="s3://bucket/out.txt", path="/data/out.txt", type="FILE")],
        resources=tes.Resources(cpu_cores=2, ram_gb=1.5, disk_gb=4.0, preemptible=False),
        executors=[
            tes.Executor(
                image="alpine:3.20",
                command=["sh", "-c", "cat /data/in.txt > /data/out.txt"],
                workdir="/data",
                env={"GREETING": "hello"},
            )
        ],
        volumes=["/scratch"],
        tags={"run": run_tag, "suite": "py-tes"},
    )
    task_id = client.create_task(task)
    check(isinstance(task_id, str) and task_id, f"create_task returned {task_id!r}")

    minimal = client.get_task(task_id, view="MINIMAL")
    check(minimal.id == task_id, f"MINIMAL id {minimal.id}")
    check(minimal.state == "QUEUED", f"MINIMAL state {minimal.state}")
    check(minimal.executors is None, "MINIMAL carries no executors")

    basic = client.get_task(task_id, view="BASIC")
    check(basic.name == "py-tes-check", f"BASIC name {basic.name}")
    check(basic.executors[0].image == "alpine:3.20", "BASIC executor image")
    check(basic.executors[0].env == {"GREETING": "hello"}, f"BASIC env {basic.executors[0].env}")
    check(basic.resources.cpu_cores == 2, f"BASIC cpu_cores {basic.resources.cpu_cores!r}")
    check(basic.tags == {"run": run_tag, "suite": "py-tes"}, f"BASIC tags {basic.tags}")
    check(basic.inputs[0].content is None, "BASIC omits input content")
    check(basic.outputs[0].url == "s3://bucket/out.txt", "BASIC output url")
    check(basic.creation_time is not None, "BASIC creation_time")

    full = client.get_task(task_id, view="FULL")
    check(full.inputs[0].content == "hello from py-tes", "FULL input content")
    check(full.volumes == ["/scratch"], f"FULL volumes {full.volumes}")

    listed = client.list_tasks(view="BASIC", page_size=50)
    check(any(t.id == task_id for t in listed.tasks), "list_tasks(BASIC) holds the task")

    # py-tes has no tag filter argument: send the query ourselves, parse with py-tes.
    response = requests.get(
        f"{base_url}/ga4gh/tes/v1/tasks",
        params={"view": "MINIMAL", "tag_key": ["run", "suite"], "tag_value": [run_tag]},
        timeout=10,
    )
    response.raise_for_status()
    by_tag = unmarshal(response.json(), tes.ListTasksResponse)
    check([t.id for t in by_tag.tasks] == [task_id], f"tag filter: {by_tag.tasks}")

    client.cancel_task(task_id)
    after = client.get_task(task_id, view="FULL")
    check(after.state == "CANCELED", f"state after cancel {after.state}")
    client.cancel_task(task_id)  # idempotent on a terminal task

    missing = None
    try:
        client.get_task("no-such-task", view="MINIMAL")
    except requests.exceptions.HTTPError as error:
        missing = error.response.status_code
    check(missing == 404, f"unknown task answered {missing}")

    print(f"py-tes {getattr(tes, '__version__', '?')}: all checks passed for task {task_id}")


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as error:  # report the failing check on one line
        print(f"FAIL: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
