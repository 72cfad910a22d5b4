"""Parsing and joining the URLs that name inputs and destinations.

A location is either a local folder (a plain path or ``file://``) or an object-store
prefix (``s3://bucket/prefix``; ``gs://`` and ``az://`` work the same way through
obstore). Keys below a location always use ``/``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

REMOTE_SCHEMES = ("s3", "gs", "az", "abfs")


@dataclass(frozen=True)
class Location:
    """A parsed storage URL: ``scheme`` ('file' or a remote scheme), ``bucket`` and ``prefix``."""

    scheme: str
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str | Path) -> Location:
        text = str(url)
        parsed = urlparse(text)
        if parsed.scheme in REMOTE_SCHEMES:
            if not parsed.netloc:
                raise ValueError(f"{text!r} names no bucket")
            return cls(parsed.scheme, parsed.netloc, parsed.path.strip("/"))
        if parsed.scheme == "file":
            text = parsed.path
        elif parsed.scheme and len(parsed.scheme) > 1:
            raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r} in {text!r}")
        return cls("file", "", str(Path(text).expanduser().resolve()))

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    @property
    def url(self) -> str:
        if self.is_local:
            return self.prefix
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    def join(self, key: str) -> str:
        """The full URL (or local path) of ``key`` below this location."""
        if self.is_local:
            return str(Path(self.prefix, key))
        return f"{self.url}/{key}"

    def __str__(self) -> str:
        return self.url


def _checked_location(url: str) -> str:
    Location.parse(url)  # ValueError: an unsupported scheme, a bucket missing
    return url


def __getattr__(name: str) -> Any:
    # ``StoreURL`` is made on first use: parameters models use it, and a worker, which
    # imports this module for its tasks, imports no pydantic (see recipes.base.ParamsModel).
    if name == "StoreURL":
        from typing import Annotated

        from pydantic import AfterValidator

        #: A parameter naming a folder or an object-store prefix (or file): checked with
        #: the job, so ``gopher://x`` is an invalid job, not a run whose every task fails.
        globals()[name] = Annotated[str, AfterValidator(_checked_location)]
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def safe_relative_key(path: str) -> str:
    """Normalise a manifest path to a key below a root, refusing anything that escapes it.

    Absolute paths, drive letters, URLs and ``..`` segments that climb above the root are
    rejected, so a manifest can never read or write outside the roots it was given.
    """
    text = path.strip().replace("\\", "/")
    if not text:
        raise ValueError("empty path")
    control = next((c for c in text if ord(c) < 32 or ord(c) == 127), None)
    if control is not None:  # NUL ends a C string, a newline splits a log line
        raise ValueError(f"path {path!r} holds a control character ({control!r})")
    if text.startswith("/") or "://" in text or (len(text) > 1 and text[1] == ":"):
        raise ValueError(f"path {path!r} is absolute; it must be relative to the input root")
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../") or normal == ".":
        raise ValueError(f"path {path!r} escapes the input root")
    return normal
