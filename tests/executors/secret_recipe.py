"""A test recipe that needs a shared secret: its source counts its fetches in the driver,
and each task writes a digest of the value it found installed (never the value)."""

from __future__ import annotations

import hashlib
from typing import Any

from engine_recipes import FlakyParams, FlakyRecipe
from tilefleet import secrets
from tilefleet.errors import PermanentError
from tilefleet.secrets import Secret
from tilefleet.store.objects import open_store
from tilefleet.task import Task

SECRET_VALUE = "shared-secret-value-7c1e5a9b3d2f4e6a"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class CountedSource:
    name = "test-credentials"
    fetches = 0

    def fetch(self) -> Secret:
        CountedSource.fetches += 1
        return Secret({"token": SECRET_VALUE})


class SecretRecipe(FlakyRecipe):
    name = "secret-flaky"

    def plan(self, params: FlakyParams) -> list[Task]:
        return [
            Task(t.id, "executors.secret_recipe:SecretRecipe", t.params, t.dest, t.marker, t.source)
            for t in super().plan(params)
        ]

    def secret_sources(self, params: FlakyParams) -> list:
        return [CountedSource()]

    def run(self, task: Task) -> dict[str, Any]:
        values = secrets.get(CountedSource.name)
        if values is None:
            raise PermanentError("no shared secret installed in this worker")
        store = open_store(task.dest)
        store.put_bytes(digest(values["token"]).encode(), f"out/{task.id}.txt")
        store.put_bytes(b"{}", task.marker)
        return {}
