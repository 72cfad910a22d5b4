"""``local``: a pool of worker processes on this machine, the embedded default.

Workers are started with the ``spawn`` method: the parent holds threads (obstore's runtime,
the progress display) that must not be forked, and a spawned worker sees the environment of
this run (credentials, endpoints) as it is now. Each worker imports the task modules once
when it starts, so their import time does not count against the first task. A worker that
dies (killed, out of memory, segfault in a C library) breaks the pool; the attempts it held
are reported as lost (retryable) and a fresh pool is started for what follows. Workers
keep their temporary files in a folder of the executor's, removed when it shuts down.

With a task timeout, each worker says which attempt it starts and when; an attempt that
runs longer is stopped by killing its worker (a read blocked in C, on a FIFO or a stalled
socket, cannot be interrupted any other way) and fails, retryable, "timed out after N s".
Killing one worker breaks the pool, so the other attempts it held are started again in a
fresh pool under the same attempt numbers: they lose time, not an attempt.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool

from tilefleet.engine.executors.base import AttemptExecutor, Completion
from tilefleet.engine.executors.scratch import new_scratch
from tilefleet.engine.worker import execute
from tilefleet.errors import TaskTimeoutError, WorkerLostError
from tilefleet.task import Outcome, Task

#: Longest the executor waits for a pool to notice the worker it killed.
_BREAK_WAIT_S = 10.0


class LocalExecutor(AttemptExecutor):
    name = "local"

    def __init__(self, workers: int | None = None, **settings):
        super().__init__(workers, **settings)
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future, tuple[Task, int]] = {}
        self._preload: list[str] = ["tilefleet.engine.worker"]
        self._scratch: str | None = None  # the workers' temp folder, removed at shutdown
        self._context: _WorkerContext | None = None
        self._starts = None  # queue of (task id, attempt, pid, time) sent by the workers
        self._running: dict[tuple[str, int], tuple[int, float]] = {}

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            if self._scratch is None:
                self._scratch = new_scratch("local")
            self._context = _WorkerContext()
            self._starts = self._context.SimpleQueue()
            self._running.clear()
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=self._context,
                initializer=_start_worker,
                initargs=(tuple(self._preload), self._scratch, self._starts),
            )
        return self._pool

    def start(self, preload: Sequence[str] = ()) -> None:
        self._preload += [module for module in preload if module not in self._preload]
        self._ensure_pool()

    def submit(self, task: Task, attempt: int) -> None:
        try:
            future = self._ensure_pool().submit(_run_attempt, task, attempt, self.max_task_memory)
        except BrokenProcessPool:
            self._replace_pool()
            future = self._ensure_pool().submit(_run_attempt, task, attempt, self.max_task_memory)
        self._futures[future] = (task, attempt)

    def wait(self, timeout: float | None) -> list[Completion]:
        if not self._futures:
            return []
        if self.task_timeout is not None:
            timeout = self._until_next_deadline(timeout)
        done, _ = wait_futures(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        timed_out = self._stop_overdue() if self.task_timeout is not None else set()
        if timed_out:  # the pool breaks once it notices: collect every attempt it held
            done, _ = wait_futures(list(self._futures), timeout=_BREAK_WAIT_S)
        completions, again = [], []
        broken = False
        for future in done:
            task, attempt = self._futures.pop(future)
            self._running.pop((task.id, attempt), None)
            try:
                completions.append(Completion(task.id, attempt, outcome=future.result()))
            except BrokenProcessPool as exc:
                broken = True
                if (task.id, attempt) in timed_out:
                    lost = TaskTimeoutError(f"timed out after {self.task_timeout:g} s")
                    completions.append(Completion(task.id, attempt, lost=lost))
                elif timed_out:  # another attempt's worker was killed: run this one again
                    again.append((task, attempt))
                else:
                    lost = WorkerLostError(f"worker process died ({exc})")
                    completions.append(Completion(task.id, attempt, lost=lost))
            except Exception as exc:  # e.g. a task that cannot be pickled
                completions.append(Completion(task.id, attempt, lost=exc))
        if broken:
            self._replace_pool()
        for task, attempt in again:
            self.submit(task, attempt)
        return completions

    def _note_starts(self) -> None:
        """Read which worker started which attempt, from the workers' queue."""
        while self._starts is not None and not self._starts.empty():
            task_id, attempt, pid, started = self._starts.get()
            self._running[(task_id, attempt)] = (pid, started)

    def _until_next_deadline(self, timeout: float | None) -> float | None:
        self._note_starts()
        if not self._running:
            return timeout
        first = min(started for _pid, started in self._running.values())
        left = max(0.0, first + self.task_timeout - time.time())
        return left if timeout is None else min(timeout, left)

    def _stop_overdue(self) -> set[tuple[str, int]]:
        """Kill the workers of attempts that ran past the timeout; the attempts killed."""
        self._note_starts()
        in_flight = {
            (task.id, attempt): future for future, (task, attempt) in self._futures.items()
        }
        overdue = set()
        for key, (pid, started) in list(self._running.items()):
            future = in_flight.get(key)
            if future is None or future.done():
                self._running.pop(key)
                continue
            if time.time() - started >= self.task_timeout:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue  # died on its own: reported as a lost worker
                overdue.add(key)
        return overdue

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


_starts = None  # in a worker: the queue telling the executor which attempt runs here


def _start_worker(modules: tuple[str, ...], scratch: str, starts) -> None:
    global _starts
    _starts = starts
    # Temporary files of tasks (Python's and GDAL's) go to the executor's own folder, so a
    # worker killed mid-task leaves nothing behind once the run ends.
    os.environ["TMPDIR"] = scratch
    os.environ["CPL_TMPDIR"] = scratch
    tempfile.tempdir = scratch
    for module in modules:
        importlib.import_module(module)


def _run_attempt(task: Task, attempt: int, max_memory_mb: int | None) -> Outcome:
    """In a worker: say which attempt starts here and when, then run it."""
    if _starts is not None:
        _starts.put((task.id, attempt, os.getpid(), time.time()))
    return execute(task, attempt, max_memory_mb)


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
