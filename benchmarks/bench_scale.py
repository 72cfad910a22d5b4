"""A million tasks on one driver: plan, ledger and skip-existing, then runs of trivial tasks.

Measures, in one fresh process per figure (peak memory is that process's own, the driver):

1. ``plan``: plan + ledger + skip of N trivial tasks (a recipe whose plan is a generator of
   N tasks with a done marker each over 1,000 folders, a tenth already done in the
   destination), in a run limited to one task (``--limit 1``: everything but the
   execution, the reports included): wall time, driver CPU time and peak driver memory;
2. ``ttc``: ``tilefleet plan`` (a dry run) of the whole TTC tile database for one year
   (2.9 M tiles, ``tile-index`` on the TTC grid);
3. ``run``: runs of growing numbers of trivial tasks on 2 local workers: the driver's
   resident memory as the tasks start (after plan, ledger and skip), its peak while they
   run and its peak while the reports are written (sampled every 20 ms by a thread), and
   each as a ratio to the smallest run, and the growth of each per planned task (kB/task)
   from the smallest run to the largest. Flat means about 0 kB/task.

Goals (issue: performance and scale): 1 in <= 30 s and <= 1.5 GB for 1,000,000 tasks;
2 in <= 60 s; 3 with the driver's memory during the run and the reports flat in N. On a
shared machine the wall time also counts other processes' work: the CPU time is this
process's own.
``--tasks N`` scales figure 1 down for a quick look, ``--run-tasks 20000,100000`` sets the
runs of figure 3.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tilefleet.engine.callbacks import RunCallback
from tilefleet.recipes.base import Recipe
from tilefleet.recipes.params import RecipeParams
from tilefleet.task import Task

DATA = Path(os.environ.get("TILEFLEET_TEST_DATA", Path(__file__).parents[2] / "shared/data"))
TILEDB = DATA / "ttc_tiledb/tiledb.parquet"
PAGE = os.sysconf("SC_PAGE_SIZE")


class TrivialParams(RecipeParams):
    dest: str
    count: int
    folders: int = 1000


class TrivialRecipe(Recipe):
    """N tasks writing one tiny marker each, spread over ``folders`` prefixes."""

    name = "trivial"
    Params = TrivialParams
    default_task_s = 0.001

    def plan(self, params: TrivialParams) -> Iterator[Task]:
        ref = "bench_scale:TrivialRecipe"
        for i in range(params.count):
            yield Task(f"t{i:07d}", ref, {}, params.dest, f"{i % params.folders:04d}/t{i:07d}.json")

    def run(self, task: Task) -> dict[str, Any]:
        from tilefleet.store.objects import open_store

        open_store(task.dest).put_bytes(b"{}", task.marker)
        return {}


def resident_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


class MemoryByPhase(RunCallback):
    """The driver's resident memory, sampled every 20 ms by a thread: its value when the
    tasks start (after the plan, the ledger and the skip) and its peak while they run and
    while the reports are written (``reports`` wraps the engine's ``write_reports``)."""

    def __init__(self) -> None:
        self.phase = "plan"
        self.peaks: dict[str, float] = {}
        self.at_start = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_forever, daemon=True)
        self._thread.start()

    def on_run_start(self, run) -> None:
        self.at_start = resident_mb()
        self.phase = "run"

    def reports(self, write_reports):
        def written(*args, **kwargs):
            self._sample()
            self.phase = "reports"
            try:
                return write_reports(*args, **kwargs)
            finally:
                self._sample()
                self.phase = "after"

        return written

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), resident_mb())

    def _sample_forever(self) -> None:
        while not self._stop.wait(0.02):
            self._sample()


def _measure(figure: str, tasks: int, root: Path) -> dict[str, float]:
    """One figure, in this (fresh) process."""
    from tilefleet.engine import run as engine_run
    from tilefleet.jobs import build_job

    during = MemoryByPhase()
    engine_run.write_reports = during.reports(engine_run.write_reports)
    if figure == "ttc":
        values = {
            "recipe": "tile-index",
            "dest": str(root / "ttc-out"),
            "run_dir": str(root / "ttc-run"),
            "tiles": {"grid": "ttc", "tiledb": str(TILEDB), "year": 2023},
            "dry_run": True,
        }
        values["tiles"]["bbox"] = [-180, -90, 180, 90]
    else:
        dest = root / f"{figure}-{tasks}-out"
        if figure == "plan":
            for i in range(0, tasks, 10):  # a tenth already done
                marker = dest / f"{i % 1000:04d}/t{i:07d}.json"
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_bytes(b"{}")
        values = {
            "recipe": "bench_scale:TrivialRecipe",
            "dest": str(dest),
            "count": tasks,
            "run_dir": str(root / f"{figure}-{tasks}-run"),
            "workers": 2,
        }
        if figure == "plan":  # plan, skip and fill the ledger; run one task
            values["limit"] = 1
    cpu = time.process_time()
    start = time.perf_counter()
    result = engine_run.run_job(build_job(values), callbacks=[during])
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    during.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "tasks": result.planned,
        "succeeded": result.counts["succeeded"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_mb": round(peak),
        "at_start_mb": round(during.at_start, 1),
        "during_run_mb": round(during.peaks.get("run", 0), 1),
        "reports_mb": round(during.peaks.get("reports", 0), 1),
    }


def _in_fresh_process(figure: str, tasks: int, root: str, env: dict) -> dict[str, Any]:
    command = [sys.executable, __file__, "--figure", figure, "--tasks", str(tasks), "--root", root]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"figure {figure} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks of figure 1")
    parser.add_argument("--run-tasks", default="20000,100000", help="tasks of the runs of figure 3")
    parser.add_argument("--figures", default="plan,ttc,run", help="which figures to measure")
    parser.add_argument("--figure", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.figure:
        print(json.dumps(_measure(args.figure, args.tasks, Path(args.root))))
        return
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    wanted = args.figures.split(",")
    figures = [("plan", args.tasks)] if "plan" in wanted else []
    figures += [("ttc", 0)] if "ttc" in wanted else []
    if "run" in wanted:
        figures += [("run", int(n)) for n in args.run_tasks.split(",")]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tf-bench-scale-") as tmp:
        for figure, tasks in figures:
            if figure == "ttc" and not TILEDB.exists():
                print(f"{figure:>5}: skipped ({TILEDB} not found)")
                continue
            r = _in_fresh_process(figure, tasks, tmp, env)
            rate = r["tasks"] / r["wall_s"] if r["wall_s"] else float("inf")
            line = (
                f"{figure:>5}: {r['tasks']:>9,} tasks  {r['wall_s']:7.2f} s wall  "
                f"{r['cpu_s']:7.2f} s cpu  {rate:>9,.0f} tasks/s  peak {r['peak_mb']:>6,} MB"
            )
            if figure == "run":
                line += (
                    f"\n       driver memory: {r['at_start_mb']:,} MB as the tasks start, "
                    f"peak {r['during_run_mb']:,} MB while {r['succeeded']:,} run, "
                    f"peak {r['reports_mb']:,} MB while the reports are written"
                )
                runs.append(r)
            print(line, flush=True)
    for r in runs[1:]:
        first = runs[0]
        growth = (
            r["during_run_mb"] - r["at_start_mb"],
            first["during_run_mb"] - first["at_start_mb"],
        )
        print(
            f"  run of {r['tasks']:,} / {first['tasks']:,} tasks "
            f"({r['tasks'] / first['tasks']:.0f}x): driver memory during the run "
            f"{r['during_run_mb'] / first['during_run_mb']:.2f}x "
            f"(growth while the tasks run: {growth[0]:+,.1f} MB vs {growth[1]:+,.1f} MB), "
            f"during the reports {r['reports_mb'] / first['reports_mb']:.2f}x"
        )
    if len(runs) > 1:
        print(_growth_per_task(runs[0], runs[-1]))


def _growth_per_task(small: dict[str, Any], large: dict[str, Any]) -> str:
    """How much more driver memory each planned task costs, from the smallest run to the
    largest, in each phase: "flat" as a number (0 kB/task)."""
    more = large["tasks"] - small["tasks"]

    def per_task(key: str) -> str:
        return f"{(large[key] - small[key]) * 1024 / more:+.3f}"

    return (
        f"  growth per planned task from {small['tasks']:,} to {large['tasks']:,} tasks: "
        f"{per_task('at_start_mb')} kB as the tasks start, "
        f"{per_task('during_run_mb')} kB while they run, "
        f"{per_task('reports_mb')} kB while the reports are written"
    )


if __name__ == "__main__":
    main()
