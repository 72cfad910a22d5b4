"""``tilefleet task``: one planned task of a run, and the end of a detached run.

These are the commands the nodes of an HTCondor DAG run (see
:mod:`tilefleet.engine.task_runner`); they also let a person rerun one task by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Run one planned task of a run, or finish a detached run (HTCondor DAG nodes).",
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
    from tilefleet.engine.task_runner import exit_status, run_planned_task
    from tilefleet.errors import JobError

    try:
        outcome = run_planned_task(run_dir, task_id)
    except JobError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    state = (
        "skipped (already done)"
        if outcome.metrics.get("skipped")
        else ("succeeded" if outcome.ok else f"failed ({outcome.error_kind}): {outcome.error}")
    )
    typer.echo(f"{task_id} attempt {outcome.attempt}: {state}")
    raise typer.Exit(exit_status(outcome))


@app.command("finish")
def finish(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of a detached run")],
) -> None:
    """Merge the outcomes the nodes reported into the ledger, write the reports, print the
    summary; exit with the run's status (0 all done, 1 some failed, 2 all failed)."""
    from tilefleet.config import build_job
    from tilefleet.engine.ledger import LEDGER_NAME, Ledger
    from tilefleet.engine.report import write_reports
    from tilefleet.engine.run import exit_code_for, finish_recipe
    from tilefleet.engine.task_runner import merge_outcomes
    from tilefleet.recipes import get_recipe

    if not (run_dir / LEDGER_NAME).is_file():
        typer.echo(f"error: {run_dir} is not a tilefleet run directory", err=True)
        raise typer.Exit(3)
    ledger = Ledger.in_run_dir(run_dir)
    try:
        merge_outcomes(ledger, run_dir, final=True)
        job = build_job(ledger.get_meta("job"))
        recipe = get_recipe(job.recipe)
        tasks = [record.task for record in ledger.records()]
        finished = finish_recipe(recipe, job.params, tasks, ledger)
        write_reports(ledger, run_dir)
        code = exit_code_for(ledger.counts(), finished)
    finally:
        ledger.close()
    typer.echo((run_dir / "report.txt").read_text(), nl=False)
    raise typer.Exit(code)
