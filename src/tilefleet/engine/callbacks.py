"""How code follows a run as it goes: callbacks the engine calls at the start of a run,
after every attempt and at its end. The progress bar is one; a live monitor or a notebook
widget is another. Pass them as ``tilefleet.run(..., callbacks=[...])``.

A callback that raises is logged and dropped for the rest of the run: following a run must
never break it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tilefleet.task import Outcome

if TYPE_CHECKING:
    from tilefleet.engine.estimate import Estimate
    from tilefleet.engine.result import RunResult

log = logging.getLogger("tilefleet")


@dataclass(frozen=True)
class RunStart:
    """What a run is about to do."""

    run_id: str
    run_dir: Path
    recipe: str
    executor: dict[str, Any]
    to_run: int
    skipped: int
    rejected: int
    estimate: Estimate


@dataclass(frozen=True)
class AttemptEnd:
    """One finished attempt and the status of its task after it: ``succeeded``,
    ``failed``, or ``pending`` when it will be retried."""

    outcome: Outcome
    status: str


class RunCallback:
    """Base of run callbacks: override the hooks you need; each does nothing by default."""

    def on_run_start(self, run: RunStart) -> None:
        """Called once the plan is recorded, before the first attempt."""

    def on_attempt_end(self, attempt: AttemptEnd) -> None:
        """Called in the driver for every attempt as its outcome is recorded."""

    def on_run_end(self, result: RunResult) -> None:
        """Called after the reports are written (also for an interrupted run)."""


class Callbacks(RunCallback):
    """Several callbacks as one; one that raises is logged and left out from then on."""

    def __init__(self, callbacks: Iterable[RunCallback] = ()):
        self.callbacks = list(callbacks)

    def _call(self, hook: str, argument: Any) -> None:
        for callback in list(self.callbacks):
            try:
                getattr(callback, hook)(argument)
            except Exception as exc:
                log.warning("callback %r failed in %s and is dropped: %s", callback, hook, exc)
                self.callbacks.remove(callback)

    def on_run_start(self, run: RunStart) -> None:
        self._call("on_run_start", run)

    def on_attempt_end(self, attempt: AttemptEnd) -> None:
        self._call("on_attempt_end", attempt)

    def on_run_end(self, result: RunResult) -> None:
        self._call("on_run_end", result)
