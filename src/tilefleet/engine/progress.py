"""Progress of a run: a live bar on a terminal, plain periodic log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("tilefleet")


class RunProgress:
    """Counts finished tasks; shows a rich bar on a terminal, else logs every ~5% or 30 s."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None):
        self.total = total
        self.label = label
        self.done = {"succeeded": 0, "failed": 0, "retried": 0}
        stream = stream or sys.stderr
        self._bar = None
        if total and stream.isatty():
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
                console=Console(file=stream),
                transient=False,
            )
            self._task = self._bar.add_task(label, total=total, detail="")
            self._bar.start()
        self._every = max(1, total // 20)
        self._last_log = time.monotonic()

    def finished(self, status: str) -> None:
        self.done[status] = self.done.get(status, 0) + 1
        self._show(advance=1)

    def retried(self) -> None:
        self.done["retried"] += 1
        self._show(advance=0)

    def _show(self, advance: int) -> None:
        completed = self.done["succeeded"] + self.done["failed"]
        detail = f"ok {self.done['succeeded']}, failed {self.done['failed']}"
        if self.done["retried"]:
            detail += f", retries {self.done['retried']}"
        if self._bar is not None:
            self._bar.update(self._task, advance=advance, detail=detail)
            return
        now = time.monotonic()
        if advance and (
            completed % self._every == 0 or completed == self.total or now - self._last_log > 30
        ):
            self._last_log = now
            log.info("%s: %d/%d done (%s)", self.label, completed, self.total, detail)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
