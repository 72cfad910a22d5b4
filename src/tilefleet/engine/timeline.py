"""timeline.png: one lane per worker, each attempt a bar coloured by its outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLOURS = {"succeeded": "#2e9e44", "retried": "#f0a030", "failed": "#d03030", "lost": "#808080"}


def attempt_outcome(attempt: dict[str, Any], final_attempts: dict[str, int]) -> str:
    if attempt["ok"]:
        return "succeeded"
    if attempt["worker"] in (None, "lost"):
        return "lost"
    is_last = final_attempts.get(attempt["task_id"]) == attempt["attempt"]
    return "failed" if is_last else "retried"


def plot_timeline(attempts: list[dict[str, Any]], path: Path, title: str) -> None:
    """Draw the attempts (as recorded in the ledger) to a PNG file."""
    # The Agg canvas and a bare Figure: no pyplot, which is slow to import and keeps
    # global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    finished = [a for a in attempts if a["started"] is not None and a["finished"] is not None]
    final_attempts: dict[str, int] = {}
    for a in finished:
        final_attempts[a["task_id"]] = max(final_attempts.get(a["task_id"], 0), a["attempt"])
    workers = sorted({a["worker"] or "lost" for a in finished})
    lane = {worker: i for i, worker in enumerate(workers)}
    origin = min((a["started"] for a in finished), default=0.0)

    height = min(2 + 0.35 * max(len(workers), 1), 40)
    fig = Figure(figsize=(11, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # One broken_barh call per lane and outcome: fast for runs of many thousand attempts.
    bars: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for a in finished:
        key = (lane[a["worker"] or "lost"], attempt_outcome(a, final_attempts))
        span = (a["started"] - origin, max(a["finished"] - a["started"], 1e-3))
        bars.setdefault(key, []).append(span)
    for (row, outcome), spans in bars.items():
        ax.broken_barh(spans, (row - 0.35, 0.7), facecolors=COLOURS[outcome], edgecolor="none")
    ax.set_yticks(range(len(workers)), labels=workers if len(workers) <= 60 else None)
    ax.set_xlabel("seconds since the first attempt started")
    ax.set_ylabel("worker")
    ax.set_title(title)
    ax.legend(
        handles=[Patch(color=c, label=k) for k, c in COLOURS.items()],
        loc="upper right",
        fontsize="small",
    )
    if not finished:
        ax.text(0.5, 0.5, "no attempts ran", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path)
