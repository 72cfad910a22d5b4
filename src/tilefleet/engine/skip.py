"""Finding tasks whose outputs are already done, by listing, never by a request per task.

Done markers are grouped by folder and each folder is listed once (paginated by the
store), so checking a million tasks costs one LIST per output folder instead of a million
HEAD requests. A marker only counts when it is a non-empty object: it is written last, so
its presence means the task's other outputs are complete. Leftovers of interrupted local
writes found on the way are removed.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable

from tilefleet.store.objects import open_store
from tilefleet.task import Task


def find_done(tasks: Iterable[Task]) -> set[str]:
    """Ids of the tasks whose done marker exists in their destination."""
    by_folder: dict[tuple[str, str], list[Task]] = defaultdict(list)
    for task in tasks:
        if task.marker and task.rejected is None:
            by_folder[(task.dest, posixpath.dirname(task.marker))].append(task)
    done: set[str] = set()
    for (dest, folder), group in by_folder.items():
        store = open_store(dest)
        listed = store.list_dir(folder)
        store.remove_partials(listed)
        present = {info.key for info in listed if info.size > 0}
        done.update(task.id for task in group if task.marker in present)
    return done


def sweep_partials(tasks: Iterable[Task]) -> int:
    """Remove what the workers of ``tasks`` left half-written when they died, anywhere in
    the tasks' destinations, so a run ends with whole outputs only; returns how many."""
    return sum(open_store(dest).remove_partials_below() for dest in {t.dest for t in tasks})
