"""The local executor's own workers, driven through its interface as the engine drives it:
short attempts are held ahead by each worker, a worker that dies loses only the attempt it
was running (those it held but had not started run elsewhere under their own numbers), a
timeout stops only the worker of the overdue attempt, and workers import what their tasks
need, not the parent's main script."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from engine_recipes import FlakyParams, FlakyRecipe
from executors.hanging_recipe import HangingParams, HangingRecipe
from executors.threads_recipe import BLOCK_BYTES, PagesRecipe, ThreadsRecipe
from tilefleet.engine.executors.base import Completion
from tilefleet.engine.executors.local import LocalExecutor
from tilefleet.engine.executors.worker_env import MALLOC_SETTINGS, THREAD_POOLS
from tilefleet.engine.worker_process import MessageReader, encode
from tilefleet.errors import TaskTimeoutError, WorkerLostError

TESTS = Path(__file__).resolve().parents[1]


def collect(executor: LocalExecutor, count: int, within: float = 60.0) -> list[Completion]:
    done: list[Completion] = []
    deadline = time.monotonic() + within
    while len(done) < count and time.monotonic() < deadline:
        done += executor.wait(1.0)
    assert len(done) == count, done
    return done


def flaky_tasks(tmp_path, **values):
    params = FlakyParams(dest=str(tmp_path / "dest"), state_dir=str(tmp_path / "st"), **values)
    return list(FlakyRecipe().plan(params))


def test_a_dying_worker_loses_only_the_attempt_it_ran_not_those_it_held(tmp_path):
    tasks = flaky_tasks(tmp_path, count=40, mode="crash", fail_ids=["t025"], fail_times=1)
    executor = LocalExecutor(workers=1)
    executor.start(preload=("engine_recipes",))
    try:
        assert executor.default_max_in_flight == 2  # one at a time until they prove short
        executor.submit_many([(task, 1) for task in tasks[:5]])
        first = collect(executor, 5)
        assert executor.default_max_in_flight >= 8  # short: the worker holds several
        executor.submit_many([(task, 1) for task in tasks[5:]])
        rest = collect(executor, 35)
    finally:
        executor.shutdown(cancel=True)
    (lost,) = [c for c in rest if c.lost is not None]
    assert (lost.task_id, lost.attempt) == ("t025", 1)
    assert isinstance(lost.lost, WorkerLostError) and "exit code 17" in str(lost.lost)
    ran = {c.task_id: c.outcome for c in first + rest if c.outcome is not None}
    assert sorted(ran) == sorted(t.id for t in tasks if t.id != "t025")
    assert all(o.ok and o.attempt == 1 for o in ran.values())
    # The attempts it held behind t025 ran in the worker that took its place.
    before, after = ran["t024"].worker, ran["t026"].worker
    assert before != after and ran["t039"].worker == after
    assert all((tmp_path / f"dest/out/{i}.txt").is_file() for i in ran)


def test_a_timeout_stops_only_the_worker_of_the_overdue_attempt(tmp_path):
    params = HangingParams(
        dest=str(tmp_path / "dest"), state_dir=str(tmp_path / "st"), count=6, fail_ids=["t001"]
    )
    tasks = list(HangingRecipe().plan(params))
    executor = LocalExecutor(workers=2)
    executor.task_timeout = 1.5
    executor.start(preload=("executors.hanging_recipe",))
    try:
        executor.submit_many([(task, 3) for task in tasks])
        done = collect(executor, 6)
    finally:
        executor.shutdown(cancel=True)
    by_id = {c.task_id: c for c in done}
    stopped = by_id.pop("t001")
    assert isinstance(stopped.lost, TaskTimeoutError)
    assert str(stopped.lost) == "timed out after 1.5 s" and stopped.attempt == 3
    assert all(c.outcome is not None and c.outcome.ok for c in by_id.values())
    assert all(c.attempt == 3 for c in by_id.values())  # none lost an attempt to the stop


def metrics_of_a_workers_tasks(recipe, tmp_path, count: int = 1) -> list[dict]:
    """The metrics of ``count`` tasks of ``recipe`` (of ``executors.threads_recipe``) run
    one after another by one local worker, in plan order."""
    params = FlakyParams(dest=str(tmp_path / "dest"), state_dir=str(tmp_path / "st"), count=count)
    tasks = list(recipe.plan(params))
    executor = LocalExecutor(workers=1)
    executor.start(preload=("executors.threads_recipe",))
    try:
        executor.submit_many([(task, 1) for task in tasks])
        done = collect(executor, count)
    finally:
        executor.shutdown(cancel=True)
    assert all(d.outcome is not None and d.outcome.ok for d in done), done
    by_task = {d.outcome.task_id: d.outcome.metrics for d in done}
    return [by_task[task.id] for task in tasks]


def openblas_threads_of_a_worker(tmp_path) -> int:
    (metrics,) = metrics_of_a_workers_tasks(ThreadsRecipe(), tmp_path)
    return metrics["openblas"]


def test_a_worker_runs_numerical_libraries_on_one_thread_unless_the_user_says(
    tmp_path, monkeypatch
):
    # Tasks side by side are the parallelism: a BLAS pool per worker oversubscribes.
    for name in THREAD_POOLS:
        monkeypatch.delenv(name, raising=False)
    assert openblas_threads_of_a_worker(tmp_path / "default") == 1
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert openblas_threads_of_a_worker(tmp_path / "set") == 2


def page_faults_of_a_workers_tasks(tmp_path) -> list[int]:
    return [m["faults"] for m in metrics_of_a_workers_tasks(PagesRecipe(), tmp_path, 3)]


def test_a_worker_reuses_the_memory_its_last_task_freed_unless_the_user_says(tmp_path, monkeypatch):
    # A raster task's arrays are tens of MB; glibc's default maps each afresh, so every
    # task of a worker faults in and zeroes all its pages again.
    for name in MALLOC_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    huge_pages = BLOCK_BYTES // (2 << 20)
    first, *later = page_faults_of_a_workers_tasks(tmp_path / "default")
    assert first >= huge_pages  # a fresh block is faulted in (by huge pages, where they are on)
    assert max(later) < first // 4, (first, later)
    # The user's own settings win: glibc's per-block mapping is back.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
    first, *later = page_faults_of_a_workers_tasks(tmp_path / "set")
    assert min(later) > first // 2, (first, later)


def test_messages_cut_anywhere_are_read_whole(tmp_path):
    ours, theirs = socket.socketpair()
    reader = MessageReader(ours)
    stream = b"".join(encode(m) for m in ("first", {"n": 2}, list(range(1000))))
    for cut in (3, 9, len(stream) - 5):  # inside a length, inside a pickle, near the end
        theirs.sendall(stream[:cut])
        got = reader.read(block=False)
        theirs.sendall(stream[cut:])
        got += reader.read(block=False)
        assert got == ["first", {"n": 2}, list(range(1000))]
    theirs.close()
    assert reader.read(block=False) == [] and reader.ended
    ours.close()


SCRIPT = """\
import sys
sys.path.insert(0, {tests!r})
with open({imports!r}, "a") as seen:
    seen.write("imported\\n")  # each process that imports this script adds a line

import tilefleet
from engine_recipes import FlakyRecipe


class ScriptRecipe(FlakyRecipe):  # its tasks name it __main__:ScriptRecipe
    name = "script"


if __name__ == "__main__":
    result = tilefleet.run(
        {recipe!r}, dest={dest!r}, state_dir={state!r}, run_dir={run!r},
        count=4, mode="ok", workers=2, progress=False,
    )
    print(result.counts["succeeded"])
"""


def run_script(tmp_path: Path, recipe: str) -> tuple[str, list[str]]:
    tmp_path.mkdir()
    imports = tmp_path / "imports.txt"
    script = tmp_path / "job_script.py"
    script.write_text(
        SCRIPT.format(
            tests=str(TESTS),
            imports=str(imports),
            recipe=recipe,
            dest=str(tmp_path / "dest"),
            state=str(tmp_path / "st"),
            run=str(tmp_path / "run"),
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), imports.read_text().splitlines()


def test_workers_do_not_import_the_main_script_unless_its_recipe_is_there(tmp_path):
    succeeded, imports = run_script(tmp_path / "module", "engine_recipes:FlakyRecipe")
    assert succeeded == "4" and len(imports) == 1  # the driver alone
    succeeded, imports = run_script(tmp_path / "script", "__main__:ScriptRecipe")
    assert succeeded == "4" and len(imports) == 3  # the driver and each of its 2 workers
