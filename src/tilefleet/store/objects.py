"""One storage API for local folders and object stores (S3, GCS, Azure through obstore).

Every write is atomic: a reader sees the old object, the new object, or nothing, never a
half-written file. Object stores give that for free (a PUT, or a completed multipart
upload, appears whole). Local folders get it from a uniquely named partial file next to
the target and ``os.replace``; a process killed in between leaves a
``*.tilefleet-partial-<pid>-*`` file that :meth:`Store.remove_partials` sweeps away once
its writer is gone (a live writer's partial is left alone, so two runs can share a folder).

Credentials are never passed in: obstore and GDAL read them from the environment of the
process that does the I/O, so they stay out of tasks, ledgers and logs.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache, wraps
from pathlib import Path
from typing import TypeVar

from tilefleet.errors import (
    NO_SPACE_ERRNOS,
    RETRYABLE,
    PermanentError,
    StorageFullError,
    classify,
)
from tilefleet.store.location import Location

T = TypeVar("T")
log = logging.getLogger("tilefleet")

PARTIAL_MARK = ".tilefleet-partial-"
#: Keys in one page of a listing (an S3 LIST request answers at most 1,000).
LIST_PAGE_KEYS = 1000


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key relative to the store root, and its size in bytes."""

    key: str
    size: int


def is_partial(key: str) -> bool:
    return PARTIAL_MARK in key.rsplit("/", 1)[-1]


def is_stale_partial(key: str) -> bool:
    """A partial whose writing process no longer runs on this machine. A name without a
    readable pid is stale; one from another machine sharing the folder may be mistaken
    for stale, which fails that write loudly (its rename finds nothing) but loses nothing."""
    if not is_partial(key):
        return False
    pid_text = key.rsplit(PARTIAL_MARK, 1)[1].split("-", 1)[0]
    if not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


class Store(ABC):
    """Objects below one :class:`Location`; keys are relative, ``/``-separated."""

    #: Whether a listing is a billed request of at most :data:`LIST_PAGE_KEYS` keys (object
    #: stores), rather than a local read.
    listing_is_request = True

    def __init__(self, location: Location):
        self.location = location

    @property
    def url(self) -> str:
        return self.location.url

    @abstractmethod
    def list_dir(self, prefix: str) -> list[ObjectInfo]:
        """Objects directly below ``prefix`` (a folder key, '' for the root): one listing,
        paginated as the backend needs, never a request per object."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object below ``prefix``, at any depth."""

    @abstractmethod
    def put_file(self, local_path: Path, key: str, *, move: bool = False) -> None:
        """Upload a finished local file as ``key``, atomically. With ``move`` the local file
        may be consumed (renamed into place when it is on the same file system)."""

    @abstractmethod
    def put_bytes(self, data: bytes, key: str, *, if_absent: bool = False) -> bool:
        """Write ``data`` as ``key``. With ``if_absent`` the write happens only if ``key`` does
        not exist yet, atomically, and the return value says whether it happened."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def gdal_path(self, key: str) -> str:
        """The name GDAL opens ``key`` by (a local path or a ``/vsis3/…`` style path)."""

    def remove_partials(self, listed: Iterable[ObjectInfo]) -> int:
        """Delete the leftovers of interrupted local writes among ``listed``."""
        stale = [info.key for info in listed if is_stale_partial(info.key)]
        if stale:
            self.delete(stale)
        return len(stale)

    def remove_partials_below(self, prefix: str = "") -> int:
        """Delete the leftovers of interrupted writes at any depth below ``prefix``. Object
        store writes are atomic and leave none, so only local folders are walked."""
        return 0


def _says_when_full(write: Callable[..., T]) -> Callable[..., T]:
    """A local write that a full file system refuses raises :class:`StorageFullError`
    naming the output key, in one line, instead of an ``OSError`` naming the partial file
    (which the write itself removes)."""

    @wraps(write)
    def checked(store: LocalStore, source, key: str, **options) -> T:
        try:
            return write(store, source, key, **options)
        except OSError as exc:
            if exc.errno not in NO_SPACE_ERRNOS:
                raise
            reason = f"{os.strerror(exc.errno)} on {store.root}"
            raise StorageFullError(
                f"cannot write {key}: the destination is full ({reason})"
            ) from None

    return checked


class LocalStore(Store):
    """A folder on a local or network file system.

    What is read by GDAL and what is written or deleted must lie inside the folder once
    every symbolic link is resolved: a link (to a file, or a linked folder on the way) that
    leads outside fails that key with :class:`PermanentError`, so a manifest row can never
    read, and a destination never write, outside the roots the job named."""

    listing_is_request = False

    def __init__(self, location: Location):
        super().__init__(location)
        self.root = Path(location.prefix)

    def _path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def _inside(self, key: str) -> Path:
        """The path of ``key``, checked to resolve inside the root (links followed)."""
        path = self._path(key)
        resolved = path.resolve()
        if resolved != self.root and not resolved.is_relative_to(self.root.resolve()):
            raise PermanentError(
                f"{key} leads outside {self.root} through a symbolic link (to {resolved})"
            )
        return path

    def list_dir(self, prefix: str) -> list[ObjectInfo]:
        folder = self._path(prefix)
        base = f"{prefix.rstrip('/')}/" if prefix else ""
        try:
            with os.scandir(folder) as entries:
                return [
                    ObjectInfo(base + entry.name, entry.stat().st_size)
                    for entry in entries
                    if entry.is_file()
                ]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        folder = self._path(prefix)
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(dirpath, name)
                yield ObjectInfo(path.relative_to(self.root).as_posix(), path.stat().st_size)

    def _partial_for(self, key: str) -> Path:
        target = self._inside(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._inside(key)  # a folder just made is inside: one linked on the way is not
        unique = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return target.with_name(f"{target.name}{PARTIAL_MARK}{unique}")

    def remove_partials_below(self, prefix: str = "") -> int:
        removed = 0
        for dirpath, _dirs, files in os.walk(self._path(prefix)):  # names only: no stat
            for name in files:
                if is_stale_partial(name):
                    Path(dirpath, name).unlink(missing_ok=True)
                    removed += 1
        return removed

    @_says_when_full
    def put_file(self, local_path: Path, key: str, *, move: bool = False) -> None:
        partial = self._partial_for(key)
        if move:
            try:  # a rename within one file system is atomic and copies nothing
                os.replace(local_path, self._path(key))
                return
            except OSError:
                pass  # another file system: copy instead
        try:
            shutil.copyfile(local_path, partial)
            os.replace(partial, self._path(key))
        finally:
            partial.unlink(missing_ok=True)

    @_says_when_full
    def put_bytes(self, data: bytes, key: str, *, if_absent: bool = False) -> bool:
        partial = self._partial_for(key)
        try:
            partial.write_bytes(data)
            if not if_absent:
                os.replace(partial, self._path(key))
                return True
            try:
                os.link(partial, self._path(key))  # fails if the target exists: atomic create
            except FileExistsError:
                return False
            return True
        finally:
            partial.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._inside(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def gdal_path(self, key: str) -> str:
        return str(self._inside(key))


_VSI_PREFIX = {"s3": "/vsis3", "gs": "/vsigs", "az": "/vsiaz", "abfs": "/vsiaz"}


class ObjectStore(Store):
    """A bucket prefix on S3 (or an S3-compatible endpoint), GCS or Azure, through obstore."""

    def __init__(self, location: Location, client_options: dict | None = None):
        super().__init__(location)
        from obstore.store import from_url

        bucket_url = f"{location.scheme}://{location.bucket}"
        options = dict(client_options or {})
        retries = int(options.pop("max_retries", DEFAULT_RETRIES))
        self._store = from_url(
            bucket_url, client_options=options, retry_config={"max_retries": retries}
        )

    def _key(self, key: str) -> str:
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    def _relative(self, path: str) -> str:
        prefix = self.location.prefix
        return path[len(prefix) + 1 :] if prefix else path

    def list_dir(self, prefix: str) -> list[ObjectInfo]:
        import obstore

        full = self._key(prefix).rstrip("/")
        listed = _read_again_if_cut(
            lambda: obstore.list_with_delimiter(self._store, f"{full}/" if full else None)
        )
        return [
            ObjectInfo(self._relative(meta["path"]), meta["size"]) for meta in listed["objects"]
        ]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        import obstore

        full = self._key(prefix).rstrip("/")
        pages = obstore.list(self._store, f"{full}/" if full else None, chunk_size=LIST_PAGE_KEYS)
        first = _read_again_if_cut(lambda: next(pages, []))  # later pages: the caller's
        for batch in itertools.chain([first], pages):
            for meta in batch:
                yield ObjectInfo(self._relative(meta["path"]), meta["size"])

    def put_file(self, local_path: Path, key: str, *, move: bool = False) -> None:
        import obstore

        if Path(local_path).stat().st_size > MULTIPART_FROM:
            self._abort_earlier_uploads(key)
        obstore.put(self._store, self._key(key), Path(local_path), chunk_size=MULTIPART_FROM)

    def _abort_earlier_uploads(self, key: str) -> None:
        """Abort the multipart uploads of ``key`` an earlier attempt left open when it was
        killed mid-upload (obstore aborts its own when a part fails, but a killed process
        aborts nothing); best effort: a leftover costs storage, never correctness."""
        from tilefleet.store.gdal_env import abort_pending_uploads

        try:
            abort_pending_uploads(self.gdal_path(key))
        except Exception as exc:  # e.g. no GDAL: the upload goes on regardless
            log.debug("could not abort earlier uploads of %s: %s", key, exc)

    def put_bytes(self, data: bytes, key: str, *, if_absent: bool = False) -> bool:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            obstore.put(self._store, self._key(key), data, mode="create" if if_absent else None)
        except (AlreadyExistsError, PreconditionError):
            return False
        return True

    def get_bytes(self, key: str) -> bytes:
        import obstore

        return _read_again_if_cut(lambda: bytes(obstore.get(self._store, self._key(key)).bytes()))

    def delete(self, keys: Iterable[str]) -> None:
        import obstore

        paths = [self._key(key) for key in keys]
        if paths:
            obstore.delete(self._store, paths)

    def exists(self, key: str) -> bool:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            _read_again_if_cut(lambda: obstore.head(self._store, self._key(key)))
        except (NotFoundError, FileNotFoundError):
            return False
        return True

    def gdal_path(self, key: str) -> str:
        return f"{_VSI_PREFIX[self.location.scheme]}/{self.location.bucket}/{self._key(key)}"


#: Reads obstore does not retry itself fail when the body of an answer is cut short (its
#: retries cover the request, not the reading of the body): such reads, which change
#: nothing, are made again this many times, after these delays (s).
READ_AGAIN_DELAYS_S = (0.2, 1.0, 3.0)


def _read_again_if_cut(read: Callable[[], T]) -> T:
    """``read()``, made again after a retryable failure (a body cut mid-way, a reset), so
    that the driver's listings and manifest reads ride out what a task's retry would."""
    for delay in READ_AGAIN_DELAYS_S:
        try:
            return read()
        except Exception as exc:
            if classify(exc) != RETRYABLE:
                raise
            time.sleep(delay)
    return read()


#: Every object-store request is bounded (obstore durations), by default: connecting; a
#: read that stalls (no byte for this long); a whole request (a PUT of one part, a GET of a
#: manifest). Requests that time out, HTTP 5xx/429 and dropped connections are retried by
#: obstore (``TILEFLEET_STORE_RETRIES`` times, 10 by default, within 3 minutes) before the
#: task sees the error. Each can be changed with the variable named beside it.
CLIENT_TIMEOUTS = {
    "connect_timeout": ("TILEFLEET_STORE_CONNECT_TIMEOUT", "10s"),
    "read_timeout": ("TILEFLEET_STORE_READ_TIMEOUT", "60s"),
    "timeout": ("TILEFLEET_STORE_TIMEOUT", "300s"),
}
DEFAULT_RETRIES = 10
#: Files larger than this are uploaded in parts of this size (obstore's default).
MULTIPART_FROM = 5 * 1024 * 1024


def _client_options(endpoint: str) -> dict:
    options = {
        key: os.environ.get(name, default) for key, (name, default) in CLIENT_TIMEOUTS.items()
    }
    options["max_retries"] = os.environ.get("TILEFLEET_STORE_RETRIES", str(DEFAULT_RETRIES))
    if endpoint.startswith("http://"):
        options["allow_http"] = True
    return options


def open_store(url: str | Path | Location) -> Store:
    """The store for a URL or path; cached per process (obstore clients pool connections)."""
    location = url if isinstance(url, Location) else Location.parse(url)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    options = tuple(sorted(_client_options(endpoint).items()))
    return _open_store(location, endpoint, options)


@lru_cache(maxsize=64)
def _open_store(
    location: Location, _endpoint: str, options: tuple[tuple[str, object], ...]
) -> Store:
    # The endpoint and the client options are part of the cache key, so a changed
    # environment gets a new client.
    return LocalStore(location) if location.is_local else ObjectStore(location, dict(options))
