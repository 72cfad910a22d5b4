"""``local``: a pool of worker processes on this machine, the embedded default.

Workers are started with the ``spawn`` method: the parent holds threads (obstore's runtime,
the progress display) that must not be forked, and a spawned worker sees the environment of
this run (credentials, endpoints) as it is now. Each worker imports the task modules once
when it starts, so their import time does not count against the first task. A worker that
dies (killed, out of memory, segfault in a C library) breaks the pool; the attempts it held
are reported as lost (retryable) and a fresh pool is started for what follows. Workers
keep their temporary files in a folder of the executor's, removed when it shuts down.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool

from tilefleet.engine.executors.base import AttemptExecutor, Completion
from tilefleet.engine.executors.scratch import new_scratch
from tilefleet.engine.worker import execute
from tilefleet.errors import WorkerLostError
from tilefleet.task import Task


class LocalExecutor(AttemptExecutor):
    name = "local"

    def __init__(self, workers: int | None = None, **settings):
        super().__init__(workers, **settings)
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future, tuple[str, int]] = {}
        self._preload: list[str] = ["tilefleet.engine.worker"]
        self._scratch: str | None = None  # the workers' temp folder, removed at shutdown
        self._context: _WorkerContext | None = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            if self._scratch is None:
                self._scratch = new_scratch("local")
            self._context = _WorkerContext()
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=self._context,
                initializer=_start_worker,
                initargs=(tuple(self._preload), self._scratch),
            )
        return self._pool

    def start(self, preload: Sequence[str] = ()) -> None:
        self._preload += [module for module in preload if module not in self._preload]
        self._ensure_pool()

    def submit(self, task: Task, attempt: int) -> None:
        try:
            future = self._ensure_pool().submit(execute, task, attempt)
        except BrokenProcessPool:
            self._replace_pool()
            future = self._ensure_pool().submit(execute, task, attempt)
        self._futures[future] = (task.id, attempt)

    def wait(self, timeout: float | None) -> list[Completion]:
        if not self._futures:
            return []
        done, _ = wait_futures(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        completions = []
        broken = False
        for future in done:
            task_id, attempt = self._futures.pop(future)
            try:
                completions.append(Completion(task_id, attempt, outcome=future.result()))
            except BrokenProcessPool as exc:
                broken = True
                lost = WorkerLostError(f"worker process died ({exc})")
                completions.append(Completion(task_id, attempt, lost=lost))
            except Exception as exc:  # e.g. a task that cannot be pickled
                completions.append(Completion(task_id, attempt, lost=exc))
        if broken:
            self._replace_pool()
        return completions

    def _replace_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def shutdown(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
            if cancel and self._context is not None:
                self._context.terminate_workers()
            self._pool = None
        self._futures.clear()
        if self._scratch is not None:  # what killed workers left behind goes with it
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def _start_worker(modules: tuple[str, ...], scratch: str) -> None:
    # Temporary files of tasks (Python's and GDAL's) go to the executor's own folder, so a
    # worker killed mid-task leaves nothing behind once the run ends.
    os.environ["TMPDIR"] = scratch
    os.environ["CPL_TMPDIR"] = scratch
    tempfile.tempdir = scratch
    for module in modules:
        importlib.import_module(module)


class _WorkerContext:
    """The ``spawn`` context, keeping the worker processes it starts: cancelling a pool
    drops its queued work but leaves running attempts, and an interrupt must stop those."""

    def __init__(self):
        self._spawn = multiprocessing.get_context("spawn")
        self._processes: weakref.WeakSet = weakref.WeakSet()

    def __getattr__(self, name: str):
        return getattr(self._spawn, name)

    def Process(self, *args, **kwargs):  # noqa: N802 - the multiprocessing context's name
        process = self._spawn.Process(*args, **kwargs)
        self._processes.add(process)
        return process

    def terminate_workers(self) -> None:
        for process in list(self._processes):
            if process.is_alive():
                process.terminate()
