"""What a run did, as the Python API returns it and the command line prints it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tilefleet.engine.estimate import Estimate
from tilefleet.errors import ExitCode
from tilefleet.task import FAILED, PENDING, SKIPPED, SUCCEEDED, Task

#: The files every run leaves in its run directory (see :mod:`tilefleet.engine.report`).
REPORT_FILES = (
    "report.json",
    "report.txt",
    "tasks.csv",
    "failed.csv",
    "succeeded.csv",
    "timeline.png",
    "report.html",
)


@dataclass(frozen=True)
class FailedTask:
    """A task that failed for good: its id, how many attempts it had, and why."""

    id: str
    reason: str
    attempts: int
    source: dict[str, str] = field(default_factory=dict)


@dataclass
class RunResult:
    """The outcome of ``tilefleet.run`` (or ``plan``): counts, failures with their reasons,
    where the reports are, and the exit status the command line would end with."""

    run_dir: Path | None
    estimate: Estimate
    exit_code: ExitCode = ExitCode.OK
    #: The content of report.json (empty for a dry run).
    report: dict = field(default_factory=dict)
    dry_run: bool = False
    #: The cost question was answered no: nothing ran (and nothing was written).
    declined: bool = False
    #: Where the outputs go.
    outputs: str = ""
    recipe: str = ""
    planned: int = 0
    #: Tasks the plan already knew to be bad (failed without running).
    rejected: list[Task] = field(default_factory=list)
    #: Tasks that ended failed, with the reason of their last attempt: the first 10,000
    #: in plan order (``report["failed"]`` counts them all, failed.csv lists them all).
    failed: list[FailedTask] = field(default_factory=list)
    #: Something to say instead of the report (a launched DAG: how to follow it).
    message: str = ""
    #: A plan executor took the whole plan and runs it on its own (its nodes report later).
    launched: bool = False
    #: A dry run's planned tasks and the ids of those already done (in the destination or
    #: the run dir), for the plan's map; empty when the engine did not fill them in.
    planned_tasks: list[Task] = field(default_factory=list)
    done_ids: frozenset[str] = frozenset()

    @property
    def counts(self) -> dict[str, int]:
        """Tasks per status: ``succeeded``, ``skipped``, ``failed``, ``pending``."""
        keys = (SUCCEEDED, SKIPPED, FAILED, PENDING)
        return {key: int(self.report.get(key, 0)) for key in keys}

    @property
    def ok(self) -> bool:
        """True when every task is done (succeeded now or before)."""
        return self.exit_code == ExitCode.OK

    @property
    def reports(self) -> dict[str, Path]:
        """The report files of the run by name, those that exist."""
        if self.run_dir is None:
            return {}
        paths = {name: self.run_dir / name for name in REPORT_FILES}
        return {name: path for name, path in paths.items() if path.exists()}

    def summary(self) -> str:
        """The run for people: report.txt, or for a dry run the plan and its estimate."""
        if self.dry_run:
            lines = [
                f"plan: {self.planned} task(s) for recipe {self.recipe}, "
                f"{len(self.rejected)} rejected"
            ]
            lines += [f"  rejected {t.id}: {t.rejected}" for t in self.rejected[:20]]
            ending = "declined at the cost prompt" if self.declined else "dry run"
            lines += [f"estimate: {self.estimate.describe()}", f"{ending}: nothing was run"]
            if self.message:
                lines.append(self.message)
            return "\n".join(lines) + "\n"
        text = self.reports.get("report.txt")
        summary = text.read_text() if text else ""
        return summary + (f"{self.message}\n" if self.message else "")

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        return f"RunResult({self.recipe}, {self.exit_code.name}, {counts}, run_dir={self.run_dir})"
