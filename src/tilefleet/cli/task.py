"""``tilefleet task``: one planned task of a run, and the end of a launched plan.

These are the commands the nodes of an HTCondor DAG run (see
:mod:`tilefleet.engine.task_runner`): ``run`` where the nodes share the run directory,
``run-file`` where they see only the task file HTCondor moved to them. They also let a
person rerun one task by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tilefleet.cli.output import fail, setup_logging
from tilefleet.task import Outcome

app = typer.Typer(
    help="Run one planned task of a run, or finish a launched plan (HTCondor DAG nodes).",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("run")
def run_task(
    run_dir: Annotated[Path, typer.Argument(help="Run directory holding the planned task")],
    task_id: Annotated[str, typer.Argument(help="Id of the task (see tasks.csv)")],
) -> None:
    """Run one planned task and report its outcome as RUN_DIR/outcomes/<task>.<n>.json.
    Exit 0 when done (or already done), 1 on a retryable failure, 2 on a permanent one."""
    from tilefleet.engine.task_runner import run_planned_task
    from tilefleet.errors import JobError

    try:
        outcome = run_planned_task(run_dir, task_id)
    except JobError as exc:
        fail(str(exc))
    _show_outcome(outcome)


@app.command("run-file")
def run_file(
    task_file: Annotated[
        Path, typer.Argument(help="Task file (JSON) written at launch, RUN_DIR/htcondor/tasks/")
    ],
    attempt: Annotated[
        int, typer.Option(min=0, help="Number of this attempt (the DAG passes $(RETRY))")
    ] = 0,
    outcome_file: Annotated[
        Path, typer.Option("--outcome", help="Where to write the outcome (JSON)")
    ] = Path("outcome.json"),
) -> None:
    """Run the task of a task file and write its outcome to --outcome: a node of a pool
    without a shared file system. Exit 0 when done (or already done), 1 on a retryable
    failure, 2 on a permanent one."""
    from tilefleet.engine.task_runner import run_task_file
    from tilefleet.errors import JobError

    try:
        outcome = run_task_file(task_file, attempt=attempt, outcome_file=outcome_file)
    except JobError as exc:
        fail(str(exc))
    _show_outcome(outcome)


def _show_outcome(outcome: Outcome) -> None:
    """Print how the attempt went; exit with its status."""
    from tilefleet.engine.task_runner import exit_status

    state = (
        "skipped (already done)"
        if outcome.metrics.get("skipped")
        else ("succeeded" if outcome.ok else f"failed ({outcome.error_kind}): {outcome.error}")
    )
    typer.echo(f"{outcome.task_id} attempt {outcome.attempt}: {state}")
    raise typer.Exit(exit_status(outcome))


@app.command("finish")
def finish(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of a launched plan")],
) -> None:
    """Merge the outcomes the nodes reported into the ledger, write the reports, print the
    summary; exit with the run's status (0 all done, 1 some failed, 2 all failed)."""
    from tilefleet.engine.run import finish_launched_run
    from tilefleet.errors import JobError

    setup_logging(False)
    try:
        code = finish_launched_run(run_dir)
    except JobError as exc:
        fail(str(exc))
    typer.echo((run_dir / "report.txt").read_text(), nl=False)
    raise typer.Exit(code)
