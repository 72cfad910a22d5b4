"""What the lithops executor asks of Lithops, on its localhost backend: map jobs that
search no modules to ship (the runtime holds tilefleet, recipes are imported by name)
unless the config names ``include_modules``, and a job monitor that lists the calls'
folders a few times a second, not dozens."""

from __future__ import annotations

import json

import pytest

from tilefleet.engine.run import run_job
from tilefleet.jobs import build_job

pytest.importorskip("lithops")

#: A recipe module that only the driver can import: it lies in the test's own folder,
#: outside the workers' PYTHONPATH.
RECIPE = """
from tilefleet.recipes.base import Recipe
from tilefleet.recipes.params import RecipeParams
from tilefleet.store.objects import open_store
from tilefleet.task import Task


class EchoParams(RecipeParams):
    dest: str
    count: int = 3


class EchoRecipe(Recipe):
    name = "echo"
    Params = EchoParams

    def plan(self, params):
        return [Task(f"e{i}", "{module}:EchoRecipe", {"i": i}, params.dest, f"e{i}.json")
                for i in range(params.count)]

    def run(self, task):
        open_store(task.dest).put_bytes(b'{"twice": %d}' % (2 * task.params["i"]), task.marker)
"""


def _echo_job(tmp_path, monkeypatch, module: str, config: str | None):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / f"{module}.py").write_text(RECIPE.replace("{module}", module))
    monkeypatch.syspath_prepend(str(folder))
    values = {
        "recipe": f"{module}:EchoRecipe",
        "dest": str(tmp_path / "out"),
        "run_dir": str(tmp_path / "run"),
        "executor": "lithops",
        "workers": 2,
        "retries": 0,
    }
    if config is not None:
        (tmp_path / "lithops.yaml").write_text(config)
        values["lithops_config"] = str(tmp_path / "lithops.yaml")
    return build_job(values)


@pytest.mark.slow
def test_map_jobs_search_no_modules_to_ship(tmp_path, monkeypatch):
    """Lithops' search (through the function and every call's arguments, ~1 ms of driver
    CPU a task) is off: the tasks run on the runtime's own modules."""
    from lithops.job import serialize

    searched = []
    search = serialize.SerializeIndependent._referenced_module_paths

    def counted(self, *args, **kwargs):
        searched.append(args)
        return search(self, *args, **kwargs)

    monkeypatch.setattr(serialize.SerializeIndependent, "_referenced_module_paths", counted)
    job = build_job(
        {
            "recipe": "engine_recipes:FlakyRecipe",
            "dest": str(tmp_path / "dest"),
            "state_dir": str(tmp_path / "st"),
            "run_dir": str(tmp_path / "run"),
            "executor": "lithops",
            "workers": 2,
            "count": 3,
            "mode": "ok",
        }
    )
    result = run_job(job)
    assert result.exit_code == 0 and result.report["succeeded"] == 3
    assert searched == []


@pytest.mark.slow
def test_include_modules_of_the_lithops_config_are_shipped(tmp_path, monkeypatch):
    """A recipe module the workers cannot import runs once the config names it."""
    config = "lithops: {backend: localhost, storage: localhost, include_modules: [echo_shipped]}\n"
    result = run_job(_echo_job(tmp_path, monkeypatch, "echo_shipped", config))
    assert result.exit_code == 0, result.report
    assert json.loads((tmp_path / "out/e2.json").read_text()) == {"twice": 4}


@pytest.mark.slow
def test_without_include_modules_a_recipe_the_workers_lack_fails_by_name(tmp_path, monkeypatch):
    result = run_job(_echo_job(tmp_path, monkeypatch, "echo_unshipped", None))
    assert result.report["failed"] == 3 and result.report["succeeded"] == 0
    reasons = {failed.reason for failed in result.failed}
    assert reasons == {
        "cannot load recipe 'echo_unshipped:EchoRecipe': No module named 'echo_unshipped'"
    }
    assert not (tmp_path / "out").exists()


def test_localhost_storage_gets_a_calmer_job_monitor_unless_the_config_sets_one(tmp_path):
    from tilefleet.engine.executors.lithops import LOCALHOST_MONITORING_S, lithops_config

    assert lithops_config(None, 2)["lithops"]["monitoring_interval"] == LOCALHOST_MONITORING_S
    own = tmp_path / "own.yaml"
    own.write_text("lithops: {backend: localhost, monitoring_interval: 0.1}\n")
    assert lithops_config(str(own), 2)["lithops"]["monitoring_interval"] == 0.1
    cloud = tmp_path / "cloud.yaml"
    cloud.write_text("lithops: {backend: aws_lambda, storage: aws_s3}\n")
    assert "monitoring_interval" not in lithops_config(str(cloud), 2)["lithops"]
