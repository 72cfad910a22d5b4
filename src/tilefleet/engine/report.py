"""Reports of a run, rebuilt from its ledger after every session (even an interrupted one).

``report.json`` (machine-readable totals, and per kind of task for recipes that have
kinds: ``by_kind``), ``tasks.csv`` (one row per task, with its source row's columns),
``failed.csv`` (the original source rows plus ``reason``: a valid input for a retry run),
``succeeded.csv``, ``report.txt`` (for people), ``timeline.png`` and ``report.html`` (one
self-contained page with the tile map, the timeline and the failures; see
:mod:`tilefleet.engine.html_report`).
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from tilefleet.engine.html_report import REPORT_PARAMS, write_html_report
from tilefleet.engine.ledger import Ledger, ReportRecord, TaskRecord
from tilefleet.engine.planning import collector_paused
from tilefleet.engine.timeline import plot_timeline
from tilefleet.recipes.base import Recipe
from tilefleet.task import DONE_STATES, FAILED, PENDING, RUNNING, SKIPPED, SUCCEEDED
from tilefleet.tiles.manifest import spreadsheet_safe

log = logging.getLogger("tilefleet")
FIRST_FAILURES = 20


def build_report(
    ledger: Ledger,
    run_dir: Path,
    records: list[TaskRecord],
    attempts: list[dict[str, Any]],
    results: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The content of report.json, from the ledger's tasks and attempts (and the tasks'
    results, :func:`task_results` of them, when the caller has them already)."""
    counts = Counter(r.status for r in records)
    sessions = ledger.sessions()
    durations = [r.duration_s for r in records if r.status == SUCCEEDED and r.duration_s]
    last = sessions[-1] if sessions else None
    billed = {s["id"]: s["settings"].get("billing") for s in sessions}
    measured_cost = sum(
        (a["finished"] - a["started"]) * b["memory_gb"] * b["usd_per_gb_s"]
        for a in attempts
        if a["finished"] and (b := billed.get(a["session"]))
    )
    estimate = last["estimate"] if last else None
    by_kind = _by_kind(_recipe_of(ledger), records, attempts, billed, estimate)
    return {
        "run_id": ledger.get_meta("run_id"),
        "recipe": ledger.get_meta("recipe"),
        "executor": last["settings"] if last else None,
        "run_dir": str(run_dir),
        "tasks": len(records),
        "succeeded": counts[SUCCEEDED],
        "skipped": counts[SKIPPED],
        "failed": counts[FAILED],
        "pending": counts[PENDING] + counts[RUNNING],
        "retried": sum(1 for r in records if r.attempts > 1),
        "attempts": len(attempts),
        "sessions": len(sessions),
        "interrupted": bool(last and last["interrupted"]),
        "wall_s": round(sum((s["finished"] or s["started"]) - s["started"] for s in sessions), 3),
        "task_s": _summary(durations),
        "estimate": last["estimate"] if last else None,
        "cost_usd": {
            "estimated": (last["estimate"] or {}).get("cost_usd") if last else None,
            "measured": round(measured_cost, 10) if any(billed.values()) else None,
        },
        "warnings": [
            {"task": a["task_id"], "warning": a["metrics"]["warning"]}
            for a in attempts
            if a["ok"] and a["metrics"].get("warning")
        ],
        "results": result_totals(task_results(attempts) if results is None else results),
        "by_kind": by_kind,
        "job": ledger.get_meta("job"),
    }


def _by_kind(
    recipe: Recipe | None,
    records: list[TaskRecord],
    attempts: list[dict[str, Any]],
    billed: dict[int, dict | None],
    estimate: dict | None,
) -> dict[str, dict[str, Any]]:
    """Per kind of task (``Recipe.task_kind``): counts, task seconds, estimated and
    measured cost; empty for a recipe whose tasks are all alike."""
    kinds = _task_kinds(recipe, records)
    if not kinds:
        return {}
    out: dict[str, dict[str, Any]] = {}
    estimated = (estimate or {}).get("by_kind") or {}
    for record in records:
        part = out.setdefault(
            kinds[record.task.id],
            {"tasks": 0, SUCCEEDED: 0, SKIPPED: 0, FAILED: 0, "durations": [], "cost": 0.0},
        )
        part["tasks"] += 1
        if record.status in part:
            part[record.status] += 1
        if record.status == SUCCEEDED and record.duration_s:
            part["durations"].append(record.duration_s)
    for a in attempts:
        if a["finished"] and (b := billed.get(a["session"])) and a["task_id"] in kinds:
            cost = (a["finished"] - a["started"]) * b["memory_gb"] * b["usd_per_gb_s"]
            out[kinds[a["task_id"]]]["cost"] += cost
    any_billed = any(billed.values())
    for kind, part in out.items():
        part["task_s"] = _summary(part.pop("durations"))
        cost = part.pop("cost")
        part["cost_usd"] = {
            "estimated": (estimated.get(kind) or {}).get("cost_usd"),
            "measured": round(cost, 10) if any_billed else None,
        }
    return dict(sorted(out.items()))


def _recipe_of(ledger: Ledger) -> Recipe | None:
    """The run's recipe, as its job named it (a ``module:Class`` of the user's own, or a
    registered name); None when it cannot be loaded here: reports never fail for it."""
    from tilefleet.recipes import get_recipe

    for name in ((ledger.get_meta("job") or {}).get("recipe"), ledger.get_meta("recipe")):
        try:
            return get_recipe(name) if name else None
        except Exception:
            continue
    return None


def _task_kinds(recipe: Recipe | None, records: list[TaskRecord]) -> dict[str, str]:
    """Each task's kind by its recipe's ``task_kind``; {} when it has none (or the recipe
    cannot be loaded here)."""
    if recipe is None:
        return {}
    try:
        kinds = recipe.task_kinds(r.task for r in records)
    except Exception:
        return {}
    if not any(kinds.values()):
        return {}
    return {task_id: kind or "other" for task_id, kind in kinds.items()}


def write_reports(ledger: Ledger, run_dir: Path) -> dict[str, Any]:
    """Write every report file into ``run_dir`` and return report.json's content."""
    records = _records_for_reports(ledger)  # read once: a run may hold millions of tasks
    attempts = ledger.attempts()
    results = task_results(attempts)
    report = build_report(ledger, run_dir, records, attempts, results)
    columns = tuple(ledger.get_meta("source_columns") or ())
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    _write_tasks_csv(run_dir / "tasks.csv", records, results, columns)
    _write_source_csv(
        run_dir / "failed.csv",
        columns,
        ("reason",),
        [{**r.task.source, "reason": r.error or ""} for r in records if r.status == FAILED],
    )
    _write_source_csv(
        run_dir / "succeeded.csv",
        columns,
        ("status",),
        [{**r.task.source, "status": r.status} for r in records if r.status in DONE_STATES],
    )
    (run_dir / "report.txt").write_text(format_report(report, records))
    try:
        plot_timeline(
            attempts,
            run_dir / "timeline.png",
            f"{report['recipe']} run {report['run_id']}",
        )
    except Exception as exc:  # a plot must never cost the record
        log.warning("timeline.png not written: %s", exc)
    try:
        write_html_report(run_dir, report, records, attempts, ledger.sessions())
    except Exception as exc:  # nor a page
        log.warning("report.html not written: %s", exc)
    return report


def _records_for_reports(ledger: Ledger) -> list[TaskRecord] | list[ReportRecord]:
    """The run's tasks with what the reports read of them (id, source row, the parameters
    of the map and the breakdown); whole tasks only for a recipe whose tasks have kinds,
    which its own ``task_kind`` tells from anything in them."""
    recipe = _recipe_of(ledger)
    kinds = recipe is not None and type(recipe).task_kind is not Recipe.task_kind
    with collector_paused():
        if kinds:
            return list(ledger.records())
        return list(ledger.report_records(REPORT_PARAMS))


def format_report(report: dict[str, Any], records: list[TaskRecord]) -> str:
    total = report["tasks"] or 1
    executor = report["executor"] or {}
    lines = [
        f"tilefleet run {report['run_id']} ({report['recipe']}, executor "
        f"{executor.get('name', '?')}, {executor.get('workers', '?')} worker(s))",
        f"tasks      {report['tasks']}",
    ]
    for key in ("succeeded", "skipped", "failed", "pending"):
        lines.append(f"{key:<10} {report[key]:>6}  ({100 * report[key] / total:.1f} %)")
    lines.append(f"retried    {report['retried']:>6}  ({report['attempts']} attempts in all)")
    lines.append(
        f"wall time  {report['wall_s']:.1f} s over {report['sessions']} session(s)"
        + ("; the last was interrupted" if report["interrupted"] else "")
    )
    if report["task_s"]:
        t = report["task_s"]
        lines.append(
            f"task time  min {t['min']:.2f} s, median {t['median']:.2f} s, max {t['max']:.2f} s"
        )
    if report.get("results"):
        totals = ", ".join(f"{k} {_number(v)}" for k, v in report["results"].items())
        lines.append(f"results    {totals}")
    cost = report["cost_usd"]
    if cost["measured"] is not None:
        lines.append(
            f"cost       ${cost['measured']:.4f} measured (estimated ${cost['estimated'] or 0:.4f})"
        )
    for kind, part in (report.get("by_kind") or {}).items():
        line = (
            f"  {kind:<8} {part['tasks']} task(s): {part[SUCCEEDED]} succeeded, "
            f"{part[SKIPPED]} skipped, {part[FAILED]} failed"
        )
        if part["task_s"]:
            line += f"; median {part['task_s']['median']:.2f} s"
        if part["cost_usd"]["measured"] is not None:
            line += f"; ${part['cost_usd']['measured']:.4f} measured"
        lines.append(line)
    warnings = report["warnings"]
    if warnings:
        lines.append("")
        lines.append(f"warnings ({min(len(warnings), FIRST_FAILURES)} of {len(warnings)}):")
        lines += [f"  {w['task']}: {w['warning']}" for w in warnings[:FIRST_FAILURES]]
    failures = [r for r in records if r.status == FAILED]
    if failures:
        lines.append("")
        lines.append(f"first failures ({min(len(failures), FIRST_FAILURES)} of {len(failures)}):")
        lines += [f"  {r.task.id}: {r.error}" for r in failures[:FIRST_FAILURES]]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return f"{value:,}" if float(value).is_integer() else f"{value:,.3f}"


def task_results(attempts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What each task's successful attempt reported (points read, cells written, bytes…),
    without its warning (listed on its own)."""
    return {
        a["task_id"]: {k: v for k, v in a["metrics"].items() if k != "warning"}
        for a in attempts
        if a["ok"] and a["metrics"]
    }


def result_totals(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each numeric result added up over the tasks (``points``: all points read)."""
    totals: dict[str, float] = {}
    for metrics in results.values():
        for key, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return dict(sorted(totals.items()))


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


TASK_COLUMNS = ("id", "status", "attempts", "duration_s", "worker", "error", "results")


def _write_tasks_csv(
    path: Path,
    records: list[TaskRecord],
    results: dict[str, dict[str, Any]],
    source_columns: tuple[str, ...] = (),
) -> None:
    """One row per task; then the columns of its source row (a TTC tile's product, Year, X,
    Y, Y_tile, X_tile), so that any subset of rows is an input for a retry."""
    extra = [c for c in source_columns if c not in TASK_COLUMNS]
    safe = spreadsheet_safe
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*TASK_COLUMNS, *extra])
        for r in records:
            duration = f"{r.duration_s:.3f}" if r.duration_s is not None else ""
            found = results.get(r.task.id)
            text = json.dumps(found, sort_keys=True, separators=(",", ":")) if found else ""
            # Status, attempts, duration and results cannot start like a formula.
            row = [safe(r.task.id), r.status, r.attempts, duration]
            row += [safe(r.worker or ""), safe(r.error or ""), text]
            row += [safe(r.task.source.get(c, "")) for c in extra]
            writer.writerow(row)


def _write_source_csv(
    path: Path, columns: tuple[str, ...], extra: tuple[str, ...], rows: list[dict[str, str]]
) -> None:
    fields = list(columns) if columns else sorted({k for row in rows for k in row} - set(extra))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=[*fields, *extra], lineterminator="\n", extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
