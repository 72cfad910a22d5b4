"""The driver's side of shared secrets: fetch them once, refresh them before they expire.

The scheduler asks :meth:`SecretKeeper.current` before each batch it submits; every attempt
carries the answer (see :mod:`tilefleet.secrets`). A secret is fetched again once less than
``refresh_margin_s`` of its life is left, so attempts submitted late in a long run still get
values that work for as long as a task takes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from tilefleet.errors import JobError, one_line
from tilefleet.secrets import Secret, SecretSource

log = logging.getLogger("tilefleet")

REFRESH_MARGIN_S = 600.0
RETRY_REFRESH_S = 60.0  # after a failed refresh, while the old values still work


class SecretKeeper:
    """The current values of a run's secrets, by name."""

    def __init__(
        self,
        sources: Sequence[SecretSource],
        *,
        refresh_margin_s: float = REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ):
        self.sources = list(sources)
        self.refresh_margin_s = refresh_margin_s
        self.clock = clock
        self._secrets: dict[str, Secret] = {}
        self._next_try: dict[str, float] = {}
        self.fetches = 0

    def start(self) -> None:
        """Fetch every secret; :class:`JobError` (nothing runs) when one cannot be had."""
        for source in self.sources:
            try:
                self._secrets[source.name] = self._fetch(source)
            except JobError:
                raise
            except Exception as exc:
                raise JobError(f"secret {source.name}: {one_line(exc)}") from None

    def current(self) -> dict[str, dict[str, str]]:
        """Every secret's values, refreshed first where they expire soon. A failed refresh
        keeps the old values (tasks that need fresh ones then fail and are retried) and is
        tried again a minute later; only :meth:`start` raises."""
        for source in self.sources:
            secret = self._secrets[source.name]
            if not self._due(secret) or self.clock() < self._next_try.get(source.name, 0.0):
                continue
            try:
                self._secrets[source.name] = self._fetch(source)
            except Exception as exc:
                self._next_try[source.name] = self.clock() + RETRY_REFRESH_S
                state = "expired" if self._expired(secret) else "still valid"
                log.warning(
                    "secret %s: refresh failed (old values %s): %s",
                    source.name,
                    state,
                    one_line(exc),
                )
        return {name: dict(secret.values) for name, secret in self._secrets.items()}

    def _fetch(self, source: SecretSource) -> Secret:
        self.fetches += 1
        secret = source.fetch()
        log.info("secret %s obtained%s", source.name, _lifetime(secret, self.clock()))
        return secret

    def _due(self, secret: Secret) -> bool:
        return secret.expires_at is not None and (
            secret.expires_at - self.clock() < self.refresh_margin_s
        )

    def _expired(self, secret: Secret) -> bool:
        return secret.expires_at is not None and secret.expires_at <= self.clock()


def _lifetime(secret: Secret, now: float) -> str:
    if secret.expires_at is None:
        return ""
    return f" (valid for {max(0.0, secret.expires_at - now) / 60:.0f} min)"
