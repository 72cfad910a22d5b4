"""Executors: a whole tilefleet run against each engine's own bare API, on the same engine.

2,000 short tasks (about 3 ms of real numpy work each: sorting 60,000 random numbers) go through
tilefleet (plan, SQLite ledger with one commit per batch of attempts, the backpressured
submit/wait loop, reports) and through the engine directly (``ProcessPoolExecutor.map``,
``client.map`` + ``gather``, ``ray.get([...])``, ``fexec.map`` + ``get_result``). Both
sides use the same running cluster where there is one, so start-up is outside both
timings (the Dask cluster runs in a process of its own, and each side connects to it with
its own client), and both are warmed up first (one-off imports in this process are no per-task
overhead). Lithops' localhost backend forks a process per call, so it runs a smaller
batch (``--lithops-tasks``); there is no cluster, so each side's time there includes
starting its ``FunctionExecutor`` (same config) and cleaning up after it. Prints
``name: tilefleet X s, peer Y s, ratio R``, each side the best of ``--repeat`` runs: on a
small shared machine single runs vary by 20%.

Each tilefleet line also gives the driver's CPU time per task (``time.process_time`` of
this process around the whole run: plan, ledger, scheduling, reports) and how busy the
workers were: the share of the workers' time, from the first attempt's start to the last
one's end, spent inside attempts (their own start and end times, from the ledger).

Then the same on trivial tasks, where the engine's own cost per task shows most: the
``tile-index`` of 3,229 UTM tiles of 1 km (under a millisecond each: a STAC item written
per tile), against the bare pool mapping the recipe's ``run`` over the same tasks (planned
outside its timing; tilefleet's side plans them too). Then the planning rate: tasks per
second planned and written to a ledger for a 1,000,000-task plan (``Recipe.plan`` +
``Ledger.add_tasks`` alone).

Goals (issue: performance and scale): local at most 1.10x the bare pool, at most 0.15 ms
of driver CPU per task, workers busy at least 90% of the time on trivial tasks; Dask, Ray
and Lithops at most 1.2x.

    .venv/bin/python benchmarks/bench_executors.py [--tasks 2000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))

# The workers import this module for its recipe, so at the top only what the tasks need:
# the driver's modules (job files, ledger, reports) are imported where they are used.
from tilefleet.recipes.base import Recipe  # noqa: E402
from tilefleet.recipes.params import RecipeParams  # noqa: E402
from tilefleet.task import Task  # noqa: E402

SAMPLES = 60_000
#: The trivial tasks: a tile-index of 3,229 tiles.
TRIVIAL_TILES = {"grid": "utm", "size": 1000, "bbox": [6.0, 51.0, 7.0, 51.4]}


def small_work(seed: int) -> float:
    """A few milliseconds of real work, single-threaded (no BLAS threads to oversubscribe
    two cores): the median of random samples, by sorting them."""
    values = np.sort(np.random.default_rng(seed).random(SAMPLES))
    return float(values[SAMPLES // 2])


def index_tile(task: Task) -> None:
    """The bare pool's trivial task: what ``tile-index`` does for one tile."""
    from tilefleet.recipes.tile_index import TileIndexRecipe

    TileIndexRecipe().run(task)


class SpinParams(RecipeParams):
    count: int


class SpinRecipe(Recipe):
    """Tasks that only compute (no inputs, no outputs, no marker): what is timed is the
    engine's overhead around ``small_work``."""

    name = "spin"
    Params = SpinParams
    default_task_s = 0.005
    source_columns = ("tile",)

    def plan(self, params: SpinParams) -> list[Task]:
        return [
            Task(
                f"{i}X{i // 7}Y",
                "bench_executors:SpinRecipe",
                {"seed": i},
                "",
                "",
                source={"tile": str(i)},
            )
            for i in range(params.count)
        ]

    def run(self, task: Task) -> dict[str, Any]:
        return {"value": small_work(task.params["seed"])}


def tilefleet_run(
    executor: str, tasks: int, workers: int, job: dict[str, Any] | None = None, **settings: Any
) -> Timing:
    """A whole run (plan, ledger, execute, reports with timeline.png) of ``tasks`` spin
    tasks (or of ``job``, of as many tasks): its wall time, the part of it that writing the
    reports takes (measured again on the finished run's ledger), the driver's CPU time and
    how busy the workers were."""
    from tilefleet.engine.ledger import Ledger
    from tilefleet.engine.report import write_reports
    from tilefleet.engine.run import run_job
    from tilefleet.jobs import build_job

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp, "run")
        what = dict(job or {"recipe": "bench_executors:SpinRecipe", "count": tasks})
        if "dest" in what:  # "{tmp}/…": below this run's folder
            what["dest"] = what["dest"].format(tmp=tmp)
        values = {**what, "executor": executor, "workers": workers, "run_dir": str(run_dir)}
        started, cpu = time.perf_counter(), time.process_time()
        result = run_job(build_job({**values, **settings}))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert result.report["succeeded"] == tasks, result.report
        ledger = Ledger.in_run_dir(run_dir)
        busy = busy_share(ledger.attempts(), workers)
        started = time.perf_counter()
        write_reports(ledger, run_dir)
        reports = time.perf_counter() - started
        ledger.close()
    return Timing(elapsed, reports, cpu / tasks, busy)


def busy_share(attempts: list[dict[str, Any]], workers: int) -> float:
    """The share of ``workers``' time, from the first attempt's start to the last one's
    end, that they spent inside attempts."""
    started = min(a["started"] for a in attempts)
    finished = max(a["finished"] for a in attempts)
    inside = sum(a["finished"] - a["started"] for a in attempts)
    return inside / (workers * (finished - started))


@dataclass(frozen=True, order=True)
class Timing:
    total: float
    reports: float
    cpu_per_task: float = 0.0
    busy: float = 0.0


def warm_up(executor: str, workers: int, **settings: Any) -> None:
    """A few tasks through tilefleet, untimed, as the peers are warmed: the first run in
    this process imports the driver's modules (reports, plots) once, which is no per-task
    overhead."""
    tilefleet_run(executor, 4 * workers, workers, **settings)


def in_turns(repeat: int, peer, *ours):
    """The best of ``repeat`` runs of ``peer`` and of each of ``ours``, the sides taking
    turns, so that a burst of load elsewhere on the machine weighs on both."""
    peers, runs = [], [[] for _ in ours]
    for _ in range(repeat):
        peers.append(peer())
        for run, times in zip(ours, runs, strict=True):
            times.append(run())
    return min(peers), [min(times) for times in runs]


def report(name: str, ours: Timing, peer: float, note: str = "") -> None:
    print(
        f"{name}: tilefleet {ours.total:.2f} s, peer {peer:.2f} s, ratio {ours.total / peer:.2f}"
        f"  [reports {ours.reports:.2f} s of it; without them ratio "
        f"{(ours.total - ours.reports) / peer:.2f}; driver CPU "
        f"{1000 * ours.cpu_per_task:.3f} ms a task; workers busy {ours.busy:.0%}]{note}",
        flush=True,
    )


def bench_local(tasks: int, workers: int, repeat: int, trivial: bool) -> None:
    def peer(work, inputs) -> float:
        # A fresh pool of spawned workers, as each tilefleet run starts one: both sides pay
        # for starting their workers.
        started = time.perf_counter()
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(work, inputs, chunksize=1))
        return time.perf_counter() - started

    def index_peer() -> float:
        from tilefleet.recipes.tile_index import TileIndexRecipe

        with tempfile.TemporaryDirectory() as tmp:
            params = TileIndexRecipe.Params(dest=tmp, tiles=TRIVIAL_TILES)
            return peer(index_tile, list(TileIndexRecipe().plan(params)))

    warm_up("local", workers)
    index = {"recipe": "tile-index", "dest": "{tmp}/out", "tiles": TRIVIAL_TILES}
    sides = [(f"{tasks} tasks", tasks, None, lambda: peer(small_work, range(tasks)))]
    if trivial:
        sides.append(("3229 trivial tile-index tasks", 3229, index, index_peer))
    for label, count, job, theirs in sides:
        # The sides take turns, so that a burst of load elsewhere weighs on both.
        ours, peers = [], []
        for _ in range(repeat):
            ours.append(tilefleet_run("local", count, workers, job))
            peers.append(theirs())
        report(f"local ({label}, both incl. pool start)", min(ours), min(peers))


@contextmanager
def running_dask_cluster(workers: int) -> Iterator[str]:
    """A LocalCluster in a process of its own, as a running cluster is: both sides connect
    to its scheduler with a client of their own (a client made from the cluster object
    would share the scheduler's event loop in this process, which tilefleet's cannot), and
    the scheduler's work is in neither side's driver CPU. Yields the scheduler's address."""
    code = (
        "import logging, sys, distributed\n"
        f"cluster = distributed.LocalCluster(n_workers={workers}, threads_per_worker=1, "
        "dashboard_address=None, silence_logs=logging.ERROR)\n"
        "print(cluster.scheduler_address, flush=True)\n"
        "sys.stdin.read()\n"  # until this process closes the pipe
        "cluster.close()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def bench_dask(tasks: int, workers: int, repeat: int, wide: int) -> None:
    import distributed

    with running_dask_cluster(workers) as address, distributed.Client(address) as client:

        def peer() -> float:
            started = time.perf_counter()
            client.gather(client.map(small_work, range(tasks), pure=False))
            return time.perf_counter() - started

        peer()  # warm the workers
        warm_up("dask", workers, scheduler=address)
        settings = ({}, {"max_in_flight": wide})
        runs = [
            lambda e=extra: tilefleet_run("dask", tasks, workers, scheduler=address, **e)
            for extra in settings
        ]
        peer_s, ours = in_turns(repeat, peer, *runs)
        for extra, timing in zip(settings, ours, strict=True):
            label = f"max_in_flight {wide}" if extra else "default max_in_flight"
            report(f"dask ({tasks} tasks, same LocalCluster, {label})", timing, peer_s)


def bench_ray(tasks: int, workers: int, repeat: int) -> None:
    import ray

    ray.init(
        num_cpus=workers,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        remote = ray.remote(small_work).options(max_retries=0)

        def peer() -> float:
            started = time.perf_counter()
            ray.get([remote.remote(i) for i in range(tasks)])
            return time.perf_counter() - started

        peer()
        warm_up("ray", workers)
        with ray_tasks_counted() as counts:
            peer_s, (ours,) = in_turns(repeat, peer, lambda: tilefleet_run("ray", tasks, workers))
        # The peer makes one Ray task per call; tilefleet sends short attempts in batches.
        made = "-".join(str(n) for n in sorted({min(counts), max(counts)}))
        note = f" [tilefleet: {tasks} attempts in {made} Ray tasks; peer: {tasks}]"
        report(f"ray ({tasks} tasks, same local Ray)", ours, peer_s, note)
    finally:
        ray.shutdown()


@contextmanager
def ray_tasks_counted() -> Iterator[list[int]]:
    """How many Ray tasks each tilefleet run made, as its executor says when it shuts down
    (a debug line: the driver's only other debug lines are once per run)."""
    from tilefleet.engine.executors.ray import RAY_TASKS_LINE

    counts: list[int] = []

    class Counted(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.msg == RAY_TASKS_LINE:  # "ray: %d attempts sent in %d Ray tasks"
                counts.append(record.args[1])

    logger = logging.getLogger("tilefleet")
    handler, level = Counted(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield counts
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def bench_lithops(tasks: int, workers: int, repeat: int) -> None:
    import lithops

    from tilefleet.engine.executors.lithops import lithops_config

    def peer() -> float:
        # The executor's whole life, as tilefleet's side times its executor's start and
        # shutdown; on the same localhost settings (runner, runtime, processes, monitor).
        started = time.perf_counter()
        fexec = lithops.FunctionExecutor(config=lithops_config(None, workers))
        fexec.get_result(fexec.map(small_work, range(tasks)), show_progressbar=False)
        fexec.clean(force=True, on_exit=True)
        return time.perf_counter() - started

    peer()  # warm: the first job of this process imports and checks the runtime
    warm_up("lithops", workers)
    settings = ({}, {"max_in_flight": tasks})
    runs = [lambda e=extra: tilefleet_run("lithops", tasks, workers, **e) for extra in settings]
    peer_s, ours = in_turns(repeat, peer, *runs)
    for extra, timing in zip(settings, ours, strict=True):
        label = f"max_in_flight {tasks}" if extra else "default max_in_flight"
        report(f"lithops localhost ({tasks} tasks, {label})", timing, peer_s)


def bench_planning(count: int) -> None:
    from tilefleet.engine.ledger import Ledger

    recipe = SpinRecipe()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        tasks = recipe.plan(SpinParams(count=count))
        planned = time.perf_counter() - started
        ledger = Ledger.in_run_dir(Path(tmp))
        ledger.add_tasks(tasks)
        total = time.perf_counter() - started
        ledger.close()
    print(
        f"planning: {count} tasks planned in {planned:.2f} s, planned + written to the "
        f"ledger in {total:.2f} s: {count / total:,.0f} tasks/s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--no-trivial", action="store_true", help="skip the trivial tasks")
    parser.add_argument("--lithops-tasks", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--plan", type=int, default=1_000_000)
    parser.add_argument(
        "--wide", type=int, default=256, help="a larger max_in_flight to try on Dask"
    )
    parser.add_argument("--only", default="local,dask,ray,lithops,planning")
    args = parser.parse_args()
    logging.getLogger("tilefleet").setLevel(logging.WARNING)
    os.environ.setdefault("TILEFLEET_HISTORY", str(Path(tempfile.mkdtemp()) / "history.sqlite"))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    only = set(args.only.split(","))
    if "local" in only:
        bench_local(args.tasks, args.workers, args.repeat, not args.no_trivial)
    if "dask" in only:
        bench_dask(args.tasks, args.workers, args.repeat, args.wide)
    if "ray" in only:
        bench_ray(args.tasks, args.workers, args.repeat)
    if "lithops" in only:
        bench_lithops(args.lithops_tasks, args.workers, args.repeat)
    if "planning" in only:
        bench_planning(args.plan)


if __name__ == "__main__":
    main()
