"""One run of a job, from plan to reports.

plan (tasks = rows/tiles × recipe) → ledger → skip what is done → estimate → execute with
retries → reports. The engine never looks at pixels: it moves :class:`Task` records to an
executor and :class:`Outcome` records into the ledger.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing as _closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tilefleet import secrets as shared_secrets
from tilefleet.engine.callbacks import Callbacks, RunCallback, RunStart
from tilefleet.engine.estimate import estimate_run
from tilefleet.engine.executors import (
    AttemptExecutor,
    PlanExecutor,
    create_executor,
)
from tilefleet.engine.history import KEEP_PER_RECIPE, record_durations
from tilefleet.engine.job import Job, build_job
from tilefleet.engine.ledger import LEDGER_NAME, Ledger, decode_task
from tilefleet.engine.planning import PlanDigest, digest_plan, sizes_and_kinds
from tilefleet.engine.report import write_reports
from tilefleet.engine.result import FailedTask, RunResult
from tilefleet.engine.scheduler import Scheduler
from tilefleet.engine.secrets import SecretKeeper
from tilefleet.engine.signals import sigterm_as_interrupt
from tilefleet.engine.skip import sweep_partials
from tilefleet.engine.spool import PlanMarkers, PlanSpool, TaskFeed, feed_count
from tilefleet.engine.task_runner import DETACHED_SESSION, merge_outcomes
from tilefleet.errors import (
    PERMANENT,
    ExitCode,
    JobError,
    one_line,
)
from tilefleet.recipes import get_recipe
from tilefleet.recipes.base import FINISH_METRIC, Recipe
from tilefleet.recipes.params import RecipeParams
from tilefleet.task import (
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
    try:
        executor = create_executor(job.executor, job.workers, **job.executor_settings)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    # Limits of every attempt, whoever runs it: a launched plan writes them into its DAG.
    executor.task_timeout = job.task_timeout or recipe.default_task_timeout_s
    executor.max_task_memory = job.max_task_memory
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
    # A dry run keeps only the tasks' markers, in memory (for the one-writer check and
    # the skip), unless an executor that takes the whole plan writes it out (its DAG).
    spool: PlanSpool | PlanMarkers = (
        PlanMarkers() if job.dry_run and not isinstance(executor, PlanExecutor) else PlanSpool()
    )
    early = not job.dry_run and getattr(executor, "starts_while_planning", False)
    try:
        if early:  # its workers import their modules while this process plans
            executor.start(preload=(type(recipe).__module__,))
        where = _RunDir(run_dir, run_id, fingerprint, resuming)
        return _run_planned(job, recipe, executor, keeper, confirm, follow, where, known, spool)
    finally:
        if early:  # a run that ends before its scheduler (declined, nothing to do, an error)
            executor.shutdown(cancel=True)
        spool.close()


def _run_planned(
    job: Job,
    recipe: Recipe,
    executor: AttemptExecutor | PlanExecutor,
    keeper: SecretKeeper | None,
    confirm: Callable[[str], bool] | None,
    follow: Callbacks,
    where: _RunDir,
    known: dict[str, str],
    spool: PlanSpool | PlanMarkers,
) -> RunResult:
    """The run once its plan is known to be of this run dir: plan (one streamed pass),
    skip, estimate, ask, then the ledger, the session and the reports."""
    run_dir = where.path
    digest = digest_plan(
        recipe, job.params, known=known, only=job.only, spool=spool, keep=not spool.keeps_tasks
    )
    rejected = digest.rejected
    done_outside = set() if job.overwrite else _done_outside(spool)
    to_run = feed_count(spool.selected_ids(), done_outside, job.limit)
    run_ids, sizes, kinds = sizes_and_kinds(
        recipe, job.params, _tasks_left(spool, digest, done_outside, to_run)
    )
    known.clear()  # read by the plan's pass only: a resumed run may know millions
    estimate = estimate_run(
        recipe.name,
        recipe.default_task_s,
        to_run,
        len(done_outside),
        executor.workers,
        executor.billing,
        [sizes[i] for i in run_ids] if sizes and all(i in sizes for i in run_ids) else (),
        [kinds[i] for i in run_ids] if kinds else (),
        recipe.default_task_s_by_kind,
    )
    result = RunResult(
        run_dir,
        estimate,
        dry_run=job.dry_run,
        outputs=recipe.outputs_url(job.params),
        recipe=recipe.name,
        planned=digest.planned,
        rejected=rejected,
    )
    feed = TaskFeed(spool, to_run, done_outside) if spool.keeps_tasks else None
    plan: list[Task] = []
    if isinstance(executor, PlanExecutor):
        plan = feed.drain()
        executor.check_plan(plan)  # before anything is written
    if job.dry_run and not isinstance(executor, PlanExecutor):
        result.planned_tasks = digest.kept or []  # the plan map (a larger plan is planned again)
        result.done_ids = frozenset(done_outside)
        all_rejected = rejected and len(rejected) == digest.planned
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
        if not where.resuming:
            ledger.set_meta(
                run_id=where.run_id,
                recipe=recipe.name,
                fingerprint=where.fingerprint,
                job=job.record(),
                source_columns=list(recipe.source_columns),
                created=now(),
            )
        ledger.add_spooled_tasks(spool.path)  # done_outside as skipped
        ledger.reset_interrupted()
        with ledger.transaction():
            for task in rejected:
                ledger.mark(task.id, FAILED, task.rejected, PERMANENT)
                log.warning("FAILED %s: %s", task.id, task.rejected)
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
                to_run=to_run,
                skipped=len(done_outside),
                rejected=len(rejected),
                estimate=estimate,
            )
        )
        if isinstance(executor, PlanExecutor):
            _launch_plan(executor, plan, ledger, session, run_dir, job, result)
            follow.on_run_end(result)
            return result
        interrupted = False
        durations = RecentDurations(sizes, kinds)  # of the successes, as history keeps them
        lost: dict[str, Task] = {}  # tasks that lost a worker mid-attempt
        try:
            with sigterm_as_interrupt():
                executor.start(preload=(type(recipe).__module__,))
                try:
                    Scheduler(
                        feed, executor, ledger, session, job, durations, lost, follow, keeper
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
            record_durations(recipe.name, durations.timings())
        finished = interrupted or finish_recipe(recipe, job.params, ledger)
        result.report = write_reports(ledger, run_dir)
        result.failed = failed_tasks(ledger)
        counts = ledger.counts()
    result.exit_code = ExitCode.INTERRUPTED if interrupted else exit_code_for(counts, finished)
    follow.on_run_end(result)
    return result


class RecentDurations:
    """The successes' ``(seconds, size, kind)`` for the history, which keeps only the last
    ``KEEP_PER_RECIPE`` of each kind: so many are kept here, not one per task of a run of
    millions. The scheduler appends ``(task id, seconds)``."""

    def __init__(self, sizes: dict[str, float], kinds: dict[str, str | None]):
        self.sizes, self.kinds = sizes, kinds
        self.by_kind: dict[str | None, deque[tuple[float, float | None, str | None]]] = {}

    def append(self, success: tuple[str, float]) -> None:
        task_id, seconds = success
        kind = self.kinds.get(task_id)
        recent = self.by_kind.get(kind)
        if recent is None:
            recent = self.by_kind[kind] = deque(maxlen=KEEP_PER_RECIPE)
        recent.append((seconds, self.sizes.get(task_id), kind))

    def timings(self) -> list[tuple[float, float | None, str | None]]:
        return [timing for recent in self.by_kind.values() for timing in recent]


@dataclass(frozen=True)
class _RunDir:
    path: Path
    run_id: str
    fingerprint: str
    resuming: bool


def _tasks_left(
    spool: PlanSpool | PlanMarkers, digest: PlanDigest, skip: set[str], count: int
) -> Iterator[Task]:
    """The first ``count`` tasks this session runs, in plan order: read back from the
    spool, or from the plan a dry run kept (none when it kept none: too large)."""
    if spool.keeps_tasks:
        pages = spool.selected_pages()
        tasks = (decode_task(text) for page in pages for i, text in page if i not in skip)
    elif digest.kept is not None:
        selected = set(spool.selected_ids())
        tasks = (t for t in digest.kept if t.id in selected and t.id not in skip)
    else:
        return iter(())
    return itertools.islice(tasks, count)


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


def _done_outside(spool: PlanSpool | PlanMarkers) -> set[str]:
    """The ids of the selected tasks of ``spool`` whose marker exists; a destination
    that cannot be listed (after the store's own retries) stops the run in one line,
    before anything is written."""
    try:
        return spool.find_done()
    except JobError:
        raise
    except Exception as exc:
        raise JobError(f"cannot list the destination for done tasks: {one_line(exc)}") from None


#: ``RunResult.failed`` lists at most this many tasks (failed.csv has them all).
MAX_FAILED_LISTED = 10_000


def failed_tasks(ledger: Ledger, limit: int = MAX_FAILED_LISTED) -> list[FailedTask]:
    """The first ``limit`` tasks of a run that ended failed (in plan order), with the
    reason of their last attempt."""
    return [
        FailedTask(r.task.id, r.error or "", r.attempts, dict(r.task.source))
        for r in itertools.islice(ledger.records(status=FAILED), limit)
    ]


def _sweep_after_losses(lost: Iterable[Task]) -> None:
    try:
        removed = sweep_partials(lost)
    except OSError as exc:  # leftovers are harmless: the next run sweeps them again
        log.warning("could not remove half-written files of lost workers: %s", one_line(exc))
        return
    if removed:
        log.info("removed %d half-written file(s) left by lost workers", removed)


def finish_recipe(recipe: Recipe, params: RecipeParams, ledger: Ledger) -> bool:
    """Run the recipe's ``finish`` hook on the run's done tasks and what their runs left
    for it (read from the ledger only for a recipe that has the hook); False (logged) if
    it failed."""
    if type(recipe).finish is Recipe.finish:
        return True
    try:
        done, notes = [], {}
        for task, note in ledger.done_tasks(FINISH_METRIC):
            done.append(task)
            if note is not None:
                notes[task.id] = note
        recipe.finish(params, done, notes)
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
        finished = finish_recipe(get_recipe(job.recipe), job.params, ledger)
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
