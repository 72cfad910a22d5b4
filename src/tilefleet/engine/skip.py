"""Finding tasks whose outputs are already done, by listing, never by a request per task.

Done markers are grouped by folder and each folder is listed once (paginated by the
store), the folders in parallel, so checking a million tasks costs one LIST per output
folder instead of a million HEAD requests, and takes about as long as the slowest few
folders. On an object store, where each LIST is a billed request, the folders of one
parent (a ``{year}/{X}/`` column of TTC tile folders) are listed together in one
recursive listing of the parent, 1,000 keys a request; should the parent hold more than
its folders alone would take requests for, that listing stops there and the folders are
listed one by one (so at worst twice the requests). A marker only counts when it is a
non-empty object: it is written last, so its presence means the task's other outputs are
complete. Leftovers of interrupted local writes found on the way are removed.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from tilefleet.store import objects
from tilefleet.store.objects import open_store
from tilefleet.task import Task

#: Folders listed at once: listings wait on the store, not on this process.
PARALLEL_LISTINGS = 32
#: Folders of markers below one parent from which the parent is listed instead of them.
LISTED_TOGETHER_FROM = 4

_Folder = tuple[str, str]  # (dest, folder key)


def find_done(tasks: Iterable[Task]) -> set[str]:
    """Ids of the tasks whose done marker exists in their destination."""
    return find_done_markers(
        (t.id, t.dest, t.marker) for t in tasks if t.marker and t.rejected is None
    )


def find_done_markers(markers: Iterable[tuple[str, str, str]]) -> set[str]:
    """Ids among ``(task id, dest, marker)`` whose marker exists (a falsy marker: never)."""
    by_folder: dict[_Folder, dict[str, str]] = defaultdict(dict)
    for task_id, dest, marker in markers:
        if marker:
            by_folder[(dest, posixpath.dirname(marker))][marker] = task_id
    if not by_folder:
        return set()
    singles, parents = _listings(by_folder)
    done: set[str] = set()
    workers = min(PARALLEL_LISTINGS, len(singles) + len(parents))
    with ThreadPoolExecutor(workers, thread_name_prefix="tilefleet-list") as pool:
        pending: set[Future] = {
            pool.submit(_done_in_folder, where, by_folder[where]) for where in singles
        }
        pending |= {
            pool.submit(_done_below_parent, where, {f: by_folder[(where[0], f)] for f in folders})
            for where, folders in parents.items()
        }
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                found, one_by_one = future.result()
                done.update(found)
                pending |= {
                    pool.submit(_done_in_folder, where, by_folder[where]) for where in one_by_one
                }
    return done


def _listings(
    by_folder: dict[_Folder, dict[str, str]],
) -> tuple[list[_Folder], dict[_Folder, list[str]]]:
    """The folders listed alone, and the parents listed for their folders (on object
    stores, where :data:`LISTED_TOGETHER_FROM` folders or more share one)."""
    billed = {dest: open_store(dest).listing_is_request for dest, _ in by_folder}
    below: dict[_Folder, list[str]] = defaultdict(list)
    for dest, folder in by_folder:
        if billed[dest] and folder:
            below[(dest, posixpath.dirname(folder))].append(folder)
    parents = {where: f for where, f in below.items() if len(f) >= LISTED_TOGETHER_FROM}
    together = {(dest, f) for (dest, _), folders in parents.items() for f in folders}
    return [where for where in by_folder if where not in together], parents


def _done_below_parent(
    where: _Folder, folders: dict[str, dict[str, str]]
) -> tuple[list[str], list[_Folder]]:
    """The done ids of ``folders`` (folder -> marker -> id) from one recursive listing of
    their parent; or none and every folder back, to be listed alone, once the parent holds
    more keys than the folders' own listings would have taken requests for."""
    dest, parent = where
    store = open_store(dest)
    most = len(folders) * objects.LIST_PAGE_KEYS
    found, mine = [], []
    for count, info in enumerate(store.list(parent), 1):
        if count > most:
            return [], [(dest, folder) for folder in folders]
        markers = folders.get(posixpath.dirname(info.key))
        if markers is not None:
            mine.append(info)
            if info.size > 0 and info.key in markers:
                found.append(markers[info.key])
    store.remove_partials(mine)
    return found, []


def _done_in_folder(where: _Folder, markers: dict[str, str]) -> tuple[list[str], list[_Folder]]:
    dest, folder = where
    store = open_store(dest)
    listed = store.list_dir(folder)
    store.remove_partials(listed)
    return [markers[info.key] for info in listed if info.size > 0 and info.key in markers], []


def sweep_partials(tasks: Iterable[Task]) -> int:
    """Remove what the workers of ``tasks`` left half-written when they died, anywhere in
    the tasks' destinations, so a run ends with whole outputs only; returns how many."""
    return sum(open_store(dest).remove_partials_below() for dest in {t.dest for t in tasks})
