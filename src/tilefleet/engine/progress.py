"""Progress of a run: a live bar on a terminal, plain periodic log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, TextIO

from tilefleet.engine.callbacks import AttemptEnd, RunCallback, RunStart
from tilefleet.task import FAILED, PENDING, SUCCEEDED

if TYPE_CHECKING:
    from tilefleet.engine.result import RunResult

log = logging.getLogger("tilefleet")


class RunProgress(RunCallback):
    """Counts finished tasks; shows a rich bar on a terminal, else logs every ~5% or 30 s."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.total = 0
        self.label = ""
        self.done = {SUCCEEDED: 0, FAILED: 0, "retried": 0}
        self._bar = None
        self._every = 1
        self._last_log = time.monotonic()

    def on_run_start(self, run: RunStart) -> None:
        # One bar per run: the steps of a chain reuse this callback, each from zero.
        self.total, self.label = run.to_run, run.recipe
        self.done = {SUCCEEDED: 0, FAILED: 0, "retried": 0}
        self._last_log = time.monotonic()
        self._every = max(1, self.total // 20)
        if self.total and self.stream.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._task = self._bar.add_task(self.label, total=self.total, detail="")
            self._bar.start()

    def on_attempt_end(self, attempt: AttemptEnd) -> None:
        if attempt.status == PENDING:
            self.done["retried"] += 1
            self._show(advance=0)
        else:
            self.done[attempt.status] = self.done.get(attempt.status, 0) + 1
            self._show(advance=1)

    def _show(self, advance: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=advance, detail=self._detail())
            return
        if not advance:
            return
        completed = self.done[SUCCEEDED] + self.done[FAILED]
        now = time.monotonic()
        if completed % self._every == 0 or completed == self.total or now - self._last_log > 30:
            self._last_log = now
            log.info("%s: %d/%d done (%s)", self.label, completed, self.total, self._detail())

    def _detail(self) -> str:
        detail = f"ok {self.done[SUCCEEDED]}, failed {self.done[FAILED]}"
        if self.done["retried"]:
            detail += f", retries {self.done['retried']}"
        return detail

    def on_run_end(self, result: RunResult) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
