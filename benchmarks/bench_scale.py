"""A million tasks on one driver: plan, ledger and skip-existing, then a run of trivial tasks.

Measures, in one process per figure (peak memory is the process's own):

1. ``plan + ledger + skip`` of N trivial tasks (a recipe whose plan makes N tasks with a
   done marker each, a tenth already done in the destination): wall time and peak driver
   memory of a run limited to one task (``--limit 1``: everything but the execution);
2. ``tilefleet plan`` of the whole TTC tile database for one year (2.9 M tiles,
   ``tile-index`` on the TTC grid): wall time and peak memory;
3. a run of N trivial tasks on 2 local workers: wall time and peak driver memory.

Goals (issue: performance and scale): 1 in <= 30 s and <= 1.5 GB for 1,000,000 tasks; 2 in
<= 60 s; 3 with driver memory flat in N. ``--tasks N`` scales the figures down for a quick
look (``python benchmarks/bench_scale.py --tasks 100000``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tilefleet.recipes.base import Recipe, RecipeParams
from tilefleet.task import Task

DATA = Path(os.environ.get("TILEFLEET_TEST_DATA", Path(__file__).parents[2] / "shared/data"))
TILEDB = DATA / "ttc_tiledb/tiledb.parquet"


class TrivialParams(RecipeParams):
    dest: str
    count: int
    folders: int = 1000


class TrivialRecipe(Recipe):
    """N tasks writing one tiny marker each, spread over ``folders`` prefixes."""

    name = "trivial"
    Params = TrivialParams
    default_task_s = 0.001

    def plan(self, params: TrivialParams) -> list[Task]:
        ref = "bench_scale:TrivialRecipe"
        return [
            Task(f"t{i:07d}", ref, {}, params.dest, f"{i % params.folders:04d}/t{i:07d}.json")
            for i in range(params.count)
        ]

    def run(self, task: Task) -> dict[str, Any]:
        from tilefleet.store.objects import open_store

        open_store(task.dest).put_bytes(b"{}", task.marker)
        return {}


def _measure(figure: str, tasks: int, root: Path) -> dict[str, float]:
    """One figure, in this (fresh) process."""
    from tilefleet.engine.run import run_job
    from tilefleet.jobs import build_job

    start = time.perf_counter()
    if figure == "ttc":
        job = build_job(
            {
                "recipe": "tile-index",
                "dest": str(root / "ttc-out"),
                "run_dir": str(root / "ttc-run"),
                "tiles": {
                    "grid": "ttc",
                    "tiledb": str(TILEDB),
                    "year": 2023,
                    "bbox": [-180, -90, 180, 90],
                },
                "dry_run": True,
            }
        )
        planned = run_job(job).planned
    else:
        dest = root / f"{figure}-out"
        for i in range(0, tasks, 10):  # a tenth already done
            marker = dest / f"{i % 1000:04d}/t{i:07d}.json"
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_bytes(b"{}")
        start = time.perf_counter()
        values = {
            "recipe": "bench_scale:TrivialRecipe",
            "dest": str(dest),
            "count": tasks,
            "run_dir": str(root / f"{figure}-run"),
            "workers": 2,
        }
        if figure == "plan":  # plan, skip and fill the ledger; run one task
            values["limit"] = 1
        result = run_job(build_job(values))
        planned = result.planned
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tasks": planned, "wall_s": round(wall, 2), "peak_mb": round(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--run-tasks", type=int, default=None, help="tasks of figure 3")
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
    figures = [("plan", args.tasks), ("ttc", 0), ("run", args.run_tasks or args.tasks // 10)]
    with tempfile.TemporaryDirectory(prefix="tf-bench-scale-") as tmp:
        for figure, tasks in figures:
            if figure == "ttc" and not TILEDB.exists():
                print(f"{figure:>5}: skipped ({TILEDB} not found)")
                continue
            command = [
                sys.executable,
                __file__,
                "--figure",
                figure,
                "--tasks",
                str(tasks),
                "--root",
                tmp,
            ]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.stderr.write(done.stderr[-3000:])
                raise SystemExit(f"figure {figure} failed")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            rate = r["tasks"] / r["wall_s"] if r["wall_s"] else float("inf")
            print(
                f"{figure:>5}: {r['tasks']:>9,} tasks  {r['wall_s']:7.2f} s  "
                f"{rate:>9,.0f} tasks/s  peak {r['peak_mb']:>6,} MB"
            )


if __name__ == "__main__":
    main()
