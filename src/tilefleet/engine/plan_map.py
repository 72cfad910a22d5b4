"""The map of a plan before it runs (``tilefleet plan JOB --map plan.html``)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from tilefleet.engine.html_report import write_plan_map
from tilefleet.engine.job import Job
from tilefleet.engine.ledger import LEDGER_NAME, Ledger
from tilefleet.engine.planning import checked_plan
from tilefleet.engine.result import RunResult
from tilefleet.engine.skip import find_done
from tilefleet.recipes import get_recipe
from tilefleet.task import DONE_STATES


def write_plan_map_of(job: Job, result: RunResult, path: Path) -> Path:
    """Write the map of ``job``'s plan to ``path``: pending what would run, skipped what is
    done already (its marker is in the destination, or the run dir has it done), failed
    what the plan rejects. Uses the dry run's ``result`` when it holds the planned tasks,
    else plans again."""
    known: dict[str, str] = {}
    run_dir = result.run_dir or job.run_dir
    if run_dir is not None and (Path(run_dir) / LEDGER_NAME).is_file():
        with closing(Ledger.in_run_dir(Path(run_dir), readonly=True)) as ledger:
            known = ledger.statuses()
    if result.planned_tasks:
        tasks, done = result.planned_tasks, set(result.done_ids)
    else:  # planned again as the run plans: the same tasks rejected, for the same reasons
        recipe = get_recipe(job.recipe)
        tasks = list(checked_plan(recipe, recipe.plan(job.params)))
        candidates = [t for t in tasks if t.rejected is None and known.get(t.id) not in DONE_STATES]
        done = set() if job.overwrite else find_done(candidates)
    return write_plan_map(
        path,
        tasks,
        done,
        recipe=result.recipe or job.recipe,
        estimate=result.estimate.as_dict(),
        known=known,
    )
