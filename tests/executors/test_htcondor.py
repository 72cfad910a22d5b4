"""The htcondor executor: the DAG and submit files of a small cogify job, checked as files,
then every node's command run here as HTCondor would run it on an execute machine.

No HTCondor pool runs here (the wheel has only the bindings, no daemons): submitting fails
with a clear message and the files stay, which is what a submit host without a schedd gets
too. Running the node commands locally with subprocess stands in for the pool; DAGMan's own
behaviour (RETRY, FINAL, rescue DAGs) is not exercised.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest

from helpers import read_csv, run_cogify
from tilefleet.errors import ExitCode

ROWS = ["landsat/RGB.byte.tif", "s2/SCL.tif", "landsat/missing.tif"]


@pytest.fixture
def dag_run(inputs, tmp_path):
    """A cogify job launched on htcondor: the DAG is written, submitting it fails."""
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("".join(f"{row},\n" for row in ROWS))
    run_dir = tmp_path / "run"
    result = run_cogify(
        manifest, inputs, tmp_path / "out", run_dir, executor="htcondor", mem=1024, retries=2
    )
    return result, run_dir


def parse_dag(path):
    """Nodes of a DAG file: name -> {submit, vars, retry, unless_exit}; and the FINAL node."""
    nodes, final = {}, None
    for line in path.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "JOB":
            nodes[words[1]] = {"submit": words[2]}
        elif words[0] == "VARS":
            pairs = re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line)
            nodes[words[1]]["vars"] = {k: v.replace('\\"', '"') for k, v in pairs}
        elif words[0] == "RETRY":
            nodes[words[1]]["retry"] = int(words[2])
            nodes[words[1]]["unless_exit"] = int(words[4]) if len(words) > 4 else None
        elif words[0] == "FINAL":
            final = {"name": words[1], "submit": words[2]}
    return nodes, final


def parse_submit(path):
    commands = {}
    for line in path.read_text().splitlines():
        if " = " in line and not line.startswith("#"):
            key, _, value = line.partition(" = ")
            commands[key.strip()] = value.strip()
    return commands


def node_command(submit: dict[str, str], macros: dict[str, str]) -> list[str]:
    """The command line HTCondor runs for a node: executable plus its new-style arguments
    (double-quoted, arguments in single quotes), with the node's VARS substituted."""
    arguments = submit["arguments"]
    for name, value in macros.items():
        arguments = arguments.replace(f"$({name})", value)
    assert arguments.startswith('"') and arguments.endswith('"')
    return [submit["executable"], *shlex.split(arguments[1:-1])]


@pytest.mark.slow
def test_the_dag_and_submit_files_describe_the_plan(dag_run):
    result, run_dir = dag_run
    assert result.exit_code == ExitCode.INVALID  # written, but no schedd took it
    folder = run_dir / "htcondor"
    nodes, final = parse_dag(folder / "tilefleet.dag")
    assert len(nodes) == len(ROWS)
    assert sorted(node["vars"]["task_id"] for node in nodes.values()) == sorted(ROWS)
    assert {(node["retry"], node["unless_exit"]) for node in nodes.values()} == {(2, 2)}
    assert {node["submit"] for node in nodes.values()} == {str(folder / "task.sub")}
    assert "MAXJOBS tasks" in (folder / "tilefleet.dag").read_text()
    assert final == {"name": "report", "submit": str(folder / "final.sub")}

    task = parse_submit(folder / "task.sub")
    assert (task["request_cpus"], task["request_memory"], task["request_disk"]) == (
        "1",
        "1024",
        "2GB",
    )
    assert task["executable"] == sys.executable
    command = node_command(task, {"task_id": "landsat/RGB.byte.tif"})
    assert command[1:] == [
        "-m",
        "tilefleet",
        "task",
        "run",
        str(run_dir.resolve()),
        "landsat/RGB.byte.tif",
    ]
    assert "SECRET" not in task["getenv"] and "KEY" not in task["getenv"]
    finish = parse_submit(folder / "final.sub")
    assert finish["universe"] == "local"
    assert node_command(finish, {})[1:] == [
        "-m",
        "tilefleet",
        "task",
        "finish",
        str(run_dir.resolve()),
    ]
    # The run is recorded as launched: every task pending, a session for the DAG.
    report = json.loads((run_dir / "report.json").read_text())
    assert (report["pending"], report["executor"]["name"]) == (len(ROWS), "htcondor")


@pytest.mark.slow
def test_each_node_run_here_does_its_task_and_the_final_node_writes_the_reports(dag_run):
    _, run_dir = dag_run
    folder = run_dir / "htcondor"
    nodes, _ = parse_dag(folder / "tilefleet.dag")
    task_submit = parse_submit(folder / "task.sub")
    # All nodes at once, as a pool would run them.
    running = {
        node["vars"]["task_id"]: subprocess.Popen(
            node_command(task_submit, node["vars"]),
            cwd=task_submit["initialdir"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in nodes.values()
    }
    codes = {task_id: process.wait(timeout=120) for task_id, process in running.items()}
    assert codes == {"landsat/RGB.byte.tif": 0, "s2/SCL.tif": 0, "landsat/missing.tif": 2}
    assert (run_dir.parent / "out/landsat/RGB.byte.tif").is_file()
    assert len(list((run_dir / "outcomes").glob("*.json"))) == 3

    finish = parse_submit(folder / "final.sub")
    done = subprocess.run(
        node_command(finish, {}),
        cwd=finish["initialdir"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr  # partial: one task failed
    tasks = {row["id"]: row for row in read_csv(run_dir / "tasks.csv")}
    assert {k: v["status"] for k, v in tasks.items()} == {
        "landsat/RGB.byte.tif": "succeeded",
        "s2/SCL.tif": "succeeded",
        "landsat/missing.tif": "failed",
    }
    assert "missing" in tasks["landsat/missing.tif"]["error"]
    assert tasks["s2/SCL.tif"]["worker"].count(":") == 1  # host:pid of the node
    report = json.loads((run_dir / "report.json").read_text())
    assert (report["succeeded"], report["failed"], report["pending"]) == (2, 1, 0)
    assert not list((run_dir / "outcomes").glob("*.json"))  # all merged

    # A rescue DAG reruns a node whose task is done: it exits 0 at once, nothing redone.
    cog = run_dir.parent / "out/landsat/RGB.byte.tif"
    before = cog.stat().st_mtime_ns
    rerun = subprocess.run(
        node_command(task_submit, {"task_id": "landsat/RGB.byte.tif"}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0 and "already done" in rerun.stdout
    assert cog.stat().st_mtime_ns == before


def test_the_final_node_fails_while_a_task_never_reported(dag_run):
    _, run_dir = dag_run
    folder = run_dir / "htcondor"
    nodes, _ = parse_dag(folder / "tilefleet.dag")
    task_submit = parse_submit(folder / "task.sub")
    for node in nodes.values():  # the failing row's node never ran (the DAG was removed)
        if node["vars"]["task_id"] != "landsat/missing.tif":
            command = node_command(task_submit, node["vars"])
            subprocess.run(command, cwd=task_submit["initialdir"], check=True, timeout=120)
    finish = parse_submit(folder / "final.sub")
    done = subprocess.run(
        node_command(finish, {}), cwd=finish["initialdir"], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert "1 task(s) never reported" in done.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert (report["succeeded"], report["failed"], report["pending"]) == (2, 0, 1)


def test_a_dry_run_writes_the_dag_and_submits_nothing(inputs, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("s2/SCL.tif,\n")
    result = run_cogify(
        manifest,
        inputs,
        tmp_path / "out",
        tmp_path / "run",
        executor="htcondor",
        dry_run=True,
        cluster_options={"request_disk": "4GB", "container_image": "docker://osgeo/gdal"},
    )
    assert result.exit_code == 0 and result.dry_run
    task = parse_submit(tmp_path / "run/htcondor/task.sub")
    assert (task["request_disk"], task["container_image"]) == ("4GB", "docker://osgeo/gdal")
    assert not (tmp_path / "out").exists()
