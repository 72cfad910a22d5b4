"""Error classes shared by every layer, the exit status of every command, and the rule
that sorts any exception into *retryable* (worth another attempt) or *permanent* (fail the
task at once).

Recipes raise :class:`PermanentError` for bad input they detect themselves; everything
else is classified from its type and message, because GDAL, obstore and the network
libraries report transient trouble (HTTP 5xx, 429, timeouts) through generic exceptions.
"""

from __future__ import annotations

import os
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


#: Names of environment variables whose values are secrets (credentials, tokens, keys).
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|CREDENTIAL|_KEY(?:_ID)?$|SAS", re.IGNORECASE)
#: Token-shaped fields of error bodies (AWS's XML, JSON answers, signed URLs), value in group 2.
_SECRET_FIELD = re.compile(
    r"(<(?:Token|SessionToken|SecretAccessKey|Signature|StringToSign\w*)>)([^<]*)"
    r"|(\"(?:\w*[Tt]oken|\w*[Ss]ecret\w*|[Pp]assword|[Ss]ignature)\"\s*:\s*\")([^\"]*)"
    r"|((?:X-Amz-Security-Token|X-Amz-Credential|X-Amz-Signature|[Ss]ig|[Tt]oken)=)([^&\s\"']+)"
)
REDACTED = "***"
#: Secrets shorter than this are left alone: they would blank out ordinary words.
_MIN_SECRET_LENGTH = 6


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """``text`` with every secret it holds replaced by ``***``: the value of any credential
    variable of the environment, and token-shaped fields of error bodies (an S3 answer
    echoing the session token). Error text is kept in ledgers, reports and logs."""
    environ = os.environ if environ is None else environ
    for name, value in environ.items():
        if len(value) >= _MIN_SECRET_LENGTH and SECRET_NAME.search(name) and value in text:
            text = text.replace(value, REDACTED)
    return _SECRET_FIELD.sub(_redact_field, text)


def _redact_field(match: re.Match) -> str:
    groups = match.groups()
    for start in (0, 2, 4):
        if groups[start] is not None:
            return groups[start] + REDACTED
    return match.group(0)


def one_line(exc: BaseException, limit: int = 400) -> str:
    """A single-line, bounded description of an exception for ledgers and CSV reports,
    with secrets redacted (:func:`redact`)."""
    text = redact(" ".join(str(exc).split()) or type(exc).__name__)
    if not isinstance(exc, TilefleetError) and type(exc).__name__ not in text:
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
