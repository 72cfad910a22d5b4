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
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tilefleet.engine.html_report import write_ledger_html_report
from tilefleet.engine.json_text import decode
from tilefleet.engine.ledger import KIND, Ledger, TaskRecord
from tilefleet.engine.planning import collector_paused
from tilefleet.engine.timeline import plot_timeline
from tilefleet.recipes.base import FINISH_METRIC, Recipe
from tilefleet.task import DONE_STATES, FAILED, PENDING, RUNNING, SKIPPED, SUCCEEDED
from tilefleet.tiles.manifest import spreadsheet_safe

log = logging.getLogger("tilefleet")
FIRST_FAILURES = 20
#: report.json lists at most this many warnings (``warnings_left_off`` counts the rest).
MAX_WARNINGS = 10_000
#: The timelines draw every attempt up to this many, else an even sample of them.
MAX_TIMELINE_ATTEMPTS = 20_000


def build_report(
    ledger: Ledger,
    run_dir: Path,
    records: list[TaskRecord] | None = None,
    attempts: list[dict[str, Any]] | None = None,
    results: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The content of report.json, from the ledger's tasks and attempts (and the tasks'
    results, :func:`task_results` of them, when the caller has them already). Without
    ``records`` and ``attempts`` it is computed from the ledger in SQL and streamed
    passes, never holding a row per task (:func:`streamed_report`); with them (the live
    monitor, which adds outcomes not merged yet) from those lists: the same content."""
    if records is None or attempts is None:
        return streamed_report(ledger, run_dir)
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
    """Write every report file into ``run_dir`` and return report.json's content.

    Everything is streamed from the ledger: the CSVs row by row from SQL cursors, the
    totals in SQL or one pass, the first failures with a ``LIMIT``; the timeline and the
    page read a bounded sample of a large run (and say so). The driver's memory for the
    reports does not grow with the run's size."""
    with collector_paused():
        report = build_report(ledger, run_dir)
        columns = tuple(ledger.get_meta("source_columns") or ())
        (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        _write_tasks_csv(run_dir / "tasks.csv", ledger, columns)
        _write_source_csv(ledger, run_dir / "failed.csv", columns, (FAILED,), "reason")
        _write_source_csv(ledger, run_dir / "succeeded.csv", columns, DONE_STATES, "status")
        failures = [(task_id, error) for task_id, _, error in ledger.first_failures(FIRST_FAILURES)]
        (run_dir / "report.txt").write_text(format_report(report, failures))
        attempts, every = timeline_attempts(ledger, report["attempts"])
    try:
        plot_timeline(
            attempts,
            run_dir / "timeline.png",
            f"{report['recipe']} run {report['run_id']}",
            every=every,
            total=report["attempts"],
        )
    except Exception as exc:  # a plot must never cost the record
        log.warning("timeline.png not written: %s", exc)
    try:
        write_ledger_html_report(run_dir, report, ledger, attempts, every)
    except Exception as exc:  # nor a page
        log.warning("report.html not written: %s", exc)
    return report


def timeline_attempts(ledger: Ledger, count: int) -> tuple[list[dict[str, Any]], int]:
    """The attempts the timelines draw, and 1 in how many of them that is: all of them up
    to ``MAX_TIMELINE_ATTEMPTS``, else every n-th (in the order they were recorded)."""
    if count <= MAX_TIMELINE_ATTEMPTS:  # without their metrics, which no timeline draws
        return ledger.attempts(metrics=False), 1
    every = -(-count // MAX_TIMELINE_ATTEMPTS)
    return ledger.sampled_attempts(every), every


def streamed_report(ledger: Ledger, run_dir: Path) -> dict[str, Any]:
    """report.json's content from SQL aggregates and streamed passes over the ledger."""
    counts = ledger.counts()
    sessions = ledger.sessions()
    last = sessions[-1] if sessions else None
    billed = {s["id"]: s["settings"].get("billing") for s in sessions}
    any_billed = any(billed.values())
    measured_cost = 0.0
    if any_billed:
        for _, session, seconds in ledger.attempt_spans():
            if b := billed.get(session):
                measured_cost += seconds * b["memory_gb"] * b["usd_per_gb_s"]
    warnings, left_off = [], 0
    for task_id, metrics in ledger.warning_metrics():
        warning = decode(metrics).get("warning")
        if warning and len(warnings) < MAX_WARNINGS:
            warnings.append({"task": task_id, "warning": warning})
        elif warning:
            left_off += 1
    estimate = last["estimate"] if last else None
    count, low, median, high = ledger.duration_summary()
    report = {
        "run_id": ledger.get_meta("run_id"),
        "recipe": ledger.get_meta("recipe"),
        "executor": last["settings"] if last else None,
        "run_dir": str(run_dir),
        "tasks": sum(counts.values()),
        "succeeded": counts[SUCCEEDED],
        "skipped": counts[SKIPPED],
        "failed": counts[FAILED],
        "pending": counts[PENDING] + counts[RUNNING],
        "retried": ledger.task_count(retried=True),
        "attempts": ledger.attempt_count(),
        "sessions": len(sessions),
        "interrupted": bool(last and last["interrupted"]),
        "wall_s": round(sum((s["finished"] or s["started"]) - s["started"] for s in sessions), 3),
        "task_s": _rounded(low, median, high) if count else None,
        "estimate": estimate,
        "cost_usd": {
            "estimated": (estimate or {}).get("cost_usd") if last else None,
            "measured": round(measured_cost, 10) if any_billed else None,
        },
        "warnings": warnings,
        "results": result_totals(_streamed_results(ledger)),
        "by_kind": _streamed_by_kind(ledger, _recipe_of(ledger), billed, estimate),
        "job": ledger.get_meta("job"),
    }
    if left_off:  # only past MAX_WARNINGS: report.txt and failed.csv still name every task
        report["warnings_left_off"] = left_off
    return report


def _streamed_results(ledger: Ledger) -> Iterator[dict[str, Any]]:
    for metrics, _ in ledger.result_metrics():
        yield _results(decode(metrics))


def _streamed_by_kind(
    ledger: Ledger, recipe: Recipe | None, billed: dict[int, dict | None], estimate: dict | None
) -> dict[str, dict[str, Any]]:
    """:func:`_by_kind` from the ledger: each task's kind into a temporary table (one
    task decoded at a time), then counts, medians and costs per kind in SQL."""
    if recipe is None or type(recipe).task_kind is Recipe.task_kind:
        return {}
    named = False

    def kinds() -> Iterator[tuple[str, str]]:
        nonlocal named
        for record in ledger.records():
            kind = recipe.task_kind(record.task)
            named = named or bool(kind)
            yield record.task.id, kind or "other"

    try:
        ledger.load_kinds(kinds())
    except Exception:  # as _task_kinds: a recipe that cannot tell its kinds here has none
        return {}
    if not named:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for kind, _, status, tasks in ledger.grouped_counts(KIND):
        part = out.setdefault(kind, {"tasks": 0, SUCCEEDED: 0, SKIPPED: 0, FAILED: 0})
        part["tasks"] += tasks
        if status in part:
            part[status] += tasks
    summaries = {kind: _rounded(*values) for kind, *values in ledger.grouped_durations(KIND)}
    costs: dict[str, float] = {}
    for kind, session, seconds in ledger.kind_spans():
        if b := billed.get(session):
            costs[kind] = costs.get(kind, 0.0) + seconds * b["memory_gb"] * b["usd_per_gb_s"]
    estimated = (estimate or {}).get("by_kind") or {}
    any_billed = any(billed.values())
    for kind, part in out.items():
        part["task_s"] = summaries.get(kind)
        part["cost_usd"] = {
            "estimated": (estimated.get(kind) or {}).get("cost_usd"),
            "measured": round(costs.get(kind, 0.0), 10) if any_billed else None,
        }
    return dict(sorted(out.items()))


def _rounded(low: float, median: float, high: float) -> dict[str, float]:
    return {"min": round(low, 3), "median": round(median, 3), "max": round(high, 3)}


def format_report(report: dict[str, Any], failures: Sequence[tuple[str, str | None]] = ()) -> str:
    """report.txt: the totals, then the first warnings and the first ``failures`` (id and
    reason of the first failed tasks in plan order, of the ``report['failed']`` in all)."""
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
        listed = len(warnings) + report.get("warnings_left_off", 0)
        lines.append(f"warnings ({min(len(warnings), FIRST_FAILURES)} of {listed}):")
        lines += [f"  {w['task']}: {w['warning']}" for w in warnings[:FIRST_FAILURES]]
    if failures and report["failed"]:
        shown = failures[:FIRST_FAILURES]
        lines.append("")
        lines.append(f"first failures ({len(shown)} of {report['failed']}):")
        lines += [f"  {task_id}: {error}" for task_id, error in shown]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return f"{value:,}" if float(value).is_integer() else f"{value:,.3f}"


def task_results(attempts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What each task's successful attempt reported (points read, cells written, bytes…),
    without its warning (listed on its own) and what it left for the recipe's ``finish``."""
    return {a["task_id"]: _results(a["metrics"]) for a in attempts if a["ok"] and a["metrics"]}


#: Metrics that are no result: the warning (listed on its own), the finish hook's.
_NOT_RESULTS = frozenset({"warning", FINISH_METRIC})


def _results(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in _NOT_RESULTS}


def result_totals(
    results: dict[str, dict[str, Any]] | Iterable[dict[str, Any]],
) -> dict[str, float]:
    """Each numeric result added up over the tasks (``points``: all points read): of the
    results by task id, or of a stream of each task's results."""
    totals: dict[str, float] = {}
    for metrics in results.values() if isinstance(results, dict) else results:
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


def _write_tasks_csv(path: Path, ledger: Ledger, source_columns: tuple[str, ...] = ()) -> None:
    """One row per task (``Ledger.task_report_rows``, streamed); then the columns of its
    source row (a TTC tile's product, Year, X, Y, Y_tile, X_tile), so that any subset of
    rows is an input for a retry."""
    extra = [c for c in source_columns if c not in TASK_COLUMNS]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*TASK_COLUMNS, *extra])
        for row in ledger.task_report_rows(sources=bool(extra)):
            # A task that never ran (most of a large plan) is written as SQL gives it:
            # its texts spreadsheet-safe, None empty. Status, attempts, duration and
            # results cannot start like a formula.
            if row[3] is None and row[6] is None and not extra:
                writer.writerow(row[:7])  # its metrics (None) as its results
                continue
            task_id, status, attempts, duration_s, worker, error, metrics, source = row
            found = _decoded_results(metrics)
            duration = None if duration_s is None else f"{duration_s:.3f}"
            cells = [task_id, status, attempts, duration, worker, error]
            cells.append(_results_text(found) if found else "")
            if extra:
                values = decode(source) if source else {}
                cells += [spreadsheet_safe(values.get(c, "")) for c in extra]
            writer.writerow(cells)


#: A task's results as ``tasks.csv`` shows them: compact, keys sorted.
_results_text = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def _decoded_results(metrics: str | None) -> dict[str, Any] | None:
    if not metrics:
        return None
    return _results(decode(metrics))


def _write_source_csv(
    ledger: Ledger,
    path: Path,
    columns: tuple[str, ...],
    states: tuple[str, ...] | frozenset[str],
    extra: str,
) -> None:
    """The source rows of the tasks in ``states`` in plan order, streamed, with ``extra``
    (``reason``: the error; ``status``) after them; the run's source columns, or those
    the rows have (sorted) for a recipe that declares none."""
    states = tuple(sorted(states))
    fields = list(columns) if columns else [k for k in ledger.source_keys(states) if k != extra]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=[*fields, extra], lineterminator="\n", extrasaction="ignore"
        )
        writer.writeheader()
        for source, error, status in ledger.source_rows(states):
            row = {**(decode(source) if source else {}), extra: status}
            if extra == "reason":
                row[extra] = error or ""
            writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
