"""Finding tasks whose outputs are already done, by listing, never by a request per task.

Done markers are grouped by folder and each folder is listed once (paginated by the
store), the folders in parallel, so checking a million tasks costs one LIST per output
folder instead of a million HEAD requests, and takes about as long as the slowest few
folders. A marker only counts when it is a non-empty object: it is written last, so
its presence means the task's other outputs are complete. Leftovers of interrupted local
writes found on the way are removed.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from tilefleet.store.objects import open_store
from tilefleet.task import Task

#: Folders listed at once: listings wait on the store, not on this process.
PARALLEL_LISTINGS = 32


def find_done(tasks: Iterable[Task]) -> set[str]:
    """Ids of the tasks whose done marker exists in their destination."""
    return find_done_markers(
        (t.id, t.dest, t.marker) for t in tasks if t.marker and t.rejected is None
    )


def find_done_markers(markers: Iterable[tuple[str, str, str]]) -> set[str]:
    """Ids among ``(task id, dest, marker)`` whose marker exists (a falsy marker: never)."""
    by_folder: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for task_id, dest, marker in markers:
        if marker:
            by_folder[(dest, posixpath.dirname(marker))][marker] = task_id
    if not by_folder:
        return set()
    done: set[str] = set()
    workers = min(PARALLEL_LISTINGS, len(by_folder))
    with ThreadPoolExecutor(workers, thread_name_prefix="tilefleet-list") as pool:
        for found in pool.map(_done_in_folder, by_folder.keys(), by_folder.values()):
            done.update(found)
    return done


def _done_in_folder(where: tuple[str, str], markers: dict[str, str]) -> list[str]:
    dest, folder = where
    store = open_store(dest)
    listed = store.list_dir(folder)
    store.remove_partials(listed)
    return [markers[info.key] for info in listed if info.size > 0 and info.key in markers]


def sweep_partials(tasks: Iterable[Task]) -> int:
    """Remove what the workers of ``tasks`` left half-written when they died, anywhere in
    the tasks' destinations, so a run ends with whole outputs only; returns how many."""
    return sum(open_store(dest).remove_partials_below() for dest in {t.dest for t in tasks})
