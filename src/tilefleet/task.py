"""Tasks and their outcomes: the small, plain records that travel between the engine and workers.

A task pickles to a few hundred bytes: an id, the recipe's name, JSON-plain parameters,
where its done marker lives, and the source row it came from. It holds no open handles,
and no credentials except the shared secrets an attempt's copy carries in memory, so any
executor can ship it anywhere.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

PENDING, RUNNING, SUCCEEDED, SKIPPED, FAILED = (
    "pending",
    "running",
    "succeeded",
    "skipped",
    "failed",
)
DONE_STATES = (SUCCEEDED, SKIPPED)


@dataclass(frozen=True)
class Task:
    """One unit of idempotent work.

    ``dest`` is the URL of the store holding the task's outputs and ``marker`` the key of
    the done marker below it, written last. ``rejected`` is set for input that the plan
    already knows to be bad: such a task is recorded as failed without running.
    """

    id: str
    recipe: str
    params: dict[str, Any]
    dest: str
    marker: str
    source: dict[str, str] = field(default_factory=dict)
    rejected: str | None = None
    #: Shared secrets by name, set only on the copy of a task submitted for an attempt
    #: (see :mod:`tilefleet.secrets`): the ledger and task files never hold them.
    secrets: dict[str, dict[str, str]] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Outcome:
    """What a worker reports for one attempt of a task."""

    task_id: str
    attempt: int
    ok: bool
    worker: str
    started: float
    finished: float
    error: str | None = None
    error_kind: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.finished - self.started


def worker_name() -> str:
    """Identifies the process that ran an attempt (one timeline lane per worker)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def now() -> float:
    return time.time()
