"""One run of a job, from plan to reports.

plan (tasks = rows/tiles × recipe) → ledger → skip what is done → estimate → execute with
retries → reports. The engine never looks at pixels: it moves :class:`Task` records to an
executor and :class:`Outcome` records into the ledger.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing as _closing
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from tilefleet import secrets as shared_secrets
from tilefleet.engine.callbacks import Callbacks, RunCallback, RunStart
from tilefleet.engine.estimate import estimate_run
from tilefleet.engine.executors import (
    PlanExecutor,
    create_executor,
)
from tilefleet.engine.history import record_durations
from tilefleet.engine.job import Job, build_job
from tilefleet.engine.ledger import LEDGER_NAME, Ledger
from tilefleet.engine.report import write_reports
from tilefleet.engine.result import FailedTask, RunResult
from tilefleet.engine.scheduler import Scheduler
from tilefleet.engine.secrets import SecretKeeper
from tilefleet.engine.signals import sigterm_as_interrupt
from tilefleet.engine.skip import find_done, sweep_partials
from tilefleet.engine.task_runner import DETACHED_SESSION, merge_outcomes
from tilefleet.errors import (
    PERMANENT,
    ExitCode,
    JobError,
    one_line,
)
from tilefleet.recipes import get_recipe
from tilefleet.recipes.base import Recipe, RecipeParams
from tilefleet.task import (
    DONE_STATES,
    FAILED,
    PENDING,
    SKIPPED,
    SUCCEEDED,
    Task,
    now,
)

log = logging.getLogger("tilefleet")


def exit_code_for(counts: dict[str, int], finished: bool = True) -> ExitCode:
    """0 all done, 1 some failed, 2 all failed (of the tasks that ended); at least 1 when
    the recipe's ``finish`` step failed (``finished`` False)."""
    done = counts.get(SUCCEEDED, 0) + counts.get(SKIPPED, 0)
    failed = counts.get(FAILED, 0)
    if failed == 0:
        return ExitCode.OK if finished else ExitCode.PARTIAL
    return ExitCode.PARTIAL if done else ExitCode.ALL_FAILED


def job_fingerprint(job: Job) -> str:
    """What identifies a job for resuming: its recipe and parameters, not how it is run."""
    body = json.dumps(
        {"recipe": job.recipe, "params": job.params.model_dump(mode="json")}, sort_keys=True
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def new_run_id(recipe: str) -> str:
    return f"{recipe}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def run_job(
    job: Job,
    *,
    confirm: Callable[[str], bool] | None = None,
    callbacks: Sequence[RunCallback] = (),
) -> RunResult:
    """Plan, skip, estimate and (unless a dry run) execute ``job``; write its reports.

    ``confirm`` asks the user a yes/no question (None: no terminal to ask on);
    ``callbacks`` follow the run (a progress bar, a monitor). Raises :class:`JobError` for
    an invalid job; task failures are recorded, never raised.
    """
    recipe = get_recipe(job.recipe)
    keeper = _secret_keeper(recipe, job)  # before planning: the plan may read inputs too
    try:
        return _run_job(job, recipe, keeper, confirm, Callbacks(callbacks))
    finally:
        shared_secrets.install({})  # nothing of this run's secrets outlives it here


def _run_job(
    job: Job,
    recipe: Recipe,
    keeper: SecretKeeper | None,
    confirm: Callable[[str], bool] | None,
    follow: Callbacks,
) -> RunResult:
    tasks = _one_writer_per_output(_workers_find(recipe, recipe.plan(job.params)))
    try:
        executor = create_executor(job.executor, job.workers, **job.executor_settings)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    if keeper is not None and isinstance(executor, PlanExecutor):
        names = ", ".join(source.name for source in keeper.sources)
        raise JobError(
            f"the {job.executor} executor runs its nodes later, on their own: it cannot share "
            f"{names} with them; give the nodes their own credentials, or use an executor "
            "that submits each attempt (local, dask, ray, lithops)"
        )

    run_id = new_run_id(recipe.name)
    run_dir = job.run_dir or Path("runs", run_id)
    fingerprint = job_fingerprint(job)
    resuming = (run_dir / LEDGER_NAME).exists()
    known: dict[str, str] = {}
    if resuming:
        with _closing(Ledger.in_run_dir(run_dir, readonly=job.dry_run)) as ledger:
            if ledger.get_meta("fingerprint") not in (None, fingerprint):
                raise JobError(
                    f"run dir {run_dir} holds a different job (other recipe or "
                    "parameters); choose another --run-dir"
                )
            known = ledger.statuses()

    rejected = [t for t in tasks if t.rejected is not None]
    candidates = _select(tasks, known, job.only, job.limit)
    done_outside = set() if job.overwrite else _done_outside(candidates)
    to_run = [t for t in candidates if t.id not in done_outside]
    sizes = _task_sizes(recipe, job.params, to_run)
    kinds = recipe.task_kinds(to_run)
    estimate = estimate_run(
        recipe.name,
        recipe.default_task_s,
        len(to_run),
        len(done_outside),
        executor.workers,
        executor.billing,
        [sizes[t.id] for t in to_run] if len(sizes) == len(to_run) else (),
        [kinds[t.id] for t in to_run] if kinds else (),
        recipe.default_task_s_by_kind,
    )
    result = RunResult(
        run_dir,
        estimate,
        dry_run=job.dry_run,
        outputs=recipe.outputs_url(job.params),
        recipe=recipe.name,
        planned=len(tasks),
        rejected=rejected,
    )
    if isinstance(executor, PlanExecutor):
        executor.check_plan(to_run)  # before anything is written
    if job.dry_run and not isinstance(executor, PlanExecutor):
        result.planned_tasks, result.done_ids = tasks, frozenset(done_outside)  # the plan map
        all_rejected = rejected and len(rejected) == len(tasks)
        result.exit_code = ExitCode.ALL_FAILED if all_rejected else ExitCode.OK
        return result
    if executor.billing and to_run and not job.yes:
        question = f"{estimate.describe()}. Proceed?"  # the asker adds its [y/N]
        if confirm is None:
            raise JobError(
                "this executor bills per use and there is no terminal to ask on: "
                "pass --yes to start the run"
            )
        if not confirm(question):  # the user's choice, not an invalid job: exit 0
            result.dry_run = result.declined = True
            log.info("declined at the cost prompt: nothing was run")
            return result

    recipe.prepare(job.params)
    with _closing(Ledger.in_run_dir(run_dir)) as ledger:
        if not resuming:
            ledger.set_meta(
                run_id=run_id,
                recipe=recipe.name,
                fingerprint=fingerprint,
                job=job.record(),
                source_columns=list(recipe.source_columns),
                created=now(),
            )
        ledger.add_tasks(tasks)
        ledger.reset_interrupted()
        for task in rejected:
            ledger.mark(task.id, FAILED, task.rejected, PERMANENT)
            log.warning("FAILED %s: %s", task.id, task.rejected)
        ledger.mark_many(done_outside, SKIPPED)
        log.info("%s", estimate.describe())
        settings = executor.describe()
        if executor.billing:
            settings["billing"] = vars(executor.billing)
        session = ledger.start_session(now(), executor.name, settings, estimate.as_dict())
        follow.on_run_start(
            RunStart(
                run_id=ledger.get_meta("run_id"),
                run_dir=run_dir,
                recipe=recipe.name,
                executor=settings,
                to_run=len(to_run),
                skipped=len(done_outside),
                rejected=len(rejected),
                estimate=estimate,
            )
        )
        if isinstance(executor, PlanExecutor):
            _launch_plan(executor, to_run, ledger, session, run_dir, job, result)
            follow.on_run_end(result)
            return result
        interrupted = False
        durations: list[tuple[str, float]] = []  # (task id, seconds) of the successes
        lost: dict[str, Task] = {}  # tasks that lost a worker mid-attempt
        executor.task_timeout = job.task_timeout or recipe.default_task_timeout_s
        executor.max_task_memory = job.max_task_memory
        try:
            with sigterm_as_interrupt():
                executor.start(preload=(type(recipe).__module__,))
                try:
                    Scheduler(
                        to_run, executor, ledger, session, job, durations, lost, follow, keeper
                    ).run()
                finally:
                    executor.shutdown(cancel=True)
                    # Every worker is gone now: what a dead one was writing can go too.
                    _sweep_after_losses(lost.values())
        except KeyboardInterrupt:
            interrupted = True
            log.warning(
                "interrupted: unfinished tasks stay pending; rerun with "
                "--run-dir %s to finish them",
                run_dir,
            )
        finally:
            ledger.reset_interrupted()
            ledger.finish_session(session, now(), interrupted)
            record_durations(recipe.name, [(s, sizes.get(i), kinds.get(i)) for i, s in durations])
        finished = interrupted or finish_recipe(recipe, job.params, tasks, ledger)
        result.report = write_reports(ledger, run_dir)
        result.failed = failed_tasks(ledger)
        counts = ledger.counts()
    result.exit_code = ExitCode.INTERRUPTED if interrupted else exit_code_for(counts, finished)
    follow.on_run_end(result)
    return result


def _secret_keeper(recipe: Recipe, job: Job) -> SecretKeeper | None:
    """The keeper of the secrets the recipe shares with its workers, fetched now (a
    :class:`JobError` if one cannot be had), or None when it needs none."""
    sources = recipe.secret_sources(job.params)
    if not sources:
        return None
    keeper = SecretKeeper(sources)
    keeper.start()
    shared_secrets.install(keeper.current())  # this process plans and finishes with them
    return keeper


def _done_outside(tasks: list[Task]) -> set[str]:
    """The tasks whose marker exists; a destination that cannot be listed (after the
    store's own retries) stops the run in one line, before anything is written."""
    try:
        return find_done(tasks)
    except JobError:
        raise
    except Exception as exc:
        raise JobError(f"cannot list the destination for done tasks: {one_line(exc)}") from None


def _workers_find(recipe: Recipe, tasks: list[Task]) -> list[Task]:
    """Tasks naming their recipe by its import path, so that any worker finds it without
    the registry (a user's recipe included, whatever its ``name``); a task whose id no
    ledger can hold (a NUL in it) is rejected under its escaped id, the others go on."""
    reference = recipe.reference()
    return [_fitted(task, reference) for task in tasks]


def _one_writer_per_output(tasks: list[Task]) -> list[Task]:
    """Reject a task whose done marker is another task's: both would write the same outputs
    (``x.tif`` and ``x.tiff``, ``y.img`` beside ``y.tif``) and one would silently replace
    the other. The first keeps it; the later ones fail with the reason, the others go on."""
    writers: dict[tuple[str, str], str] = {}
    checked = []
    for task in tasks:
        if task.rejected is None and task.marker:
            first = writers.setdefault((task.dest, task.marker), task.id)
            if first != task.id:
                reason = f"its outputs ({task.marker}) are also those of {first}"
                task = replace(task, rejected=reason)
        checked.append(task)
    return checked


def _fitted(task: Task, reference: str) -> Task:
    if "\x00" not in task.id:
        return task if task.recipe == reference else replace(task, recipe=reference)
    escaped = task.id.encode("unicode_escape").decode("ascii")
    return replace(task, id=escaped, recipe=reference, rejected=f"task id {escaped} holds a NUL")


def failed_tasks(ledger: Ledger) -> list[FailedTask]:
    """The tasks of a run that ended failed, with the reason of their last attempt."""
    return [
        FailedTask(r.task.id, r.error or "", r.attempts, dict(r.task.source))
        for r in ledger.records(status=FAILED)
    ]


def _task_sizes(recipe: Recipe, params: RecipeParams, tasks: list[Task]) -> dict[str, float]:
    """The recipe's task sizes, for the estimate; a recipe that cannot tell costs nothing."""
    try:
        return {k: float(v) for k, v in recipe.task_sizes(params, tasks).items() if v > 0}
    except Exception as exc:  # an estimate is never worth failing a run for
        log.debug("task sizes of %s unknown: %s", recipe.name, one_line(exc))
        return {}


def _sweep_after_losses(lost: Iterable[Task]) -> None:
    try:
        removed = sweep_partials(lost)
    except OSError as exc:  # leftovers are harmless: the next run sweeps them again
        log.warning("could not remove half-written files of lost workers: %s", one_line(exc))
        return
    if removed:
        log.info("removed %d half-written file(s) left by lost workers", removed)


def finish_recipe(recipe: Recipe, params: RecipeParams, tasks: list[Task], ledger: Ledger) -> bool:
    """Run the recipe's ``finish`` hook on the done tasks; False (logged) if it failed."""
    statuses = ledger.statuses()
    done = [t for t in tasks if statuses.get(t.id) in DONE_STATES]
    try:
        recipe.finish(params, done)
    except Exception as exc:
        log.error("finishing the run failed: %s", one_line(exc))
        return False
    return True


def rebuild_reports(run_dir: Path) -> dict:
    """Rebuild the reports of a run from its ledger (merging first what the nodes of a
    launched plan have reported so far); report.json's content."""
    with _closing(_open_run(run_dir)) as ledger:
        merge_outcomes(ledger, run_dir)
        return write_reports(ledger, run_dir)


def finish_launched_run(run_dir: Path) -> ExitCode:
    """The end of a launched plan (the DAG's FINAL node): merge the nodes' outcomes into
    the ledger, publish what spans the tasks, write the reports; the run's exit status."""
    with _closing(_open_run(run_dir)) as ledger:
        merge_outcomes(ledger, run_dir, final=True)
        job = build_job(ledger.get_meta("job"))
        tasks = [record.task for record in ledger.records()]
        finished = finish_recipe(get_recipe(job.recipe), job.params, tasks, ledger)
        write_reports(ledger, run_dir)
        counts = ledger.counts()
        code = exit_code_for(counts, finished)
        if counts.get(PENDING) and code == ExitCode.OK:  # the DAG ended without them
            log.error("%d task(s) never reported: the run is not done", counts[PENDING])
            code = ExitCode.PARTIAL
        return code


def _open_run(run_dir: Path) -> Ledger:
    if not (run_dir / LEDGER_NAME).is_file():
        raise JobError(f"{run_dir} is not a tilefleet run directory (no {LEDGER_NAME})")
    return Ledger.in_run_dir(run_dir)


def _launch_plan(
    executor: PlanExecutor,
    to_run: list[Task],
    ledger: Ledger,
    session: int,
    run_dir: Path,
    job: Job,
    result: RunResult,
) -> None:
    """Hand the whole plan to an executor that runs it on its own (an HTCondor DAG, written
    always, submitted unless a dry run). Its nodes report outcomes as files that
    ``tilefleet task finish`` (the DAG's FINAL node) merges into the ledger."""
    ledger.set_meta(**{DETACHED_SESSION: session})
    launch = executor.launch(to_run, run_dir, retries=job.retries, submit=not job.dry_run)
    (log.info if launch.submitted or job.dry_run else log.error)("%s", launch.message)
    result.report = write_reports(ledger, run_dir)
    result.message = launch.message
    result.launched = launch.submitted
    result.exit_code = ExitCode.OK if launch.submitted or job.dry_run else ExitCode.INVALID


def _select(
    tasks: list[Task], known: dict[str, str], only: list[str] | None, limit: int | None
) -> list[Task]:
    """Tasks this session may run: not rejected, not done in this run, within --only/--limit."""
    if only:
        ids = {t.id for t in tasks}
        unknown = [i for i in only if i not in ids]
        if unknown:
            raise JobError(f"--only names unknown task id(s): {', '.join(unknown[:5])}")
        wanted = set(only)
        tasks = [t for t in tasks if t.id in wanted]
    selected = [t for t in tasks if t.rejected is None and known.get(t.id) not in DONE_STATES]
    return selected[:limit] if limit else selected
