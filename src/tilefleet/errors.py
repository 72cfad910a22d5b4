"""Error classes shared by every layer, the exit status of every command, and the rule
that sorts any exception into *retryable* (worth another attempt) or *permanent* (fail the
task at once).

Recipes raise :class:`PermanentError` for bad input they detect themselves; everything
else is classified from its type and message, because GDAL, obstore and the network
libraries report transient trouble (HTTP 5xx, 429, timeouts) through generic exceptions.
"""

from __future__ import annotations

import re
from enum import IntEnum

RETRYABLE = "retryable"
PERMANENT = "permanent"


class ExitCode(IntEnum):
    """The exit status of every ``tilefleet`` command (and of ``RunResult.exit_code``)."""

    OK = 0  #: every task succeeded or was already done
    PARTIAL = 1  #: some tasks failed
    ALL_FAILED = 2  #: every task that ended failed
    INVALID = 3  #: the job or the command line is invalid; nothing ran
    INTERRUPTED = 130  #: Ctrl-C or SIGTERM; rerun with the same run dir to finish


class TilefleetError(Exception):
    """Base of tilefleet's own errors."""


class JobError(TilefleetError):
    """The job itself is invalid (unreadable manifest or config, bad options, an unknown
    recipe): nothing runs, exit status 3."""

    exit_code = ExitCode.INVALID


class PermanentError(TilefleetError):
    """Bad input for one task: retrying cannot help."""


class RetryableError(TilefleetError):
    """A transient failure of one task (throttling, timeout, lost worker)."""


class WorkerLostError(RetryableError):
    """The process or machine running a task died before it reported back."""


# Messages GDAL (/vsis3, /vsicurl), obstore and HTTP clients use for transient trouble.
_TRANSIENT = re.compile(
    r"(?:code|status)\D{0,12}(?:429|5\d\d)\b|timed? ?out|timeout|throttl|slow ?down"
    r"|too many requests|bad gateway|gateway time"
    r"|connection (?:reset|refused|aborted|closed)|temporarily unavailable|service unavailable"
    r"|broken pipe|internalerror|requesttimeout|curl error",
    re.IGNORECASE,
)


def classify(exc: BaseException) -> str:
    """Return :data:`RETRYABLE` or :data:`PERMANENT` for an exception raised by a task."""
    if isinstance(exc, RetryableError):
        return RETRYABLE
    if isinstance(exc, PermanentError | FileNotFoundError | PermissionError):
        return PERMANENT
    if isinstance(exc, TimeoutError | ConnectionError):
        return RETRYABLE
    if _TRANSIENT.search(str(exc)):
        return RETRYABLE
    return PERMANENT


def one_line(exc: BaseException, limit: int = 400) -> str:
    """A single-line, bounded description of an exception for ledgers and CSV reports."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, TilefleetError) and type(exc).__name__ not in text:
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
