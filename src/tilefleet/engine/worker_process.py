"""The worker process of the ``local`` executor, and the messages it and the executor trade.
(It lives outside ``engine/executors/`` so that a worker never imports that package: the
executors' settings models are the driver's business.)

A worker holds one end of a socket pair. The executor sends it batches of attempts; the
worker runs them one after the other and sends back each outcome before it starts the
next attempt, so the executor knows which attempt a worker runs (the first it holds that
has not reported) and since when (the end of the one before): a worker that dies is
charged the attempt it was running, never one that had ended. (Outcomes held back to
travel together would save the worker a few microseconds each, and would charge a dying
worker's loss to an attempt that ended.) Messages are pickles, each behind its length:
one ``recv`` on the executor's side takes all that have arrived.

A worker is a fresh interpreter running :data:`BOOTSTRAP`, not a ``multiprocessing``
child: it imports what its tasks need and nothing else (a child of ``multiprocessing``
imports the parent's main script first: the whole command-line interface, for a run of
the ``tilefleet`` command). The first message tells it the parent's ``sys.path`` (so a
recipe the parent can import, it can too), the modules to import and its scratch folder.
Before it imports them it defers :data:`DEFERRED_IMPORTS` (see :func:`defer_imports`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import pickle
import runpy
import signal
import socket
import struct
import sys
import tempfile
import time
import types
from collections import deque
from dataclasses import fields
from typing import Any

from tilefleet.task import Outcome

_HEADER = struct.Struct("!I")
#: An outcome travels as the tuple of its fields, in this order: a third of the bytes of
#: its pickle as a dataclass, and a fifth of the driver's time to load it.
_OUTCOME_FIELDS = tuple(field.name for field in fields(Outcome))
#: What a worker process runs (``python -c BOOTSTRAP FD``): read its settings from the
#: socket it inherited as FD, take the parent's ``sys.path``, then serve.
BOOTSTRAP = """\
import pickle, signal, socket, struct, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
sock = socket.socket(fileno=int(sys.argv[1]))
(size,) = struct.unpack("!I", sock.recv(4, socket.MSG_WAITALL))
settings = pickle.loads(sock.recv(size, socket.MSG_WAITALL))
sys.path[:] = settings["sys_path"]
from tilefleet.engine.worker_process import worker_main
worker_main(sock, settings)
"""
#: Most bytes read by one call: many outcomes of a few hundred bytes each.
_READ_SIZE = 1 << 18
#: Modules a worker's task modules import but its tasks seldom use: rasterio imports boto3
#: (and with it botocore: 150 ms, a third of a cogify worker's start) only to learn whether
#: it is installed, and uses it when a task opens an s3:// path.
DEFERRED_IMPORTS = ("boto3",)


class _DeferredImports(importlib.abc.MetaPathFinder):
    """Finds ``names`` as the finders after it do, but with a loader that executes the
    module on first use of one of its attributes (:class:`importlib.util.LazyLoader`).

    A module that is not installed is still not found (so ``import boto3`` still raises
    where boto3 is missing), and a second ``import`` of a deferred module executes it (the
    import reads its ``__spec__``). On Pythons without the fix of CPython gh-114763 (3.11,
    early 3.12) a deferred module first used by two threads at once may be seen
    half-executed by one of them: a worker runs its tasks one after the other in its main
    thread, where rasterio asks for its boto3 session."""

    def __init__(self, names: tuple[str, ...]):
        self.names = frozenset(names)

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def defer_imports(names: tuple[str, ...] = DEFERRED_IMPORTS) -> None:
    """Make ``import NAME`` of each of ``names`` (not imported yet) cost nothing until the
    module is used. For a worker's process only: it changes how this process imports."""
    if not any(isinstance(finder, _DeferredImports) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferredImports(names))


def encode(message: Any) -> bytes:
    """One message as sent: its length, then its pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


class MessageReader:
    """Whole messages from one end of a stream socket, as they arrive."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()
        self.ended = False

    def read(self, block: bool) -> list[Any]:
        """The messages that have arrived (with ``block``, waiting for at least one);
        ``ended`` is set once the other end has closed."""
        messages: list[Any] = []
        while not self.ended:
            try:
                chunk = self.sock.recv(_READ_SIZE, 0 if block else socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # reset by a peer that died
                chunk = b""
            if not chunk:
                self.ended = True
                break
            self.buffer += chunk
            self._take(messages)
            if messages or not block:
                break
        return messages

    def _take(self, messages: list[Any]) -> None:
        view, start = self.buffer, 0
        while len(view) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(view, start)
            end = start + _HEADER.size + size
            if len(view) < end:
                break
            messages.append(pickle.loads(view[start + _HEADER.size : end]))
            start = end
        del self.buffer[:start]


def worker_settings(modules: list[str], scratch: str) -> dict[str, Any]:
    """The first message to a worker: where to import from, what, where to write."""
    main = sys.modules.get("__main__")
    return {
        "sys_path": list(sys.path),
        "modules": modules,
        "scratch": scratch,
        # A recipe defined in the main script: the worker imports the script as
        # ``multiprocessing`` would (under its ``__main__`` guard, which the driver checked).
        "main_path": getattr(main, "__file__", None) if "__main__" in modules else None,
    }


def worker_main(sock: socket.socket, settings: dict[str, Any]) -> None:
    """A worker's life: import the task modules, say so, then run what it is sent until
    the executor closes its end (or stops the process)."""
    # Ctrl-C reaches the whole process group: the driver handles it and stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Temporary files of tasks (Python's and GDAL's) go to the executor's own folder, so a
    # worker killed mid-task leaves nothing behind once the run ends.
    scratch = settings["scratch"]
    os.environ["TMPDIR"] = scratch
    os.environ["CPL_TMPDIR"] = scratch
    tempfile.tempdir = scratch
    defer_imports()
    for module in settings["modules"]:
        if module == "__main__":
            _import_main_script(settings["main_path"])
        else:
            importlib.import_module(module)
    from tilefleet.engine.worker import execute

    reader = MessageReader(sock)
    pending: deque[tuple[Any, int, int | None]] = deque()
    try:
        sock.sendall(encode(("ready", os.getpid(), time.time())))
        while True:
            # Take what has arrived before each attempt, so that the executor's sends
            # never wait on a full socket.
            for max_memory_mb, attempts in reader.read(block=not pending):
                pending.extend((task, attempt, max_memory_mb) for task, attempt in attempts)
            if reader.ended:
                return  # the executor is gone or done: what is not started stays undone
            if pending:
                task, attempt, max_memory_mb = pending.popleft()
                sock.sendall(_outcomes_message([execute(task, attempt, max_memory_mb)]))
    except (BrokenPipeError, ConnectionResetError):
        return


def _import_main_script(path: str | None) -> None:
    if path is None:  # a notebook or the REPL: nothing a worker can import
        return
    module = types.ModuleType("__mp_main__")
    module.__dict__.update(runpy.run_path(path, run_name="__mp_main__"))
    sys.modules["__main__"] = sys.modules["__mp_main__"] = module


def _outcomes_message(outcomes: list[Outcome]) -> bytes:
    try:
        return encode([outcome_fields(outcome) for outcome in outcomes])
    except Exception:
        return encode([outcome_fields(_sendable(outcome)) for outcome in outcomes])


def outcome_fields(outcome: Outcome) -> tuple[Any, ...]:
    """An outcome as it travels (see :data:`_OUTCOME_FIELDS`)."""
    return tuple(getattr(outcome, name) for name in _OUTCOME_FIELDS)


def outcome_from(values: tuple[Any, ...]) -> Outcome:
    """The outcome of :func:`outcome_fields`' tuple."""
    outcome = object.__new__(Outcome)
    outcome.__dict__.update(zip(_OUTCOME_FIELDS, values, strict=True))  # frozen: set here once
    return outcome


def _sendable(outcome: Any) -> Any:
    """The outcome, or its failure when its metrics cannot be pickled (said so)."""
    try:
        pickle.dumps(outcome)
    except Exception as exc:
        from dataclasses import replace

        from tilefleet.errors import PERMANENT, one_line

        reason = f"its metrics cannot be sent back: {one_line(exc)}"
        return replace(outcome, ok=False, metrics={}, error=reason, error_kind=PERMANENT)
    return outcome
