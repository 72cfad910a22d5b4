"""The htcondor executor: the DAG and submit files of a small cogify job, checked as files,
then every node's command run here as HTCondor would run it on an execute machine.

No HTCondor pool runs here (the wheel has only the bindings, no daemons): submitting fails
with a clear message and the files stay, which is what a submit host without a schedd gets
too. Running the node commands locally with subprocess stands in for the pool; DAGMan's own
behaviour (RETRY, FINAL, rescue DAGs) is not exercised, except by the small stand-in for a
pool without a shared file system below (``run_node_without_shared_fs``), which retries a
node as ``RETRY … UNLESS-EXIT 2`` says.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from conftest import RASTERS, S3_SECRET
from helpers import read_csv, run_cogify
from tilefleet.cli import app
from tilefleet.errors import ExitCode
from tilefleet.store.gdal_env import gdal_config

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


def expand(text: str, macros: dict[str, str]) -> str:
    """A submit command's value with the node's macros (VARS, ``$(RETRY)``) substituted."""
    for name, value in macros.items():
        text = text.replace(f"$({name})", value)
    return text


def node_command(submit: dict[str, str], macros: dict[str, str]) -> list[str]:
    """The command line HTCondor runs for a node: executable plus its new-style arguments
    (double-quoted, arguments in single quotes), with the node's VARS substituted."""
    arguments = expand(submit["arguments"], macros)
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


# --- A pool without a shared file system -------------------------------------------------
#
# No HTCondor pool runs here. ``run_node_without_shared_fs`` stands in for one execute
# machine of a pool whose machines do not see the submit host's files: it does by hand what
# HTCondor's file transfer does with the node's submit commands (a fresh scratch folder,
# ``transfer_input_files`` copied in, the command run there, ``transfer_output_remaps``
# applied on the way back), and while the node runs the run directory is not there at all.

SOURCE, DEST = "tf-htc-input", "tf-htc-output"
S3_ROWS = ["landsat/RGB.byte.tif", "s2/SCL.tif", "landsat/missing.tif"]


@pytest.fixture
def s3_dag_run(s3, data_dir, tmp_path):
    """A cogify job from bucket to bucket launched on htcondor without a shared file
    system: the DAG, the submit files and the task files are written, submitting fails."""
    s3.create_bucket(Bucket=SOURCE)
    s3.create_bucket(Bucket=DEST)
    for key in S3_ROWS[:2]:
        s3.upload_file(str(data_dir / RASTERS[key]), SOURCE, f"raw/{key}")
    manifest = "".join(f"{row},\n" for row in S3_ROWS)
    s3.put_object(Bucket=SOURCE, Key="manifests/batch-raw.csv", Body=manifest.encode())
    run_dir = tmp_path / "run"
    result = run_cogify(
        f"s3://{SOURCE}/manifests/batch-raw.csv",
        f"s3://{SOURCE}/raw",
        f"s3://{DEST}/cogs",
        run_dir,
        executor="htcondor",
        shared_filesystem=False,
        retries=2,
    )
    assert result.exit_code == ExitCode.INVALID  # written, but no schedd took it
    return run_dir


def run_node_without_shared_fs(
    node: dict, retry: int, scratch_root: Path, run_dir: Path, env: dict[str, str]
) -> subprocess.CompletedProcess:
    """One attempt (``$(RETRY)`` = ``retry``) of a DAG node, as an execute machine that
    sees none of the submit host's files would run it."""
    submit = parse_submit(Path(node["submit"]))
    macros = {**node["vars"], "RETRY": str(retry)}
    assert submit["should_transfer_files"] == "YES" and "initialdir" not in submit
    scratch = scratch_root / f"{node['vars']['node']}.{retry}"
    scratch.mkdir(parents=True)
    for name in expand(submit["transfer_input_files"], macros).split(","):
        shutil.copy(name.strip(), scratch)
    command = node_command(submit, macros)
    assert str(run_dir) not in " ".join(command)
    hidden = run_dir.rename(run_dir.with_name("run-on-the-submit-host"))
    try:
        done = subprocess.run(
            command, cwd=scratch, env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        hidden.rename(run_dir)
    outputs = [name.strip() for name in submit["transfer_output_files"].split(",")]
    remaps = expand(submit["transfer_output_remaps"], macros)
    assert remaps.startswith('"') and remaps.endswith('"')
    for remap in remaps[1:-1].split(";"):
        name, _, target = remap.partition("=")
        assert name.strip() in outputs
        shutil.copy(scratch / name.strip(), target.strip())
    return done


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_dag_without_shared_file_system_runs_from_bucket_to_bucket(
    s3_dag_run, s3, tmp_path, moto_endpoint
):
    run_dir = s3_dag_run
    folder = run_dir / "htcondor"
    nodes, _ = parse_dag(folder / "tilefleet.dag")
    task = parse_submit(folder / "task.sub")
    assert (task["when_to_transfer_output"], task["transfer_executable"]) == ("ON_EXIT", "false")
    assert task["transfer_output_files"] == "outcome.json"
    assert "SECRET" not in task["getenv"] and "KEY" not in task["getenv"]
    for node in nodes.values():  # each node's task file: the task, nothing secret or local
        text = (folder / "tasks" / f"{node['vars']['node']}.json").read_text()
        assert json.loads(text)["id"] == node["vars"]["task_id"]
        assert S3_SECRET not in text and str(tmp_path) not in text

    # The pool's machines: no run dir on any path; on its first try, the machine running
    # s2/SCL.tif cannot reach the object store (a retryable failure, which DAGMan retries).
    env = {k: v for k, v in os.environ.items() if str(run_dir) not in v}
    closed = f"http://127.0.0.1:{closed_port()}"  # both names: either one wins if set
    unreachable = {**env, "AWS_ENDPOINT_URL": closed, "AWS_ENDPOINT_URL_S3": closed}
    codes: dict[str, list[int]] = {}
    for node in nodes.values():  # DAGMan: RETRY n UNLESS-EXIT 2
        task_id = node["vars"]["task_id"]
        for retry in range(node["retry"] + 1):
            broken = task_id == "s2/SCL.tif" and retry == 0
            done = run_node_without_shared_fs(
                node, retry, tmp_path / "pool", run_dir, unreachable if broken else env
            )
            codes.setdefault(task_id, []).append(done.returncode)
            if done.returncode in (0, node["unless_exit"]):
                break
    assert codes == {"landsat/RGB.byte.tif": [0], "s2/SCL.tif": [1, 0], "landsat/missing.tif": [2]}
    reported = sorted(path.name for path in (run_dir / "outcomes").glob("*.json"))
    expected = ["landsat/RGB.byte.tif.0", "landsat/missing.tif.0", "s2/SCL.tif.0", "s2/SCL.tif.1"]
    assert reported == sorted(f"{quote(name, safe='')}.json" for name in expected)
    assert not list((run_dir / "outcomes").glob("*.claim"))  # nodes wrote nothing there

    finish = parse_submit(folder / "final.sub")
    final = subprocess.run(
        node_command(finish, {}), cwd=finish["initialdir"], capture_output=True, text=True
    )
    assert final.returncode == ExitCode.PARTIAL, final.stderr  # the run's status
    tasks = {row["id"]: row for row in read_csv(run_dir / "tasks.csv")}
    assert {k: (v["status"], v["attempts"]) for k, v in tasks.items()} == {
        "landsat/RGB.byte.tif": ("succeeded", "1"),
        "s2/SCL.tif": ("succeeded", "2"),
        "landsat/missing.tif": ("failed", "1"),
    }
    assert "not found" in tasks["landsat/missing.tif"]["error"]
    report = json.loads((run_dir / "report.json").read_text())
    assert (report["succeeded"], report["failed"], report["pending"]) == (2, 1, 0)
    assert not list((run_dir / "outcomes").glob("*.json"))  # every outcome merged
    assert len(list((run_dir / "outcomes/merged").glob("*.json"))) == 4
    listed = s3.list_objects_v2(Bucket=DEST, Prefix="cogs/")["Contents"]
    written = [f"cogs/{row[:-4]}{ext}" for row in S3_ROWS[:2] for ext in (".tif", ".jpg", ".json")]
    assert sorted(obj["Key"] for obj in listed) == sorted([*written, "cogs/collection.json"])
    with rasterio.Env(**gdal_config()):
        for row in S3_ROWS[:2]:
            assert cog_validate(f"/vsis3/{DEST}/cogs/{row}", quiet=True)[0]


@pytest.mark.parametrize("local", ["dest", "input_root"])
def test_without_shared_file_system_a_local_path_is_refused_at_launch(local, s3, inputs, tmp_path):
    s3.create_bucket(Bucket=SOURCE)
    s3.create_bucket(Bucket=DEST)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("s2/SCL.tif,\n")
    roots = {"input_root": f"s3://{SOURCE}/raw", "dest": f"s3://{DEST}/cogs"}
    roots[local] = str(inputs if local == "input_root" else tmp_path / "out")
    result = CliRunner().invoke(
        app,
        [
            "cogify",
            str(manifest),
            "--input-root",
            roots["input_root"],
            "--dest",
            roots["dest"],
            "--run-dir",
            str(tmp_path / "run"),
            "--executor",
            "htcondor",
            "--no-shared-filesystem",
        ],
    )
    assert result.exit_code == ExitCode.INVALID, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"task 's2/SCL.tif' has {local} {roots[local]}, a local path" in errors[0]
    assert not (tmp_path / "run").exists()  # refused before anything is written
