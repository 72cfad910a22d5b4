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
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from tilefleet.store import objects
from tilefleet.store.objects import open_store
from tilefleet.task import Task

#: Folders listed at once on an object store: its listings wait on the network.
PARALLEL_LISTINGS = 32
#: ... and on local folders, whose listing is this process's own work under the GIL:
#: 32 threads take 2 to 2.6 times as long as 1 over 100,000 local files (1,000 folders),
#: 4 take 1.25 times, and still hide the latency of a network file system.
LOCAL_PARALLEL_LISTINGS = 4
#: Folders of markers below one parent from which the parent is listed instead of them.
LISTED_TOGETHER_FROM = 4

_Folder = tuple[str, str]  # (dest, folder key)
#: A listing's (dest, non-empty keys, folders to list one by one instead).
_Listed = tuple[str, list[str], list[_Folder]]


def find_done(tasks: Iterable[Task]) -> set[str]:
    """Ids of the tasks whose done marker exists in their destination."""
    return find_done_markers(
        (t.id, t.dest, t.marker) for t in tasks if t.marker and t.rejected is None
    )


def find_done_markers(markers: Iterable[tuple[str, str, str]]) -> set[str]:
    """Ids among ``(task id, dest, marker)`` whose marker exists (a falsy marker: never).
    Only the keys listed are held as a set: a plan of millions over a new destination
    (nothing listed) costs no look-up per task."""
    markers = [m for m in markers if m[2]]
    folders = {(dest, posixpath.dirname(marker)) for _, dest, marker in markers}
    listed: dict[str, set[str]] = {}
    for dest, keys in listed_markers(folders):
        listed.setdefault(dest, set()).update(keys)
    if not listed:
        return set()
    return {task_id for task_id, dest, marker in markers if marker in listed.get(dest, ())}


def listed_markers(folders: Iterable[_Folder]) -> Iterator[tuple[str, list[str]]]:
    """``(dest, keys)`` of the non-empty objects directly in ``folders`` (``(dest, folder
    key)``), a listing at a time, as the listings end: what may be a done marker there."""
    folders = set(folders)
    if not folders:
        return
    # Whether each destination's listings are billed requests (an object store).
    billed = {dest: open_store(dest).listing_is_request for dest in {dest for dest, _ in folders}}
    singles, parents = _listings(folders, billed)
    listings: deque[tuple[Callable[..., _Listed], tuple[Any, ...]]] = deque(
        (_listed_in_folder, (where,)) for where in singles
    )
    listings.extend((_listed_below_parent, (where, set(below))) for where, below in parents.items())
    workers = min(
        PARALLEL_LISTINGS if any(billed.values()) else LOCAL_PARALLEL_LISTINGS, len(listings)
    )
    with ThreadPoolExecutor(workers, thread_name_prefix="tilefleet-list") as pool:
        # A few listings per thread in flight, not all of them: each wait looks at every
        # pending one, so tens of thousands of folders pending would cost their square.
        pending: set[Future] = set()
        while listings or pending:
            while listings and len(pending) < 2 * workers:
                listing, args = listings.popleft()
                pending.add(pool.submit(listing, *args))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                dest, keys, one_by_one = future.result()
                yield dest, keys
                listings.extend((_listed_in_folder, (where,)) for where in one_by_one)


def _listings(
    folders: set[_Folder], billed: dict[str, bool]
) -> tuple[list[_Folder], dict[_Folder, list[str]]]:
    """The folders listed alone, and the parents listed for their folders (on object
    stores, ``billed``, where :data:`LISTED_TOGETHER_FROM` folders or more share one)."""
    below: dict[_Folder, list[str]] = defaultdict(list)
    for dest, folder in folders:
        if billed[dest] and folder:
            below[(dest, posixpath.dirname(folder))].append(folder)
    parents = {where: f for where, f in below.items() if len(f) >= LISTED_TOGETHER_FROM}
    together = {(dest, f) for (dest, _), below in parents.items() for f in below}
    return [where for where in folders if where not in together], parents


def _listed_below_parent(where: _Folder, folders: set[str]) -> _Listed:
    """The non-empty keys in ``folders`` from one recursive listing of their parent; or
    none and every folder back, to be listed alone, once the parent holds more keys than
    the folders' own listings would have taken requests for."""
    dest, parent = where
    store = open_store(dest)
    most = len(folders) * objects.LIST_PAGE_KEYS
    mine = []
    for count, info in enumerate(store.list(parent), 1):
        if count > most:
            return dest, [], [(dest, folder) for folder in folders]
        if posixpath.dirname(info.key) in folders:
            mine.append(info)
    store.remove_partials(mine)
    return dest, [info.key for info in mine if info.size > 0], []


def _listed_in_folder(where: _Folder) -> _Listed:
    dest, folder = where
    store = open_store(dest)
    listed = store.list_dir(folder)
    store.remove_partials(listed)
    return dest, [info.key for info in listed if info.size > 0], []


def sweep_partials(tasks: Iterable[Task]) -> int:
    """Remove what the workers of ``tasks`` left half-written when they died, anywhere in
    the tasks' destinations, so a run ends with whole outputs only; returns how many."""
    return sum(open_store(dest).remove_partials_below() for dest in {t.dest for t in tasks})
