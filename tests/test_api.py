"""The Python API as a notebook or a script uses it: ``tilefleet.run`` with callbacks, the
``RunResult`` it returns, a user's own recipe by import path, what the registry refuses,
and a script without a ``__main__`` guard."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
import rasterio

import tilefleet
from tilefleet import plugins
from tilefleet.task import FAILED, PENDING, SUCCEEDED

TESTS = Path(__file__).resolve().parent
RGB = "landsat/RGB.byte.tif"  # a key of conftest.RASTERS (the input root's layout)
RGB_DATA = "non_cog_multiband/RGB.byte.tif"  # the same file in the shared data


class Recorder(tilefleet.RunCallback):
    def __init__(self):
        self.events = []

    def on_run_start(self, run):
        self.events.append(("start", run.to_run, run.recipe))

    def on_attempt_end(self, attempt):
        self.events.append(("attempt", attempt.outcome.task_id, attempt.status))

    def on_run_end(self, result):
        self.events.append(("end", result.exit_code))


def test_run_follows_callbacks_and_returns_counts_failures_and_reports(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"{RGB},3\nmissing.tif,1\n")
    recorder = Recorder()
    result = tilefleet.run(
        "cogify",
        manifest=str(manifest),
        input_root=str(inputs),
        dest=str(tmp_path / "out"),
        run_dir=str(tmp_path / "run"),
        workers=1,
        callbacks=[recorder],
        progress=False,
    )
    assert result.exit_code == tilefleet.ExitCode.PARTIAL and not result.ok
    assert result.counts == {"succeeded": 1, "skipped": 0, "failed": 1, "pending": 0}
    (failed,) = result.failed
    assert failed.id == "missing.tif" and "not found" in failed.reason and failed.attempts == 1
    assert failed.source == {"path": "missing.tif", "num_bands": "1"}
    assert set(result.reports) >= {"report.json", "report.txt", "failed.csv", "timeline.png"}
    assert "succeeded       1" in result.summary()
    assert recorder.events[0] == ("start", 2, "cogify")
    assert sorted(recorder.events[1:3]) == [
        ("attempt", "landsat/RGB.byte.tif", SUCCEEDED),
        ("attempt", "missing.tif", FAILED),
    ]
    assert recorder.events[-1] == ("end", tilefleet.ExitCode.PARTIAL)
    with rasterio.open(tmp_path / "out" / RGB) as cog:
        assert cog.count == 3 and cog.overviews(1)


def run_flaky(tmp_path: Path, **values):
    """``tilefleet.run`` of the engine's test recipe, one worker, below ``tmp_path``."""
    return tilefleet.run(
        "engine_recipes:FlakyRecipe",
        dest=str(tmp_path / "dest"),
        state_dir=str(tmp_path / "st"),
        run_dir=str(tmp_path / "run"),
        workers=1,
        backoff_s=0.01,
        progress=False,
        **values,
    )


def test_a_retried_attempt_reaches_callbacks_as_pending(tmp_path):
    recorder = Recorder()
    result = run_flaky(tmp_path, count=1, fail_times=1, callbacks=[recorder])
    assert result.ok
    statuses = [event[2] for event in recorder.events if event[0] == "attempt"]
    assert statuses == [PENDING, SUCCEEDED]


def test_a_callback_that_raises_is_dropped_and_the_run_goes_on(tmp_path, caplog):
    class Broken(tilefleet.RunCallback):
        def on_attempt_end(self, attempt):
            raise RuntimeError("display gone")

    result = run_flaky(tmp_path, count=3, mode="ok", callbacks=[Broken()])
    assert result.ok and result.counts["succeeded"] == 3
    assert "dropped: display gone" in caplog.text


def test_plan_and_load_job_run_nothing(tmp_path):
    job_file = tmp_path / "job.yaml"
    job_file.write_text("recipe: engine_recipes:FlakyRecipe\ndest: dest\nstate_dir: st\ncount: 3\n")
    job = tilefleet.load_job(job_file, limit=2)
    assert isinstance(job, tilefleet.Job) and job.limit == 2
    planned = tilefleet.plan(job_file)
    assert planned.dry_run and planned.planned == 3 and "dry run" in planned.summary()
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("registered", [False, True])
def test_a_user_recipe_runs_by_import_path_or_registered_name(
    registered, data_dir, tmp_path, monkeypatch
):
    name = "user_recipe:NdiRecipe"
    if registered:  # as a package of the user's declares it in its pyproject.toml
        point = EntryPoint("ndi", name, plugins.RECIPES)
        monkeypatch.setitem(plugins.registered(plugins.RECIPES), "ndi", point)
        name = "ndi"
    result = tilefleet.run(
        name,
        raster=str(data_dir / RGB_DATA),
        dest=str(tmp_path / "out"),
        run_dir=str(tmp_path / "run"),
        workers=1,
        progress=False,
    )
    assert result.ok, result.failed
    assert result.recipe == "ndi" and result.report["recipe"] == "ndi"
    with rasterio.open(data_dir / RGB_DATA) as src:
        a, b = src.read(1).astype(float), src.read(2).astype(float)
    total = a + b
    expected = np.divide(a - b, total, out=np.zeros_like(total), where=total != 0).mean()
    written = json.loads((tmp_path / "out/ndi.json").read_text())
    assert written["mean"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("os:getpid", "recipe 'os:getpid' is the function posix.getpid, not a Recipe class"),
        ("json:JSONDecoder", "is the class json.decoder.JSONDecoder, not a Recipe class"),
        ("nope", "unknown recipe 'nope'; known: cells, cogify, export, features, "),
        ("no_such_module:Thing", "cannot load recipe 'no_such_module:Thing'"),
    ],
)
def test_a_name_that_is_not_a_recipe_class_is_an_invalid_job(name, message):
    with pytest.raises(tilefleet.JobError) as caught:
        tilefleet.plan(name, dest="x")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ("MissingModelRecipe", "cannot load parameters model 'no_such_module:Params'"),
        (
            "WrongModelRecipe",
            "parameters model 'json:JSONDecoder' is the class json.decoder.JSONDecoder, "
            "not a RecipeParams class",
        ),
    ],
)
def test_a_params_model_that_cannot_be_had_is_an_invalid_job(recipe, message):
    with pytest.raises(tilefleet.JobError) as caught:
        tilefleet.plan(f"user_recipe:{recipe}", dest="x")
    assert message in str(caught.value)


SCRIPT = """\
import sys
sys.path.insert(0, {tests!r})
import tilefleet

def main():
    result = tilefleet.run(
        "engine_recipes:FlakyRecipe", dest={dest!r}, state_dir={state!r}, run_dir={run!r},
        count=2, mode="ok", workers=1, progress=False,
    )
    print("done", result.counts["succeeded"])

{call}
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_a_script_without_a_main_guard_stops_at_once(tmp_path, guarded):
    call = 'if __name__ == "__main__":\n    main()' if guarded else "main()"
    script = tmp_path / "job_script.py"
    script.write_text(
        SCRIPT.format(
            tests=str(TESTS),
            dest=str(tmp_path / "dest"),
            state=str(tmp_path / "st"),
            run=str(tmp_path / "run"),
            call=call,
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    if guarded:
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "done 2"
    else:
        assert done.returncode != 0
        last = done.stderr.strip().splitlines()[-1]
        assert "called at the top level of" in last and '__name__ == "__main__"' in last
        assert not (tmp_path / "run").exists() and not (tmp_path / "dest").exists()


def test_the_package_exposes_the_api():
    assert {"run", "plan", "load_job", "Job", "RunResult", "RunCallback", "ExitCode"} <= set(
        dir(tilefleet)
    )
    assert textwrap.dedent(tilefleet.run.__doc__).startswith("Run a job")


def test_a_task_id_no_ledger_can_hold_fails_alone(tmp_path):
    def run_markers():
        return tilefleet.run(
            "user_recipe:MarkerRecipe",
            dest=str(tmp_path / "out"),
            ids=["fine", "nul\x00inside", "also fine"],
            run_dir=str(tmp_path / "run"),
            workers=1,
            progress=False,
        )

    result = run_markers()
    assert result.exit_code == tilefleet.ExitCode.PARTIAL
    assert [(t.id, t.reason) for t in result.failed] == [
        ("nul\\x00inside", "task id nul\\x00inside holds a NUL")
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m0.json", "m2.json"]
    again = run_markers()  # the same run dir again: nothing done twice, the bad id fails again
    assert again.exit_code == tilefleet.ExitCode.PARTIAL and again.counts["succeeded"] == 2


def test_secrets_echoed_by_an_error_never_reach_the_record(tmp_path, monkeypatch, caplog):
    token, password = "FwoGZXIvYXdzEB0aDHsecretsessiontoken", "hunter2-correct-horse"
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    monkeypatch.setenv("SERVICE_PASSWORD", password)
    result = tilefleet.run(
        "user_recipe:EchoRecipe",
        dest=str(tmp_path / "out"),
        run_dir=str(tmp_path / "run"),
        workers=1,
        progress=False,
    )
    (failed,) = result.failed
    assert "ExpiredToken" in failed.reason and "<Token>***</Token>" in failed.reason
    assert "password ***" in failed.reason
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any(p.name == "failed.csv" for p in files) and len(files) >= 6
    for path in files:
        data = path.read_bytes()
        assert token.encode() not in data and password.encode() not in data, path
    assert token not in caplog.text and password not in caplog.text


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"input_root": "gopher://x"}, "input_root: Value error, unsupported storage URL scheme"),
        ({"dest": "s3://"}, "dest: Value error, 's3://' names no bucket"),
        ({"workers": 10**20}, "workers: Input should be less than or equal to 1000000"),
        ({"recipe": 42}, "unknown recipe '42'"),
    ],
)
def test_bad_values_are_one_line_job_errors_before_anything_runs(values, message, tmp_path):
    (tmp_path / "m.csv").write_text("a.tif,1\n")
    job = {
        "recipe": "cogify",
        "manifest": str(tmp_path / "m.csv"),
        "input_root": str(tmp_path),
        "dest": str(tmp_path / "out"),
        "run_dir": str(tmp_path / "run"),
        **values,
    }
    with pytest.raises(tilefleet.JobError) as caught:
        tilefleet.run(job.pop("recipe"), progress=False, **job)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists()
