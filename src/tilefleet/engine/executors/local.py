"""``local``: worker processes on this machine, the embedded default.

Workers are fresh interpreters, never forks: the parent holds threads (obstore's runtime,
the progress display) that must not be forked, and a new worker sees the environment of
this run (credentials, endpoints) as it is now. Each imports the task modules once when it
starts (and nothing else: not the parent's main script), so their import time does not
count against the first task, and keeps its temporary files in a folder of the
executor's, removed when it shuts down.

Each worker has a socket of its own (:mod:`~tilefleet.engine.worker_process`): the
executor hands it attempts in bulk, once it is down to half of what it may hold, and it
sends back each outcome before it starts the next attempt. How many a worker holds follows
the tasks: one at a time while they take long (so that no
attempt waits behind a long one while another worker idles), more as they get short,
enough for about ``AHEAD_S`` of work, so that a worker never waits on the driver. The
executor feeds its workers from what it was handed while the engine records outcomes, and
returns outcomes in batches of up to ``LINGER_S``: the engine's work is per batch, not per
attempt.

A worker that dies (killed, out of memory, segfault in a C library) loses the attempt it
was running, reported lost (retryable); the attempts it held but had not started go to the
other workers under their own attempt numbers, and a fresh worker takes its place. An
attempt that runs past the task timeout is stopped by killing its worker (a read blocked in
C, on a FIFO or a stalled socket, cannot be interrupted any other way) and fails,
retryable, "timed out after N s"; the other workers do not notice.
"""

from __future__ import annotations

import os
import pickle
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from tilefleet.engine.executors.base import AttemptExecutor, Completion
from tilefleet.engine.executors.scratch import new_scratch
from tilefleet.engine.executors.worker_env import local_worker_environment
from tilefleet.engine.worker_process import (
    BOOTSTRAP,
    MessageReader,
    encode,
    outcome_from,
    worker_settings,
)
from tilefleet.errors import TaskTimeoutError, WorkerLostError
from tilefleet.task import Outcome, Task

#: Seconds of work each worker holds once tasks are short (see the module's docstring).
AHEAD_S = 0.08
#: The most attempts one worker holds, and the most bytes of them (well under a socket's
#: buffer: sending to a worker never waits on it).
MOST_HELD = 100
MOST_HELD_BYTES = 64 * 1024
#: Longest ``wait`` goes on gathering outcomes after the first, so the engine records a
#: batch at a time.
LINGER_S = 0.025
#: On a worker's command line: how to tell tilefleet's workers among processes.
WORKER_MARK = "tilefleet-local-worker"
#: Longest the executor waits for a worker it stopped to be gone.
STOP_WAIT_S = 10.0
#: Weight of the newest attempt in the typical duration of an attempt.
_NEWEST_WEIGHT = 0.2


@dataclass(eq=False)
class _Worker:
    """One worker process as the executor sees it: the attempts it holds, in the order it
    runs them (each with its share of the bytes sent), and since when the first runs."""

    process: subprocess.Popen
    sock: socket.socket
    reader: MessageReader
    exited: int | None  # a descriptor readable once the process has ended (Linux), if any
    held: deque[tuple[Task, int, int]] = field(default_factory=deque)
    held_bytes: int = 0
    ready: bool = False
    running_since: float | None = None  # time.time() at which held[0] started
    stopped_for: tuple[str, int] | None = None  # the attempt its timeout killed it for


class LocalExecutor(AttemptExecutor):
    name = "local"
    in_flight_help = "2, more for short tasks"
    starts_while_planning = True  # spawning is non-blocking; ``start`` only tops the pool up

    def __init__(self, workers: int | None = None, **settings):
        super().__init__(workers, **settings)
        self._preload: list[str] = ["tilefleet.engine.worker"]
        self._scratch: str | None = None  # the workers' temp folder, removed at shutdown
        self._selector: selectors.BaseSelector | None = None
        self._pool: list[_Worker] = []
        self._backlog: deque[tuple[Task, int]] = deque()  # handed over, not sent yet
        self._done: list[Completion] = []  # finished, not returned by wait yet
        self._typical_s: float | None = None  # of one attempt, from the latest ones

    @property
    def default_max_in_flight(self) -> int:
        """Twice what the workers hold: as much again waits here to be sent."""
        return 2 * self.workers * self._depth()

    def _depth(self) -> int:
        """Attempts each worker holds: one until attempts are known to be short."""
        if self._typical_s is None:
            return 1
        return max(1, min(MOST_HELD, 1 + int(AHEAD_S / max(self._typical_s, 1e-6))))

    # -- starting and stopping -----------------------------------------------------------
    def start(self, preload: Sequence[str] = ()) -> None:
        self._preload += [module for module in preload if module not in self._preload]
        self._ensure_pool()

    def _ensure_pool(self) -> None:
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            if self._scratch is None:
                self._scratch = new_scratch("local")
        while len(self._pool) < self.workers:
            self._start_worker()

    def _start_worker(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", BOOTSTRAP, str(theirs.fileno()), WORKER_MARK],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=local_worker_environment(),
            )
        finally:
            theirs.close()  # the worker's end lives in the worker only: its exit ends it
        ours.sendall(encode(worker_settings(self._preload, self._scratch)))
        worker = _Worker(process, ours, MessageReader(ours), _exit_descriptor(process.pid))
        self._selector.register(ours, selectors.EVENT_READ, worker)
        if worker.exited is not None:
            self._selector.register(worker.exited, selectors.EVENT_READ, worker)
        self._pool.append(worker)

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the workers: at once with ``cancel``, else once each ends the attempt it
        runs; then remove their scratch folder."""
        pool, self._pool = self._pool, []
        for worker in pool:
            if cancel:
                worker.process.terminate()
            else:
                worker.sock.shutdown(socket.SHUT_WR)  # the worker ends when it reads this
        deadline = time.monotonic() + STOP_WAIT_S
        for worker in pool:
            _reap(worker, max(0.0, deadline - time.monotonic()))
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        self._backlog.clear()
        self._done.clear()
        if self._scratch is not None:  # what killed workers left behind goes with it
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # -- attempts out ----------------------------------------------------------------------
    def submit(self, task: Task, attempt: int) -> None:
        self.submit_many([(task, attempt)])

    def submit_many(self, attempts: Sequence[tuple[Task, int]]) -> None:
        self._ensure_pool()
        self._backlog.extend(attempts)
        self._dispatch()

    def _dispatch(self) -> None:
        """Send each worker attempts from the backlog, up to what it may hold."""
        if not self._backlog:
            return
        depth = self._depth()
        for worker in sorted(self._pool, key=lambda w: len(w.held)):
            if len(worker.held) * 2 > depth:  # still has work: it gets more in bulk, later
                continue
            room = min(depth - len(worker.held), len(self._backlog))
            while room > 0:
                batch = [self._backlog.popleft() for _ in range(room)]
                message = self._encode(batch)
                if message is None:  # some could not be pickled: try the others again
                    room = min(room, len(self._backlog))
                    continue
                if worker.held and worker.held_bytes + len(message) > MOST_HELD_BYTES:
                    self._backlog.extendleft(reversed(batch))
                    room //= 2  # large tasks: fewer at a time
                    continue
                self._send(worker, batch, message)
                break
            if not self._backlog:
                return

    def _encode(self, batch: list[tuple[Task, int]]) -> bytes | None:
        """The message of ``batch``, or None once the attempts that cannot be pickled
        are reported lost and the others put back in the backlog."""
        try:
            return encode((self.max_task_memory, batch))
        except Exception:
            kept = []
            for task, attempt in batch:
                try:
                    pickle.dumps(task)
                except Exception as exc:
                    self._done.append(Completion(task.id, attempt, lost=exc))
                else:
                    kept.append((task, attempt))
            self._backlog.extendleft(reversed(kept))
            return None

    def _send(self, worker: _Worker, batch: list[tuple[Task, int]], message: bytes) -> None:
        idle = not worker.held
        share = len(message) // len(batch)
        worker.held.extend((task, attempt, share) for task, attempt in batch)
        worker.held_bytes += share * len(batch)
        if idle and worker.ready:
            worker.running_since = time.time()
        try:
            worker.sock.sendall(message)
        except OSError:  # it died: what it held is settled with its death
            self._lost(worker)

    # -- outcomes in -----------------------------------------------------------------------
    def wait(self, timeout: float | None) -> list[Completion]:
        if not (self._done or self._backlog or any(w.held for w in self._pool)):
            return []
        clock = time.monotonic
        end = None if timeout is None else clock() + timeout
        first = clock() if self._done else None
        while True:
            self._dispatch()
            if self._done:
                first = first or clock()
                if self._batch_ready(first):
                    break
            limit = end if first is None else min(end or float("inf"), first + LINGER_S)
            left = None if limit is None else max(0.0, limit - clock())
            if self.task_timeout is not None:
                overdue_in = self._until_overdue()
                left = overdue_in if left is None else min(left, overdue_in)
            if first is not None and left and self._all_have_work_queued():
                # Gathering a batch while every worker has work in hand: sleep, then take
                # every outcome that came meanwhile at once rather than each as it comes.
                time.sleep(left)
                left = 0.0
            for key, _ in self._selector.select(left):
                worker = key.data
                if worker not in self._pool:  # settled already, by its other key
                    continue
                if key.fileobj is worker.sock:
                    self._read(worker)
                else:
                    self._lost(worker)
            if self.task_timeout is not None:
                self._stop_overdue()
            if end is not None and clock() >= end:
                break
        done, self._done = self._done, []
        return done

    def _all_have_work_queued(self) -> bool:
        """Whether no worker can run dry before the next look: each holds one attempt
        beyond the one it runs, or there is nothing more to send."""
        return not self._backlog or all(len(w.held) >= 2 for w in self._pool)

    def _batch_ready(self, first: float) -> bool:
        """Whether to hand the outcomes gathered since ``first`` over now: when nothing
        else is in hand, when the backlog runs short, or after ``LINGER_S``."""
        if not self._backlog and not any(w.held for w in self._pool):
            return True
        if len(self._backlog) * 4 < self.workers * self._depth():
            return True
        return time.monotonic() - first >= LINGER_S

    def _read(self, worker: _Worker) -> None:
        for message in worker.reader.read(block=False):
            if isinstance(message, list):  # outcomes, in the order they ended
                for fields in message:
                    self._finished(worker, outcome_from(fields))
            else:  # ("ready", pid, time): its imports are done
                worker.ready = True
                if worker.held:
                    worker.running_since = message[2]
        if worker.reader.ended:
            self._lost(worker)

    def _finished(self, worker: _Worker, outcome: Outcome) -> None:
        key = (outcome.task_id, outcome.attempt)
        for index, (task, attempt, share) in enumerate(worker.held):
            if (task.id, attempt) == key:
                del worker.held[index]
                worker.held_bytes -= share
                break
        # The next one it holds started as this one ended.
        worker.running_since = outcome.finished if worker.held else None
        duration = max(outcome.duration, 0.0)
        typical = self._typical_s
        self._typical_s = (
            duration if typical is None else typical + _NEWEST_WEIGHT * (duration - typical)
        )
        self._done.append(Completion(outcome.task_id, outcome.attempt, outcome=outcome))

    def _lost(self, worker: _Worker) -> None:
        """Settle a dead worker (once): what it reported counts, the attempt it ran is
        lost (or timed out), the attempts it had not started go back to the backlog, and a
        fresh worker takes its place."""
        if worker not in self._pool:
            return
        self._pool.remove(worker)
        self._selector.unregister(worker.sock)
        if worker.exited is not None:
            self._selector.unregister(worker.exited)
        try:  # its stream ended but it may live on: then it is stopped
            worker.process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        while not worker.reader.ended:  # everything it sent before it died
            messages = worker.reader.read(block=False)
            if not messages:
                break
            for message in messages:
                for fields in message if isinstance(message, list) else ():
                    self._finished(worker, outcome_from(fields))
        _reap(worker, 0.0)
        held = list(worker.held)
        if held:
            task, attempt, _ = held[0]
            if worker.stopped_for == (task.id, attempt):
                lost: BaseException = TaskTimeoutError(f"timed out after {self.task_timeout:g} s")
                self._done.append(Completion(task.id, attempt, lost=lost))
                held = held[1:]
            elif worker.stopped_for is None:
                lost = WorkerLostError(f"worker process died ({_how_it_ended(worker.process)})")
                self._done.append(Completion(task.id, attempt, lost=lost))
                held = held[1:]
            # else: the overdue attempt ended just before the kill; the next one runs again
        self._backlog.extendleft((task, attempt) for task, attempt, _ in reversed(held))
        self._start_worker()

    # -- task timeouts ---------------------------------------------------------------------
    def _until_overdue(self) -> float:
        started = [w.running_since for w in self._pool if w.running_since is not None]
        if not started:
            return 1.0
        return max(0.0, min(started) + self.task_timeout - time.time())

    def _stop_overdue(self) -> None:
        """Kill the workers whose attempt ran past the timeout."""
        for worker in list(self._pool):
            if not self._overdue(worker):
                continue
            self._read(worker)  # it may have just ended: then the next one runs
            if worker in self._pool and self._overdue(worker):
                task, attempt, _ = worker.held[0]
                worker.stopped_for = (task.id, attempt)
                worker.process.kill()  # a no-op once it has died on its own
                self._lost(worker)

    def _overdue(self, worker: _Worker) -> bool:
        since = worker.running_since
        return bool(worker.held) and since is not None and time.time() - since >= self.task_timeout


def _exit_descriptor(pid: int) -> int | None:
    """A descriptor that turns readable when process ``pid`` ends: a worker may leave a
    child holding its socket open, so the end of the stream alone would not tell."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux: the end of the stream tells
        return None


def _reap(worker: _Worker, timeout: float) -> None:
    """Wait up to ``timeout`` for a worker to end, kill it past that, release its ends."""
    try:
        worker.process.wait(timeout)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait()
    worker.sock.close()
    if worker.exited is not None:
        os.close(worker.exited)
        worker.exited = None


def _how_it_ended(process: subprocess.Popen) -> str:
    code = process.returncode
    if code is None:
        return "stopped"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
