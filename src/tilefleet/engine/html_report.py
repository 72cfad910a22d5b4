"""report.html: one self-contained page per run, opened from disk in any browser, offline.

The page shows the summary (counts, estimate against what happened, the executor and its
settings, sessions), a map of the tiles coloured by status (a list for manifest recipes),
the timeline of attempts per worker, throughput over time, a duration histogram, the
failures (filterable), the warnings and a breakdown by a task parameter (``product``,
``stage``, ``step``, …) when the tasks carry one. The live monitor
(:mod:`tilefleet.engine.monitor`) serves the same page, refreshed from the ledger.

The template is ``html/report.html`` with ``report.css`` and ``report.js`` inlined at write
time, and the run's data as one JSON block. Large arrays (outlines, attempts, durations)
travel as base64 typed arrays and are drawn on canvases. The report of a large run is
bounded (:func:`write_ledger_html_report`): its map, timeline and histogram draw a sample
spread over the run (more of the failed tasks on the map), its failures table keeps the
first rows with the count of all, and each sampled part says so on the page; so a run of
a million tasks is still a page of a few MB that draws in well under a second.
"""

from __future__ import annotations

import base64
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tilefleet.engine.footprints import Footprints, footprints
from tilefleet.engine.ledger import Ledger, TaskRecord
from tilefleet.engine.timeline import attempt_outcome, packed_lanes
from tilefleet.task import FAILED, PENDING, RUNNING, SKIPPED, SUCCEEDED, Task

REPORT_HTML = "report.html"

#: One character per task status in the page's data.
STATUS_CODES = {SUCCEEDED: "s", SKIPPED: "k", FAILED: "f", PENDING: "p", RUNNING: "r"}
#: A shape with several tasks shows the first of these statuses that one of them has.
_SHAPE_PRIORITY = "frpsk"
#: Attempt outcomes in the page's data (``u``: still running).
OUTCOME_CODES = {"succeeded": "s", "retried": "r", "failed": "f", "lost": "l", "running": "u"}
#: Beyond this many workers the timeline packs attempts into lanes of concurrency.
MAX_WORKER_LANES = 200
#: At most this many lanes are drawn (packed lanes are merged beyond it).
MAX_LANES = 300
#: Task parameters a breakdown groups by, the first that the tasks carry.
BREAKDOWN_PARAMS = ("product", "stage", "step", "band", "month", "year")
MAX_BREAKDOWN_VALUES = 200
#: The task parameters the page reads: the map's (see ``footprints.tile_key``) and the
#: breakdown's. The reports of a run read only these of each task.
REPORT_PARAMS = frozenset({"tile", "parent", "parent_order", *BREAKDOWN_PARAMS})
#: Reasons shown per shape with several failed tasks.
_REASONS_PER_SHAPE = 5


def write_html_report(
    run_dir: Path,
    report: dict[str, Any],
    records: list[TaskRecord],
    attempts: list[dict[str, Any]],
    sessions: list[dict[str, Any]],
) -> Path:
    """Write ``run_dir/report.html`` from what the other reports are made of."""
    data = page_data(report, records, attempts, sessions)
    path = run_dir / REPORT_HTML
    path.write_text(render_page(data))
    return path


#: The map draws every task of a run up to this many; a larger run's map is a sample.
MAX_MAP_TASKS = 20_000
#: A sampled map draws about this many failed tasks besides (spread over the plan).
MAX_MAP_FAILED = 5_000
#: A sampled page lists the first this many failures (failed.csv has them all).
MAX_FAILURE_ROWS = 1_000
#: The duration histogram of a large run is drawn from at most about this many tasks.
MAX_DURATIONS = 100_000


def write_ledger_html_report(
    run_dir: Path,
    report: dict[str, Any],
    ledger: Ledger,
    attempts: list[dict[str, Any]],
    every: int = 1,
) -> Path:
    """Write ``run_dir/report.html`` from the ledger, bounded in size whatever the run's:
    ``attempts`` are those the timeline draws (1 in ``every`` of the run's); the map, the
    failures and the histogram read a sample of a run of more than ``MAX_MAP_TASKS``
    tasks, and the page says what it shows. A smaller run's page is :func:`page_data`'s."""
    data = ledger_page_data(report, ledger, attempts, every)
    path = run_dir / REPORT_HTML
    path.write_text(render_page(data))
    return path


def ledger_page_data(
    report: dict[str, Any], ledger: Ledger, attempts: list[dict[str, Any]], every: int = 1
) -> dict[str, Any]:
    """The page's data from the ledger (see :func:`write_ledger_html_report`)."""
    total = report["tasks"]
    sample = -(-total // MAX_MAP_TASKS) if total > MAX_MAP_TASKS else 1
    failed_share = -(-report["failed"] // MAX_MAP_FAILED)
    records = list(ledger.report_records(REPORT_PARAMS, every=sample, failed=failed_share))
    data = page_data(report, records, attempts, ledger.sessions())
    notes: dict[str, str] = {}
    if every > 1:
        data["timeline"]["weight"] = every  # throughput counts each drawn attempt so often
        notes["timeline"] = (
            f"A sample: 1 in {every} of the run's {report['attempts']:,} attempts is drawn "
            "(throughput is scaled back up)."
        )
    if sample > 1:
        drawn_failed = sum(1 for r in records if r.status == FAILED)
        notes["map"] = (
            f"A sample: {len(records):,} of the run's {total:,} tasks are drawn, about 1 in "
            f"{sample} spread over the plan"
            + (
                f", with {drawn_failed:,} of its {report['failed']:,} failed"
                if drawn_failed
                else ""
            )
            + ". tasks.csv lists them all."
        )
        step = max(1, -(-report["succeeded"] // MAX_DURATIONS))
        durations = ledger.sampled_durations(step)
        data["durations"] = _b64(np.array(durations, dtype="<f4"))
        if step > 1:
            notes["durations"] = f"A sample: 1 in {step} succeeded tasks, in plan order."
        data["failures"] = [
            [task_id, attempts_made, error or ""]
            for task_id, attempts_made, error in ledger.first_failures(MAX_FAILURE_ROWS)
        ]
        data["failures_total"] = report["failed"]
        # The parameters the sample carries (a pass over every task's JSON would cost a
        # million-task run 0.7 s); the breakdown itself counts every task.
        data["breakdown"] = ledger_breakdown(ledger, {k for r in records for k in r.task.params})
    data["notes"] = notes
    return data


def ledger_breakdown(ledger: Ledger, carried: Collection[str]) -> dict[str, Any] | None:
    """:func:`breakdown` of every task of the run, counted and timed in SQL, by the first
    of ``BREAKDOWN_PARAMS`` among the ``carried`` parameters."""
    for name in (n for n in BREAKDOWN_PARAMS if n in carried):
        rows: dict[Any, dict[str, Any]] = {}
        for value, kind, status, count in ledger.grouped_counts(name):
            if kind in ("object", "array") or len(rows) > MAX_BREAKDOWN_VALUES:
                rows = {}
                break
            row = rows.setdefault(
                value,
                {"value": value, "tasks": 0, SUCCEEDED: 0, SKIPPED: 0, FAILED: 0, PENDING: 0},
            )
            row["tasks"] += count
            status = status if status != RUNNING else PENDING
            row[status] = row.get(status, 0) + count
        if not 2 <= len(rows) <= MAX_BREAKDOWN_VALUES:
            continue
        medians = {value: median for value, _, median, _ in ledger.grouped_durations(name)}
        for value, row in rows.items():
            median = medians.get(value)
            row["median_s"] = round(median, 3) if median is not None else None
        return {"param": name, "rows": sorted(rows.values(), key=lambda r: str(r["value"]))}
    return None


def write_plan_map(
    path: Path,
    tasks: Sequence[Task],
    done: Iterable[str],
    *,
    recipe: str,
    estimate: dict[str, Any] | None = None,
    known: dict[str, str] | None = None,
) -> Path:
    """The map of a plan before it runs: what would run (pending), what is done already
    (skipped: found in the destination, or done in the run dir) and what the plan rejects
    (failed, with its reason)."""
    done = set(done)
    known = known or {}
    records = []
    for task in tasks:
        if task.rejected is not None:
            status, error = FAILED, task.rejected
        elif task.id in done or known.get(task.id) in (SUCCEEDED, SKIPPED):
            status, error = SKIPPED, None
        else:
            status, error = PENDING, None
        records.append(TaskRecord(task, status, 0, None, None, error))
    counts = Counter(r.status for r in records)
    summary = {
        "run_id": None,
        "recipe": recipe,
        "tasks": len(records),
        "succeeded": 0,
        "skipped": counts[SKIPPED],
        "failed": counts[FAILED],
        "pending": counts[PENDING],
        "estimate": estimate,
    }
    data = page_data(summary, records, [], [], plan=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(data))
    return path


# -- the page's data -------------------------------------------------------------------


def page_data(
    report: dict[str, Any],
    records: Sequence[TaskRecord],
    attempts: list[dict[str, Any]],
    sessions: list[dict[str, Any]],
    *,
    plan: bool = False,
    geometry: dict[str, Any] | None = None,
    clock: float | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as JSON-plain data. ``geometry`` (from
    :func:`map_geometry` of the same tasks) saves recomputing the outlines."""
    if geometry is None:
        geometry = map_geometry([r.task for r in records])
    statuses = [r.status for r in records]
    errors = [r.error for r in records]
    return {
        "plan": plan,
        "generated": clock or time.time(),
        "summary": {k: v for k, v in report.items() if k != "job"},
        "job": report.get("job"),
        "sessions": sessions,
        "map": map_status(geometry, statuses, errors),
        "timeline": timeline_data(attempts, clock),
        "durations": _b64(
            np.array(
                [r.duration_s for r in records if r.status == SUCCEEDED and r.duration_s],
                dtype="<f4",
            )
        ),
        "failures": [[r.task.id, r.attempts, r.error or ""] for r in records if r.status == FAILED],
        "warnings": report.get("warnings") or [],
        "breakdown": breakdown(records),
    }


def map_geometry(tasks: Sequence[Task]) -> dict[str, Any]:
    """The static part of the map: the tiles' outlines and which tasks lie on each."""
    shapes = footprints(tasks)
    if not len(shapes):
        return {"kind": "list", "ids": [t.id for t in tasks], "tasks": None, "count": len(tasks)}
    return {
        "kind": "tiles",
        "ids": shapes.ids,
        "tasks": shapes.tasks,
        "count": len(tasks),
        "task_ids": [t.id for t in tasks],
        "shapes": _encode_shapes(shapes),
    }


def _encode_shapes(shapes: Footprints) -> dict[str, Any]:
    """Outlines as base64 float32 vertices; a ring that is a lon/lat box (TTC tiles) keeps
    only its two opposite corners (the page draws a ring of two vertices as a box)."""
    vertices, ring_start = shapes.rings, shapes.ring_start
    sizes = np.diff(ring_start)
    starts = ring_start[:-1][sizes == 4]
    corners = vertices[starts[:, None] + np.arange(4)] if len(starts) else np.zeros((0, 4, 2))
    x, y = corners[..., 0], corners[..., 1]
    boxes = (
        (y[:, 0] == y[:, 1])
        & (x[:, 1] == x[:, 2])
        & (y[:, 2] == y[:, 3])
        & (x[:, 3] == x[:, 0])
        & (x[:, 0] < x[:, 1])
        & (y[:, 0] < y[:, 2])
    )
    keep = np.ones(len(vertices), dtype=bool)
    keep[starts[boxes] + 1] = False
    keep[starts[boxes] + 3] = False
    is_box = np.zeros(len(sizes), dtype=bool)
    is_box[np.flatnonzero(sizes == 4)[boxes]] = True
    new_sizes = sizes - 2 * is_box
    return {
        "extent": shapes.extent(),
        "coords": _b64(vertices[keep].astype("<f4").ravel()),
        "ring_start": _b64(np.concatenate([[0], np.cumsum(new_sizes)]).astype("<i4")),
        "shape_ring": _b64(shapes.shape_ring.astype("<i4")),
    }


def map_status(
    geometry: dict[str, Any], statuses: Sequence[str], errors: Sequence[str | None]
) -> dict[str, Any]:
    """The map's colours: one status per shape (the worst of its tasks') and the reasons
    of failed ones."""
    codes = [STATUS_CODES.get(s, "p") for s in statuses]
    reasons: dict[int, str] = {}
    if geometry["kind"] == "list":
        for index, code in enumerate(codes):
            if code == "f":
                reasons[index] = errors[index] or ""
        return {
            "kind": "list",
            "ids": geometry["ids"],
            "status": "".join(codes),
            "reasons": reasons,
        }
    shape_codes = []
    task_ids = geometry["task_ids"]
    multi: dict[int, list[str]] = {}
    for shape, members in enumerate(geometry["tasks"]):
        if len(members) == 1:
            code = codes[members[0]]
            if code == "f":
                reasons[shape] = errors[members[0]] or ""
        else:
            mine = {codes[i] for i in members}
            code = next(c for c in _SHAPE_PRIORITY if c in mine)
            multi[shape] = [f"{task_ids[i]}: {statuses[i]}" for i in members]
            failed = [i for i in members if codes[i] == "f"]
            if failed:
                reasons[shape] = "\n".join(
                    f"{task_ids[i]}: {errors[i] or ''}" for i in failed[:_REASONS_PER_SHAPE]
                ) + (f"\n… {len(failed) - _REASONS_PER_SHAPE} more" if len(failed) > 5 else "")
        shape_codes.append(code)
    return {
        "kind": "tiles",
        "ids": geometry["ids"],
        "status": "".join(shape_codes),
        "reasons": reasons,
        "tasks": multi,
        **geometry["shapes"],
    }


def timeline_data(attempts: list[dict[str, Any]], clock: float | None = None) -> dict[str, Any]:
    """Attempts as lanes (one per worker, or packed by concurrency past
    ``MAX_WORKER_LANES`` workers), relative start and end times, and outcome codes."""
    started = [a for a in attempts if a["started"] is not None]
    final: dict[str, int] = {}
    for a in started:
        final[a["task_id"]] = max(final.get(a["task_id"], 0), a["attempt"])
    end_of_running = clock or time.time()
    ends = [a["finished"] if a["finished"] is not None else end_of_running for a in started]
    workers = sorted({a["worker"] or "lost" for a in started if a["finished"] is not None})
    labels: list[str] | None
    if len(workers) <= MAX_WORKER_LANES:
        lane_of = {w: i for i, w in enumerate(workers)}
        running_lane = len(workers)
        lanes = [
            lane_of[a["worker"] or "lost"] if a["finished"] is not None else running_lane
            for a in started
        ]
        labels = [*workers, "in flight"] if running_lane in lanes else workers
        lane_label = "worker"
    else:
        # Copies only here: an attempt still running packs as if it ended now.
        lanes = packed_lanes([{**a, "finished": end} for a, end in zip(started, ends, strict=True)])
        labels = None
        lane_label = f"attempts running at once ({len(workers)} workers)"
    count = max(lanes, default=-1) + 1
    if count > MAX_LANES:
        factor = -(-count // MAX_LANES)
        lanes = [lane // factor for lane in lanes]
        labels = None
        lane_label = f"attempts running at once, {factor} per lane ({len(workers)} workers)"
    origin = min((a["started"] for a in started), default=0.0)
    outcomes = [
        OUTCOME_CODES[attempt_outcome(a, final)] if a["finished"] is not None else "u"
        for a in started
    ]
    return {
        "origin": origin,
        "lane_label": lane_label,
        "labels": labels,
        "lanes": max(lanes, default=-1) + 1,
        "start": _b64(np.array([a["started"] for a in started], dtype=float) - origin, "<f4"),
        "end": _b64(np.array(ends, dtype=float) - origin, "<f4"),
        "lane": _b64(np.array(lanes, dtype="<i4")),
        "outcome": "".join(outcomes),
        "tasks": [a["task_id"] for a in started] if len(started) <= 20000 else None,
    }


def breakdown(records: Sequence[TaskRecord]) -> dict[str, Any] | None:
    """Counts and durations per value of the first of ``BREAKDOWN_PARAMS`` the tasks carry
    (with two or more values)."""
    carried: set[str] = set()
    for record in records:
        if record.task.params:
            carried.update(record.task.params)
    for name in (n for n in BREAKDOWN_PARAMS if n in carried):
        values = [r.task.params.get(name) for r in records]
        if not all(isinstance(v, str | int | float) for v in values if v is not None):
            continue
        distinct = {v for v in values if v is not None}
        if not 2 <= len(distinct) <= MAX_BREAKDOWN_VALUES:
            continue
        rows: dict[Any, dict[str, Any]] = {}
        durations: dict[Any, list[float]] = {}
        for record, value in zip(records, values, strict=True):
            if value is None:
                continue
            row = rows.setdefault(
                value,
                {"value": value, "tasks": 0, SUCCEEDED: 0, SKIPPED: 0, FAILED: 0, PENDING: 0},
            )
            row["tasks"] += 1
            status = record.status if record.status != RUNNING else PENDING
            row[status] = row.get(status, 0) + 1
            if record.status == SUCCEEDED and record.duration_s:
                durations.setdefault(value, []).append(record.duration_s)
        for value, row in rows.items():
            times = durations.get(value)
            row["median_s"] = round(statistics.median(times), 3) if times else None
        return {"param": name, "rows": sorted(rows.values(), key=lambda r: str(r["value"]))}
    return None


def _b64(array: np.ndarray, dtype: str | None = None) -> str:
    if dtype is not None:
        array = array.astype(dtype)
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


# -- the page --------------------------------------------------------------------------


def _asset(name: str) -> str:
    return resources.files("tilefleet.engine").joinpath("html", name).read_text()


def render_page(data: dict[str, Any], *, live: dict[str, Any] | None = None) -> str:
    """The page: the template with its style, script and ``data`` inlined. ``live`` (the
    monitor's settings: the JSON endpoint and the poll interval) makes it follow a run."""
    summary = data.get("summary") or {}
    title = f"tilefleet {'plan' if data.get('plan') else 'run'} {summary.get('run_id') or ''}"
    parts = {
        "title": _escape_html(f"{title} ({summary.get('recipe') or '?'})"),
        "style": _asset("report.css"),
        "data": _script_json(data),
        "live": _script_json(live),
        "script": _asset("report.js"),
    }
    # One pass over the template: what is put in is never read for placeholders again.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], _asset("report.html"))


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _escape_html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
