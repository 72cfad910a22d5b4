"""Short-lived secrets a run hands to its workers in memory, never through files.

Some inputs need credentials that the driver obtains once and shares: NASA Earthdata's
temporary S3 credentials for NSIDC's protected bucket, for instance, which a thousand
workers must not each log in for. The engine fetches them from the recipe's
:class:`SecretSource` (``engine/secrets.py``, refreshed before they expire) and every
attempt it submits carries the current ones (``Task.secrets``), travelling wherever the
executor sends the task itself: a pipe to a local process, a Dask or Ray task's arguments,
a Lithops call's payload. The ledger, task files, reports and logs record tasks without
them. A worker installs them here before it runs the task; a recipe reads them by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

_installed: dict[str, dict[str, str]] = {}


@dataclass(frozen=True)
class Secret:
    """Values obtained once (``{"aws_access_key_id": …}``) and when they stop working."""

    values: Mapping[str, str]
    #: POSIX time after which the values are refused; None: they do not expire.
    expires_at: float | None = None


class SecretSource(Protocol):
    """Where the driver gets one named secret; a recipe lists its sources."""

    name: str

    def fetch(self) -> Secret:
        """Obtain fresh values; raise with one line saying why on failure."""
        ...


def install(secrets: Mapping[str, Mapping[str, str]]) -> None:
    """Make ``secrets`` (by name) what :func:`get` returns in this process, and nothing
    else: those installed before are dropped."""
    _installed.clear()
    for name, values in secrets.items():
        _installed[name] = dict(values)


def get(name: str) -> dict[str, str] | None:
    """The values of the secret ``name`` installed in this process, if any."""
    values = _installed.get(name)
    return dict(values) if values is not None else None


def installed_values() -> list[str]:
    """Every installed secret value, for redaction from error texts."""
    return [value for values in _installed.values() for value in values.values() if value]
