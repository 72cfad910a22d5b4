"""timeline.png: one lane per worker, each attempt a bar coloured by its outcome.

Beyond ``MAX_WORKER_LANES`` workers (serverless runs, where every invocation is a fresh
process) a lane per worker is unreadable and slow to draw, so attempts are packed into
lanes instead: each goes to the first lane free when it starts, and the lanes show how
many attempts ran at once; past ``MAX_LANES`` packed lanes, neighbouring lanes are drawn
as one. A run of many attempts is drawn from an even sample of them (the title says
which share). Bars have a thin edge, so that back-to-back attempts stay apart, and the legend
sits outside the plot, never over the data.
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

MAX_WORKER_LANES = 60
#: At most this many lanes are drawn: packed lanes are merged, ``factor`` to a lane.
MAX_LANES = 300
COLOURS = {"succeeded": "#2e9e44", "retried": "#f0a030", "failed": "#d03030", "lost": "#808080"}


def attempt_outcome(attempt: dict[str, Any], final_attempts: dict[str, int]) -> str:
    if attempt["ok"]:
        return "succeeded"
    if attempt["worker"] in (None, "lost"):
        return "lost"
    # A sampled attempt (``Ledger.sampled_attempts``) carries its task's last attempt.
    final = attempt.get("final") or final_attempts.get(attempt["task_id"])
    is_last = final == attempt["attempt"]
    return "failed" if is_last else "retried"


def plot_timeline(
    attempts: list[dict[str, Any]], path: Path, title: str, *, every: int = 1, total: int = 0
) -> None:
    """Draw the attempts (as recorded in the ledger) to a PNG file; ``every`` > 1: they are
    a sample, 1 in ``every`` of ``total``, and the title says so."""
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
    if len(workers) <= MAX_WORKER_LANES:
        by_worker = {worker: i for i, worker in enumerate(workers)}
        lanes = [by_worker[a["worker"] or "lost"] for a in finished]
        labels, ylabel = workers, "worker"
    else:
        lanes = packed_lanes(finished)
        labels, ylabel = None, f"attempts running at once ({len(workers)} workers)"
    count = max(lanes, default=0) + 1
    if count > MAX_LANES:
        factor = -(-count // MAX_LANES)
        lanes = [lane // factor for lane in lanes]
        count = max(lanes) + 1
        ylabel = f"attempts running at once, {factor} lanes per row ({len(workers)} workers)"
    origin = min((a["started"] for a in finished), default=0.0)

    height = min(2 + 0.35 * count, 40)
    fig = Figure(figsize=(11, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # One broken_barh call per lane and outcome: fast for runs of many thousand attempts.
    bars: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for a, row in zip(finished, lanes, strict=True):
        key = (row, attempt_outcome(a, final_attempts))
        span = (a["started"] - origin, max(a["finished"] - a["started"], 1e-3))
        bars.setdefault(key, []).append(span)
    # Edges only while bars are more than hairlines: past a few thousand they would hide
    # the colours.
    edge = "#202020" if len(finished) <= 5000 and count <= MAX_LANES else "face"
    for (row, outcome), spans in bars.items():
        ax.broken_barh(
            spans, (row - 0.35, 0.7), facecolors=COLOURS[outcome], edgecolor=edge, linewidth=0.4
        )
    if labels is not None:
        ax.set_yticks(range(len(labels)), labels=labels)
    ax.set_xlabel("seconds since the first attempt started")
    ax.set_ylabel(ylabel)
    if every > 1:
        title += f" (a sample: 1 in {every} of {total:,} attempts)"
    ax.set_title(title, y=1.0)  # a set place: matplotlib would measure every tick label
    ax.legend(
        handles=[Patch(facecolor=c, edgecolor="#202020", label=k) for k, c in COLOURS.items()],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize="small",
    )
    if not finished:
        ax.text(0.5, 0.5, "no attempts ran", ha="center", va="center", transform=ax.transAxes)
    _fit_margins(fig, labels or [], height)
    fig.savefig(path)


def _fit_margins(fig, labels: list[str], height: float) -> None:
    """Margins that leave room for the lane labels (left) and the legend (right), from the
    labels' length: what ``tight_layout`` finds, without measuring every text (it takes
    longer than drawing the bars of a run of thousands of attempts)."""
    width_in = fig.get_figwidth()
    label_in = 0.075 * max((len(label) for label in labels), default=2) + 0.55
    fig.subplots_adjust(
        left=min(0.45, label_in / width_in),
        right=1 - 1.25 / width_in,
        bottom=0.55 / height,
        top=1 - 0.35 / height,
    )


def packed_lanes(attempts: list[dict[str, Any]]) -> list[int]:
    """A lane per attempt: the lowest-numbered lane whose last attempt ended by its start."""
    lanes = [0] * len(attempts)
    busy: list[tuple[float, int]] = []  # (finished, lane) of the attempt last put there
    free: list[int] = []
    for index in sorted(range(len(attempts)), key=lambda i: attempts[i]["started"]):
        started = attempts[index]["started"]
        while busy and busy[0][0] <= started:
            heapq.heappush(free, heapq.heappop(busy)[1])
        lane = heapq.heappop(free) if free else len(busy) + len(free)
        lanes[index] = lane
        heapq.heappush(busy, (attempts[index]["finished"], lane))
    return lanes
