"""timeline.png as drawn: bars of the outcomes' colours where their attempts ran, a lane
per worker (or per attempt running at once), edges while bars are wide, no bar in an
empty run, text kept inside the image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageColor

from tilefleet.engine.timeline import COLOURS, MAX_LANES, nice_ticks, plot_timeline


def attempt(task_id, worker, started, finished, *, ok=True, number=1):
    return {
        "task_id": task_id,
        "attempt": number,
        "worker": worker,
        "started": started,
        "finished": finished,
        "ok": ok,
    }


def drawn(tmp_path, attempts, title="run", **kwargs) -> np.ndarray:
    path = tmp_path / "timeline.png"
    plot_timeline(attempts, path, title, **kwargs)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def where(pixels: np.ndarray, outcome: str) -> np.ndarray:
    """A mask of the pixels of an outcome's colour."""
    return np.all(pixels == ImageColor.getrgb(COLOURS[outcome]), axis=2)


def bands(rows: np.ndarray) -> list[tuple[int, int]]:
    """The runs of true values in ``rows``: (first, last) of each."""
    edges = np.flatnonzero(np.diff(np.r_[0, rows.astype(np.int8), 0]))
    return list(zip(edges[::2], edges[1::2] - 1, strict=True))


def test_bars_are_coloured_by_outcome_where_and_when_their_attempts_ran(tmp_path):
    pixels = drawn(
        tmp_path,
        [
            attempt("a", "node-a:1", 100.0, 102.0),
            attempt("b", "node-b:2", 100.0, 101.0, ok=False),  # retried: attempt 2 follows
            attempt("b", "node-b:2", 102.0, 104.0, ok=False, number=2),  # the last: failed
            attempt("c", None, 105.0, 106.0, ok=False),  # its worker was lost
        ],
    )
    boxes = {}
    for outcome in COLOURS:
        ys, xs = np.nonzero(where(pixels[:, :-150], outcome))  # the legend lies right
        boxes[outcome] = (xs.min(), xs.max(), ys.min(), ys.max())
    left, right, _, _ = boxes["succeeded"]
    # The colour fills a bar but its edges: the 2 s bar is 3 pixels wider than its colour.
    second = (right - left + 3) / 2
    assert boxes["retried"][0] == left  # both started first
    assert abs((boxes["retried"][1] - left) - (second - 3)) <= 2
    assert abs(boxes["failed"][0] - (left + 2 * second)) <= 2  # from 2 s to 4 s
    assert abs((boxes["failed"][1] - boxes["failed"][0]) - (right - left)) <= 2
    assert abs(boxes["lost"][0] - (left + 5 * second)) <= 2  # from 5 s
    # A lane per worker, by name from the bottom up: lost, node-a, node-b.
    assert boxes["lost"][2] > boxes["succeeded"][3] and boxes["succeeded"][2] > boxes["failed"][3]
    assert boxes["retried"][2:] == boxes["failed"][2:]  # one worker, one lane
    # Each lane is labelled on the left of the plot.
    for _, _, top, bottom in boxes.values():
        assert (pixels[top : bottom + 1, : left - 20] < 100).all(axis=2).any()


def test_back_to_back_attempts_stay_apart_and_hairlines_have_no_edges(tmp_path):
    pixels = drawn(tmp_path, [attempt("a", "w:1", 0.0, 1.0), attempt("b", "w:1", 1.0, 2.0)], "two")
    ys, _ = np.nonzero(where(pixels, "succeeded")[:, :-150])
    middle = (ys.min() + ys.max()) // 2
    assert len(bands(where(pixels[middle : middle + 1, :-150], "succeeded")[0])) == 2
    # 2,000 attempts of 3 ms on 2 workers, back to back: bars thinner than a pixel, whose
    # edges would paint the lanes dark.
    many = [
        attempt(f"t{i}", f"w:{i % 2}", i // 2 * 0.003, i // 2 * 0.003 + 0.003) for i in range(2000)
    ]
    pixels = drawn(tmp_path, many, "many")
    green = where(pixels, "succeeded")[:, :-150]
    _, xs = np.nonzero(green)
    lanes = bands(green.any(axis=1))
    assert len(lanes) == 2
    for top, bottom in lanes:
        middle = (top + bottom) // 2
        assert green[middle, xs.min() : xs.max() + 1].mean() > 0.97


def test_a_failure_among_thousands_of_successes_stays_visible(tmp_path):
    many = [attempt(f"t{i}", "w:1", i * 0.001, i * 0.001 + 0.001) for i in range(5000)]
    many[2500]["ok"] = False
    assert where(drawn(tmp_path, many), "failed")[:, :-150].any()


def test_an_empty_run_draws_no_bars_and_says_so(tmp_path):
    pixels = drawn(tmp_path, [attempt("a", "w:1", None, None)], "empty run")
    assert not any(where(pixels, outcome).any() for outcome in COLOURS)
    height, width = pixels.shape[:2]
    centre = pixels[height // 2 - 20 : height // 2 + 20, width // 2 - 100 : width // 2 + 100]
    assert (centre < 100).all(axis=2).any()  # "no attempts ran"


def test_packed_and_merged_lanes_are_drawn_as_rows_of_bars(tmp_path):
    # 300 invocations of a serverless run, each a fresh process, at most 3 at once.
    serverless = [
        attempt(f"t{i}", f"lambda:{1000 + i}", float(i // 3), float(i // 3) + 0.9)
        for i in range(300)
    ]
    assert len(bands(where(drawn(tmp_path, serverless), "succeeded").any(axis=1))) == 3
    # 2,000 at once: 2,000 packed lanes, 7 to a row.
    at_once = [attempt(f"t{i}", f"lambda:{i}", i * 1e-4, 5.0) for i in range(2000)]
    pixels = drawn(tmp_path, at_once)
    factor = -(-2000 // MAX_LANES)
    assert len(bands(where(pixels, "succeeded")[:, :-150].any(axis=1))) == -(-2000 // factor)


def test_a_long_title_and_long_worker_names_stay_inside_the_image(tmp_path):
    workers = [f"ip-10-0-{i}-1.eu-central-1.compute.internal:{30000 + i}" * 3 for i in range(3)]
    pixels = drawn(
        tmp_path,
        [attempt(f"t{i}", w, float(i), i + 1.0) for i, w in enumerate(workers)],
        "cogify run " + "with a name that goes on " * 12,
        every=3,
        total=9,
    )
    dark = (pixels < 100).all(axis=2)
    assert not dark[:, :3].any() and not dark[:, -3:].any()
    assert where(pixels, "succeeded").any(axis=0).sum() > 300  # the labels left room


@pytest.mark.parametrize(
    ("top", "count", "ticks"),
    [
        (97.0, 7, [0, 20, 40, 60, 80]),
        (3.4, 7, [0, 0.5, 1, 1.5, 2, 2.5, 3]),
        (0.42, 7, [0, 0.1, 0.2, 0.3, 0.4]),
        (0.001, 7, [0, 0.0002, 0.0004, 0.0006, 0.0008, 0.001]),
        (12_000, 5, [0, 5000, 10_000]),
    ],
)
def test_axis_ticks_step_by_one_two_or_five_times_a_power_of_ten(top, count, ticks):
    assert nice_ticks(top, count) == pytest.approx(ticks)
