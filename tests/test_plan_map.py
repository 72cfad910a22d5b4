"""The map of a dry run too large to keep its plan: planned again, it marks as failed the
same tasks the run would reject (NUL ids, outputs another task writes), with the run's
reasons."""

from __future__ import annotations

import json

from scale_recipes import ManyRecipe
from tilefleet.engine import planning
from tilefleet.engine.plan_map import write_plan_map_of
from tilefleet.engine.run import run_job
from tilefleet.jobs import build_job
from tilefleet.task import Task


class ClashingRecipe(ManyRecipe):
    """``count`` good tasks, then one whose outputs are the first task's and one whose id
    holds a NUL."""

    def plan(self, params):
        yield from super().plan(params)
        ref = f"{__name__}:{type(self).__name__}"
        yield Task("late", ref, {}, params.dest, "000/t000000.json", {"n": "late"})
        yield Task("nul\x00id", ref, {}, params.dest, "x/nul.json", {"n": "nul"})


def page_data(path):
    page = path.read_text()
    return json.loads(page.split('type="application/json">', 1)[1].split("</script>", 1)[0])


def test_the_map_of_a_large_dry_run_rejects_what_the_run_rejects(tmp_path, monkeypatch):
    monkeypatch.setattr(planning, "KEPT_FOR_MAP", 10)
    job = build_job(
        {
            "recipe": f"{__name__}:ClashingRecipe",
            "count": 20,
            "dest": str(tmp_path / "dest"),
            "run_dir": str(tmp_path / "run"),
            "dry_run": True,
        }
    )
    result = run_job(job)
    assert result.planned == 22 and result.planned_tasks == []  # too many to keep
    run_reasons = {t.id: t.rejected for t in result.rejected}
    assert run_reasons == {
        "late": "its outputs (000/t000000.json) are also those of t000000",
        "nul\\x00id": "task id nul\\x00id holds a NUL",
    }
    data = page_data(write_plan_map_of(job, result, tmp_path / "plan.html"))
    assert data["summary"]["tasks"] == 22
    assert data["summary"]["failed"] == 2
    ids = data["map"]["ids"]
    assert "late" in ids and "nul\\x00id" in ids and "nul\x00id" not in ids
