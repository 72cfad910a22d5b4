"""Claims: which watcher works on which object, safe on object stores without rename.

A claim is a small JSON object created with an atomic create-if-absent (``If-None-Match: *``
on S3, ``link()`` on a file system). Claims carry a generation number, so a claim whose
holder died is taken over (by creating the next generation, atomically again) once it is
older than ``stale_after``.

Layout: ``{bucket root}/.tilefleet-watch/claims/<digest>.<generation>.json`` (for a local
source: ``{source}/.tilefleet-watch/claims/``), where ``<digest>`` is the SHA-256 of the
claimed object's full URL. A claim is deleted once the object it guards is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

from tilefleet.store.location import Location
from tilefleet.store.objects import Store

WATCH_DIR = ".tilefleet-watch"
CLAIMS_DIR = f"{WATCH_DIR}/claims"
_CLAIM_NAME = re.compile(r"^(?P<digest>[0-9a-f]{64})\.(?P<generation>\d+)\.json$")


@dataclass(frozen=True)
class Claim:
    """A claim this watcher holds on one object (a raw manifest or a processing file)."""

    digest: str
    generation: int
    keys: tuple[str, ...]  # every claim object of the digest up to this one, for release
    previous: dict[str, Any] | None  # content of the generation taken over, if any


class ClaimBook:
    """Atomic claims in ``.tilefleet-watch/claims/``: who works on which object.

    A claim is created with create-if-absent, then read back and compared with the random
    token it carries: an object store whose conditional create is a check followed by a
    write (not atomic, as moto's server is) is caught in all but the narrowest interleaving;
    on AWS S3, MinIO and a file system the create itself is atomic.
    """

    def __init__(self, store: Store, stale_after_s: float):
        self.store = store
        self.stale_after_s = stale_after_s
        self.generations: dict[str, list[int]] = {}

    def load(self) -> None:
        """Read the claims folder with one listing."""
        self.generations = {}
        for info in self.store.list(CLAIMS_DIR):
            match = _CLAIM_NAME.match(info.key.rsplit("/", 1)[-1])
            if match:
                self.generations.setdefault(match["digest"], []).append(int(match["generation"]))

    def acquire(
        self, subject_url: str, held_since: float | None, extra: dict[str, Any] | None = None
    ) -> Claim | None:
        """Claim ``subject_url``; None when another watcher holds it (or just did).

        ``held_since`` is when an implicit holder (the watcher that wrote a processing file)
        took the subject; with no claim objects yet, the subject is free once that is older
        than ``stale_after``. A subject with claims is free once its latest claim is.
        """
        digest = hashlib.sha256(subject_url.encode()).hexdigest()
        generations = sorted(self.generations.get(digest, []))
        previous = None
        if generations:
            previous = self._read(self._key(digest, generations[-1]))
            if previous is None or not self._is_stale(float(previous.get("claimed_at", 0))):
                return None
        elif held_since is not None and not self._is_stale(held_since):
            return None
        generation = generations[-1] + 1 if generations else 0
        token = secrets.token_hex(16)
        body = {
            "subject": subject_url,
            "generation": generation,
            "token": token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "claimed_at": time.time(),
            **(extra or {}),
        }
        key = self._key(digest, generation)
        if not self.store.put_bytes(json.dumps(body).encode(), key, if_absent=True):
            return None
        written = self._read(key)
        if written is None or written.get("token") != token:
            return None
        keys = tuple(self._key(digest, g) for g in [*generations, generation])
        return Claim(digest, generation, keys, previous)

    def release(self, claim: Claim) -> None:
        """Delete the claim (and the stale generations it took over)."""
        self.store.delete(claim.keys)

    def _is_stale(self, since: float) -> bool:
        return time.time() - since > self.stale_after_s

    def _read(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.store.get_bytes(key))
        except Exception as exc:
            if is_missing(exc):
                return None
            raise

    @staticmethod
    def _key(digest: str, generation: int) -> str:
        return f"{CLAIMS_DIR}/{digest}.{generation:06d}.json"


def claims_location(source: Location) -> Location:
    """Claims live at the bucket root, so watchers of nested prefixes of one bucket agree."""
    if source.is_local:
        return source
    return Location(source.scheme, source.bucket, "")


def is_missing(exc: BaseException) -> bool:
    """Whether ``exc`` says the object does not exist (file system or object store)."""
    return isinstance(exc, FileNotFoundError) or type(exc).__name__ == "NotFoundError"
