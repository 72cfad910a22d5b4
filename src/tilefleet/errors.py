"""Error classes shared by every layer, the exit status of every command, and the rule
that sorts any exception into *retryable* (worth another attempt) or *permanent* (fail the
task at once).

Recipes raise :class:`PermanentError` for bad input they detect themselves; everything
else is classified from its type and message, because GDAL, obstore and the network
libraries report transient trouble (HTTP 5xx, 429, timeouts) through generic exceptions.
"""

from __future__ import annotations

import errno
import os
import re
from enum import IntEnum

from tilefleet import secrets

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


class RunDirError(JobError):
    """The run directory cannot be written (a full disk, no permission, a locked ledger):
    the run stops with one line and exit status 3. What the ledger had committed stays, so
    the same command with the same run dir resumes once the cause is gone."""


class PermanentError(TilefleetError):
    """Bad input for one task: retrying cannot help."""


class RetryableError(TilefleetError):
    """A transient failure of one task (throttling, timeout, lost worker)."""


class StorageFullError(PermanentError):
    """An output could not be written: the destination's file system is full (or over its
    quota). Permanent for the task: a retry a few seconds later finds it full too; the
    same command, once space is freed, runs the tasks that failed so."""


#: ``errno`` values that mean a file system has no room left: no space, over a quota.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class WorkerLostError(RetryableError):
    """The process or machine running a task died before it reported back."""


class TaskTimeoutError(RetryableError):
    """An attempt ran longer than the task timeout and was stopped."""


# Messages GDAL (/vsis3, /vsicurl), obstore and HTTP clients use for transient trouble:
# HTTP 429/5xx by code or by S3's words for them (GDAL reports an S3 error by its
# <Message> only: "Please reduce your request rate." is a 503 SlowDown), timeouts (not
# obstore's "retry_timeout: 180s", which every one of its errors states), dropped
# connections and bodies cut short.
_TRANSIENT = re.compile(
    r"(?:code|status)\D{0,12}(?:429|5\d\d)\b|timed? ?out|(?<!retry_)timeout|throttl|slow ?down"
    r"|too many requests|bad gateway|gateway time|reduce your request rate"
    r"|internal ?error|please try again|service unavailable|temporarily unavailable"
    r"|connection (?:reset|refused|aborted|closed|broken)|reset by peer|broken pipe"
    r"|requesttimeout|curl error|error sending request|body error|incomplete ?read"
    r"|remote end closed|unexpected eof|end of file before",
    re.IGNORECASE,
)
# An HTTP status a client error names (GDAL: "HTTP response code: 404"), and those of them
# worth another try: request timeout, throttling, the server's own trouble.
_HTTP_STATUS = re.compile(r"(?:response|status) code\D{0,3}(\d{3})\b", re.IGNORECASE)
_RETRIED_STATUS = {408, 425, 429}
# GDAL's own error classes for answers retrying cannot change (rasterio's names for them).
_GDAL_PERMANENT = {
    "CPLE_AWSObjectNotFoundError",
    "CPLE_AWSAccessDeniedError",
    "CPLE_AWSInvalidCredentialsError",
    "CPLE_AWSSignatureDoesNotMatchError",
    "CPLE_ObjectNotFoundError",
}
#: How deep :func:`causes` follows ``__cause__``/``__context__``.
_CHAIN_DEPTH = 8


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first. rasterio raises a
    read error as "Read failed. See previous exception for details.", from the GDAL errors
    that say what went wrong."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < _CHAIN_DEPTH and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def classify(exc: BaseException) -> str:
    """Return :data:`RETRYABLE` or :data:`PERMANENT` for an exception raised by a task.

    tilefleet's own errors say which they are; otherwise the whole chain of causes is read:
    a missing file, a denied access or an HTTP 4xx is permanent, a timeout, a dropped
    connection, HTTP 429 or 5xx retryable. Anything unrecognised is permanent."""
    if isinstance(exc, RetryableError):
        return RETRYABLE
    if isinstance(exc, PermanentError | FileNotFoundError | PermissionError):
        return PERMANENT
    chain = causes(exc)
    if any(isinstance(link, OSError) and link.errno in NO_SPACE_ERRNOS for link in chain):
        return PERMANENT  # a full disk stays full for a retry: see StorageFullError
    if any(type(link).__name__ in _GDAL_PERMANENT for link in chain):
        return PERMANENT
    for link in chain:
        if isinstance(link, RetryableError | TimeoutError | ConnectionError):
            return RETRYABLE
        status = _HTTP_STATUS.search(str(link))
        if status is not None:
            code = int(status.group(1))
            return RETRYABLE if code >= 500 or code in _RETRIED_STATUS else PERMANENT
        if _TRANSIENT.search(str(link)):
            return RETRYABLE
    return PERMANENT


#: Names of environment variables whose values are secrets (credentials, tokens, keys),
#: GDAL's included: ``GDAL_HTTP_USERPWD`` (and the proxy's), ``GDAL_HTTP_HEADERS`` (which
#: carry ``Authorization: Bearer …``), ``GDAL_HTTP_BEARER``; an Azure connection string.
SECRET_NAME = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|_KEY(?:_ID)?$|SAS|USERPWD|BEARER|HEADERS$"
    r"|AUTHORIZATION|CONNECTION_STRING|COOKIE",
    re.IGNORECASE,
)
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
    variable of the environment or shared secret of the run, and token-shaped fields of
    error bodies (an S3 answer echoing the session token). Error text is kept in ledgers,
    reports and logs."""
    environ = os.environ if environ is None else environ
    for name, value in environ.items():
        if len(value) >= _MIN_SECRET_LENGTH and SECRET_NAME.search(name) and value in text:
            text = text.replace(value, REDACTED)
    for value in secrets.installed_values():  # those shared with this worker by the run
        if len(value) >= _MIN_SECRET_LENGTH and value in text:
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
    text = redact(" ".join(_message(exc).split()) or type(exc).__name__)
    if not isinstance(exc, TilefleetError) and type(exc).__name__ not in text:
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# rasterio's outer message when the GDAL errors it chains say what happened.
_SEE_CAUSE = "see previous exception"
# Where obstore's message turns into a dump of its Rust error structure.
_DEBUG_DUMP = "Debug source:"


def _message(exc: BaseException) -> str:
    """What an exception says, without obstore's debug dump, and with the GDAL errors a
    rasterio "see previous exception" error was raised from."""
    text = str(exc).split(_DEBUG_DUMP, 1)[0].strip()
    if _SEE_CAUSE in text.lower():
        inner = [str(link) for link in causes(exc)[1:2] if str(link)]
        text = ": ".join([text.split(".", 1)[0], *inner])
    return text
