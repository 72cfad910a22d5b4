"""Secrets the driver obtains once reach every worker of every attempt executor in memory,
and nothing the run writes holds them (see tilefleet.secrets)."""

from __future__ import annotations

import pytest

from executors.secret_recipe import SECRET_VALUE, CountedSource, digest
from tilefleet.engine.job import build_job
from tilefleet.engine.run import run_job
from tilefleet.errors import JobError


@pytest.mark.parametrize("executor", ["local", "dask", "ray", "lithops"])
def test_every_worker_gets_the_secret_fetched_once(executor, tmp_path, request):
    if executor == "ray":
        request.getfixturevalue("ray_session")
    CountedSource.fetches = 0
    job = build_job(
        {
            "recipe": "executors.secret_recipe:SecretRecipe",
            "dest": str(tmp_path / "out"),
            "state_dir": str(tmp_path / "state"),
            "count": 6,
            "executor": executor,
            "workers": 2,
            "run_dir": str(tmp_path / "run"),
        }
    )
    result = run_job(job)
    assert result.exit_code == 0, result.failed
    written = {p.read_text() for p in (tmp_path / "out/out").glob("*.txt")}
    assert written == {digest(SECRET_VALUE)} and result.report["succeeded"] == 6
    assert CountedSource.fetches == 1
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert SECRET_VALUE.encode() not in path.read_bytes(), path


def test_a_plan_executor_refuses_a_job_that_shares_secrets(tmp_path):
    # Refused before anything is written or submitted: no HTCondor pool is needed.
    job = build_job(
        {
            "recipe": "executors.secret_recipe:SecretRecipe",
            "dest": str(tmp_path / "out"),
            "state_dir": str(tmp_path / "state"),
            "executor": "htcondor",
            "run_dir": str(tmp_path / "run"),
        }
    )
    with pytest.raises(JobError, match="cannot share test-credentials with them"):
        run_job(job)
    assert not (tmp_path / "out").exists()
