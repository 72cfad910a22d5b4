"""The Python API: run or plan a job from a notebook or a script, as the command line does.

    import tilefleet

    result = tilefleet.run(
        "cogify", manifest="m.csv", input_root="s3://raw", dest="s3://cogs", workers=8
    )
    print(result.summary())
    for task in result.failed:
        print(task.id, task.reason)

A job is named by its recipe and keyword arguments (the keys of a job file), by a
:class:`Job`, or by the path of a YAML job file. A job file of ``steps:`` is a chain
(:mod:`tilefleet.chain`): :func:`run` runs its steps in order (``from_step``/``to_step``
choose some) and returns a :class:`~tilefleet.chain.ChainResult`.

Local workers are separate processes that import nothing of the calling script, but
Python's ``spawn`` start method makes each of them import the script itself: a script that
calls :func:`run` at its top level, without an ``if __name__ == "__main__":`` guard, is
refused with one line saying so.
"""

from __future__ import annotations

import ast
import functools
import inspect
import multiprocessing
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tilefleet.chain import Chain, ChainResult, chain_from_document, is_chain_document, run_chain
from tilefleet.engine.callbacks import RunCallback
from tilefleet.engine.job import Job, build_job
from tilefleet.engine.progress import RunProgress
from tilefleet.engine.result import RunResult
from tilefleet.engine.run import run_job
from tilefleet.errors import JobError
from tilefleet.jobs import job_from_document, read_job_document
from tilefleet.jobs import load_job as _load_job_file

JobLike = str | Path | Job | Chain


def run(
    job: JobLike,
    /,
    *,
    callbacks: Sequence[RunCallback] = (),
    progress: bool = True,
    confirm: Callable[[str], bool] | None = None,
    from_step: str | None = None,
    to_step: str | None = None,
    **values: Any,
) -> RunResult | ChainResult:
    """Run a job and return what it did; task failures are in the result, never raised.

    ``job`` is a recipe name (its parameters and run options as keyword arguments), a
    :class:`Job`, or a YAML job file (keyword arguments override its keys); a chain file
    (or :class:`~tilefleet.chain.Chain`) runs its steps ``from_step`` … ``to_step``.
    ``callbacks`` follow the run; ``progress`` adds the progress bar (or periodic log lines
    off a terminal). ``confirm`` answers the cost question of billed executors (else pass
    ``yes=True``). Raises :class:`~tilefleet.errors.JobError` for an invalid job.
    """
    refuse_unguarded_script()
    follow = [*callbacks, RunProgress()] if progress else list(callbacks)
    found = _job_or_chain(job, values, from_step, to_step)
    if isinstance(found, Chain):
        return run_chain(
            found,
            first=from_step,
            last=to_step,
            dry_run=bool(values.get("dry_run")),
            confirm=confirm,
            callbacks=follow,
        )
    return run_job(found, confirm=confirm, callbacks=follow)


def plan(
    job: JobLike, /, *, from_step: str | None = None, to_step: str | None = None, **values: Any
) -> RunResult | ChainResult:
    """Plan a job (or every step of a chain), check its destination and estimate it, run
    nothing (a dry run)."""
    found = _job_or_chain(job, {**values, "dry_run": True}, from_step, to_step)
    if isinstance(found, Chain):
        return run_chain(found, first=from_step, last=to_step, dry_run=True)
    return run_job(found)


def load_job(path: str | Path, /, **overrides: Any) -> Job:
    """Read and validate a YAML job file; ``overrides`` (not None) replace its keys."""
    return _load_job_file(Path(path), overrides)


def _job_or_chain(
    job: JobLike, values: dict[str, Any], from_step: str | None, to_step: str | None
) -> Job | Chain:
    """The job, or the chain, ``job`` names, with ``values`` applied (a chain's apply to
    every step); a job file is read once."""
    if isinstance(job, Chain):
        return job
    document = read_job_document(Path(job)) if _is_job_file(job) else None
    if document is not None and is_chain_document(document):
        overrides = {k: v for k, v in values.items() if k != "dry_run"}
        return chain_from_document(document, Path(job).resolve().parent, overrides, Path(job))
    if from_step or to_step:
        raise JobError("from/to steps are for chains (job files of steps:)")
    if isinstance(job, Job):
        return job.model_copy(update=values) if values else job
    if document is not None:
        return job_from_document(document, Path(job), values)
    return build_job({"recipe": job, **values})


def _is_job_file(job: JobLike) -> bool:
    return isinstance(job, Path) or (isinstance(job, str) and job.endswith((".yaml", ".yml")))


def refuse_unguarded_script() -> None:
    """:class:`JobError` when called from the top level of a script outside its
    ``__main__`` guard, or while a worker process imports such a script: the workers would
    each run the job again."""
    if multiprocessing.parent_process() is not None and _main_name() == "__mp_main__":
        raise JobError(_UNGUARDED.format(script=_main_file() or "the main script"))
    script = _main_file()
    if script is None:  # a notebook, the REPL, python -c, the tilefleet command
        return
    main_globals = vars(sys.modules["__main__"])
    frame = inspect.currentframe()
    while frame is not None:  # the main script's own top-level line that led here
        if frame.f_code.co_name == "<module>" and frame.f_globals is main_globals:
            if not _inside_main_guard(script, frame.f_lineno):
                raise JobError(_UNGUARDED.format(script=script))
            return
        frame = frame.f_back


_UNGUARDED = (
    "tilefleet.run() is called at the top level of {script}, whose worker processes import "
    'it again: put the call under `if __name__ == "__main__":`'
)


def _main_name() -> str | None:
    return getattr(sys.modules.get("__main__"), "__name__", None)


def _main_file() -> str | None:
    """The file workers will import as the main module, if any."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec = getattr(main, "__spec__", None)
    if spec is not None and (spec.name == "__main__" or spec.name.endswith(".__main__")):
        return None  # python -m package: workers skip a package's __main__
    return path  # None in a notebook, the REPL or python -c: nothing to import


@functools.cache
def _main_guards(script: str) -> tuple[tuple[int, int], ...] | None:
    """Line ranges of the ``if __name__ == "__main__":`` blocks at a script's top level;
    None when the script cannot be read (then nothing is refused)."""
    try:
        tree = ast.parse(Path(script).read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    return tuple(
        (node.lineno, node.end_lineno or node.lineno)
        for node in tree.body
        if isinstance(node, ast.If) and _is_main_test(node.test)
    )


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    sides = [test.left, *test.comparators]
    names = {side.id for side in sides if isinstance(side, ast.Name)}
    texts = {side.value for side in sides if isinstance(side, ast.Constant)}
    return names == {"__name__"} and texts == {"__main__"} and isinstance(test.ops[0], ast.Eq)


def _inside_main_guard(script: str, line: int) -> bool:
    guards = _main_guards(script)
    return guards is None or any(first <= line <= last for first, last in guards)
