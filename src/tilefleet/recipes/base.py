"""The contract every recipe fulfils, whatever executor runs it.

A recipe turns validated parameters into tasks (``plan``) and does the work of one task
(``run``): read inputs, call pure ``ops``, write outputs through ``store``, done marker last.
It never knows which executor runs it, and raises :class:`~tilefleet.errors.PermanentError`
for bad input it detects, so that only transient trouble is retried.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from tilefleet import plugins
from tilefleet.task import Task

if TYPE_CHECKING:
    from tilefleet.recipes.params import RecipeParams
    from tilefleet.secrets import SecretSource


#: The metric a task's ``run`` returns for its recipe's :meth:`Recipe.finish` only (what it
#: wrote that the hook would otherwise read back: a STAC item's extent). The ledger keeps
#: it with the attempt; the reports leave it out.
FINISH_METRIC = "finish"


def __getattr__(name: str) -> Any:
    # ``from tilefleet.recipes.base import RecipeParams`` (what users' recipes write) still
    # works, and imports pydantic only then.
    if name == "RecipeParams":
        from tilefleet.recipes.params import RecipeParams

        return RecipeParams
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ParamsModel:
    """A recipe's ``Params`` named by its import path, ``"package.module:Class"``, and
    imported on first use (``Params = ParamsModel("mypackage.ndi_params:NdiParams")``).

    A worker imports a recipe's module to run its tasks but never validates parameters:
    with its model in a module of its own, a worker imports neither that module nor
    pydantic (about 60 ms of each fresh worker's start, on every call of a serverless
    function). A recipe may also set ``Params`` to the class itself."""

    def __init__(self, reference: str) -> None:
        self.reference = reference

    def __get__(self, instance: object, owner: type | None = None) -> type[RecipeParams]:
        from tilefleet.recipes.params import RecipeParams

        # The import is the registry's, made once (plugins caches it).
        return plugins.load("parameters model", self.reference, RecipeParams)


class Recipe(ABC):
    """A workload: its ``name`` (job files, commands, run ids), its ``Params`` model (job
    keys, command-line options, schema; a class, or a :class:`ParamsModel` naming one) and
    the two steps every executor calls."""

    name: ClassVar[str]
    Params: ClassVar[type[RecipeParams]]
    #: One line for ``--help`` and the docs; the class docstring's first line by default.
    summary: ClassVar[str] = ""
    #: Seconds per task assumed by the estimate until a run of this recipe has been measured.
    default_task_s: ClassVar[float] = 5.0
    #: The same per kind of task (see :meth:`task_kind`), for recipes whose tasks differ.
    default_task_s_by_kind: ClassVar[dict[str, float]] = {}
    #: Seconds an attempt may run before it is stopped and retried, unless the job sets
    #: ``task_timeout``: generous, so that only an attempt that hangs is stopped.
    default_task_timeout_s: ClassVar[float] = 3600.0
    #: Columns of a task's source row, in report order (failed.csv, succeeded.csv).
    source_columns: ClassVar[tuple[str, ...]] = ()
    #: The parameter holding the CSV manifest the tasks come from, for recipes planned from
    #: one (``tilefleet watch`` runs such a recipe on every manifest dropped in a bucket).
    manifest_param: ClassVar[str | None] = None

    @classmethod
    def reference(cls) -> str:
        """How a worker finds this recipe: its ``module:Class`` path, which tasks carry."""
        return plugins.reference_of(cls)

    @classmethod
    def describe(cls) -> str:
        """The recipe's one-line summary."""
        return cls.summary or (cls.__doc__ or cls.name).strip().splitlines()[0]

    @abstractmethod
    def plan(self, params: RecipeParams) -> Iterable[Task]:
        """All tasks of a job, in order; bad rows become tasks with ``rejected`` set.

        The engine reads them once, as they come (a list, or a generator for a plan of
        millions: it never holds them all), and raises the first error they raise."""

    @abstractmethod
    def run(self, task: Task) -> dict[str, Any]:
        """Do one task; return small metrics (bytes written, …). Raise on failure.

        A ``warning`` metric (one line) is listed in the run's reports: for a task that
        succeeded with a caveat the user should see (inputs used without a cloud mask).
        A :data:`FINISH_METRIC` is kept for :meth:`finish` alone, out of the reports."""

    def prepare(self, params: RecipeParams) -> None:  # noqa: B027 - optional hook
        """Create what all tasks write into (a Zarr template, a collection), once, after
        ``plan`` and before any task runs; never called for a dry run. Must be idempotent."""

    def finish(  # noqa: B027 - optional hook
        self, params: RecipeParams, done: list[Task], notes: Mapping[str, Any]
    ) -> None:
        """Publish what spans all tasks (a STAC collection linking the items written), once
        the run has settled, given the tasks that are done (this run or before) and, by
        task id, the :data:`FINISH_METRIC` their ``run`` returned (an item's extent), so
        that the outputs need not be read back; a done task has none where it was done
        outside this run dir's record (found done by its marker, or run by an earlier
        version). Called after every run that was not interrupted, also when some tasks
        failed, and by the final node of a detached run. Must be idempotent."""

    def task_sizes(self, params: RecipeParams, tasks: list[Task]) -> dict[str, float]:
        """The size of each task in this recipe's unit of work (input bytes, pixels read), by
        task id, so that estimates scale with it; cheap to get (a listing, the plan), and
        empty when unknown."""
        return {}

    def task_memory(self, task: Task) -> int | None:
        """Bytes of memory one attempt of ``task`` needs at most, estimated before any pixel
        is read (from an input's header); None when unknown. Called on the worker, before
        ``run``, when the job sets ``max_task_memory``: a task above it fails at once."""
        return None

    def task_kind(self, task: Task) -> str | None:
        """The kind of work ``task`` is (a product, a stage), when a recipe's tasks differ
        enough to be timed and costed apart: estimates, history and measured cost are then
        kept per kind. None (the default): all of the recipe's tasks are alike."""
        return None

    def task_kinds(self, tasks: Iterable[Task]) -> dict[str, str | None]:
        """Each task's :meth:`task_kind` by id; empty for a recipe whose tasks are all alike
        (one that keeps the default), so a million such tasks cost no mapping."""
        if type(self).task_kind is Recipe.task_kind:
            return {}
        return {task.id: self.task_kind(task) for task in tasks}

    def secret_sources(self, params: RecipeParams) -> list[SecretSource]:
        """Secrets the driver obtains once and shares with every worker in memory
        (temporary credentials of a protected bucket; see :mod:`tilefleet.secrets`),
        refreshed before they expire; a task reads them with ``secrets.get(name)``."""
        return []

    def outputs_url(self, params: RecipeParams) -> str:
        """Where the outputs of a job go, for the summary printed after a run."""
        return str(getattr(params, "dest", ""))
