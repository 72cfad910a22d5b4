"""timeline.png: one lane per worker, each attempt a bar coloured by its outcome.

Beyond ``MAX_WORKER_LANES`` workers (serverless runs, where every invocation is a fresh
process) a lane per worker is unreadable and slow to draw, so attempts are packed into
lanes instead: each goes to the first lane free when it starts, and the lanes show how
many attempts ran at once; past ``MAX_LANES`` packed lanes, neighbouring lanes are drawn
as one. A run of many attempts is drawn from an even sample of them (the title says
which share). Bars have a thin edge while they are wide enough to keep their colour, so
that back-to-back attempts stay apart, and the legend sits outside the plot, never over
the data.

Drawn with Pillow, the bars painted with numpy as a raster of lanes x pixels: the cost
of a drawing grows little with the attempts in it.
"""

from __future__ import annotations

import heapq
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

MAX_WORKER_LANES = 60
#: At most this many lanes are drawn: packed lanes are merged, ``factor`` to a lane.
MAX_LANES = 300
COLOURS = {"succeeded": "#2e9e44", "retried": "#f0a030", "failed": "#d03030", "lost": "#808080"}

WIDTH = 1100  # pixels; the height grows with the lanes, up to MAX_LANES of LANE_MIN_PX
LANE_PX, LANE_MIN_PX = 28, 12
BAR_SHARE = 0.7  # of a lane's height
# The image is drawn as palette codes: background, grid line, the outcomes (in COLOURS'
# order), a bar's edge, then greys for the text and lines (a PNG of one byte a pixel
# encodes several times faster than RGB's three).
_BACKGROUND, _GRID, _EDGE, _GREYS = 0, 1, 2 + len(COLOURS), 3 + len(COLOURS)
_CODES = {outcome: 2 + i for i, outcome in enumerate(COLOURS)}
_PALETTE = [
    (255, 255, 255),
    (232, 232, 232),
    *(tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in COLOURS.values()),
    (32, 32, 32),
    *((round(254 * i / (255 - _GREYS)),) * 3 for i in range(256 - _GREYS)),
]
# Where bars of several outcomes share a pixel, the rarer news shows: a failure is never
# hidden behind the successes around it.
_PRECEDENCE = ("succeeded", "retried", "lost", "failed")
INK, LIGHT_INK = 0, 200  # the text and lines are drawn on a layer of greys: 255 is none


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
    # Pillow when drawing (here and below), not on import: the monitor never draws.
    from PIL import Image, ImageDraw

    finished = [a for a in attempts if a["started"] is not None and a["finished"] is not None]
    final_attempts: dict[str, int] = {}
    for a in finished:
        final_attempts[a["task_id"]] = max(final_attempts.get(a["task_id"], 0), a["attempt"])
    workers = sorted({a["worker"] or "lost" for a in finished})
    if len(workers) <= MAX_WORKER_LANES:
        by_worker = {worker: i for i, worker in enumerate(workers)}
        lanes = [by_worker[a["worker"] or "lost"] for a in finished]
        labels: list[str] | None = workers
        ylabel = "worker"
    else:
        lanes = packed_lanes(finished)
        labels, ylabel = None, f"attempts running at once ({len(workers)} workers)"
    packed = max(lanes, default=0) + 1
    factor = -(-packed // MAX_LANES)
    if factor > 1:
        lanes = [lane // factor for lane in lanes]
        ylabel = f"attempts running at once, {factor} lanes per row ({len(workers)} workers)"
    rows = max(lanes, default=0) + 1
    if every > 1:
        title += f" (a sample: 1 in {every} of {total:,} attempts)"

    origin = min((a["started"] for a in finished), default=0.0)
    starts = np.array([a["started"] for a in finished], float) - origin
    ends = np.maximum(np.array([a["finished"] for a in finished], float) - origin, starts + 1e-3)
    outcomes = np.array([_CODES[attempt_outcome(a, final_attempts)] for a in finished], np.uint8)
    span = float(ends.max()) * 1.02 if finished else 1.0

    layout = _Layout(title, labels, ylabel, legend=bool(finished), rows=rows, lanes=packed)
    x_ticks = nice_ticks(span, layout.plot_w // 110)
    x_max = max(span, x_ticks[-1])
    tick_px = [round(t / x_max * layout.plot_w) for t in x_ticks]
    codes = np.zeros((layout.height, WIDTH), np.uint8)  # each pixel's colour
    codes[layout.top : layout.top + layout.plot_h, layout.left : layout.left + layout.plot_w] = (
        _bar_raster(
            starts / x_max * layout.plot_w,
            ends / x_max * layout.plot_w,
            np.array(lanes, np.intp),
            outcomes,
            layout,
            grid=tick_px,
            edges=factor == 1,  # in merged rows bars overlap: edges would cut through them
        )
    )
    ink = Image.new("L", (WIDTH, layout.height), 255)  # the text and lines, dark on white
    draw = ImageDraw.Draw(ink)
    _draw_axes(ink, draw, layout, x_ticks, tick_px, labels, factor)
    if finished:
        _draw_legend(codes, draw, layout)
    else:
        _text(draw, layout.centre, "no attempts ran", layout.medium, "mm")
    _save(codes, np.asarray(ink), path)


def _save(codes: np.ndarray, ink: np.ndarray, path: Path) -> None:
    """The colours with the ink over them, as a PNG of palette colours."""
    from PIL import Image

    inked = ink < 255
    codes[inked] = _GREYS + ink[inked].astype(np.uint16) * (255 - _GREYS) // 254
    image = Image.fromarray(codes)
    image.putpalette([value for rgb in _PALETTE for value in rgb])
    image.save(path, format="PNG")


class _Layout:
    """Where everything goes: margins measured from the texts that go there."""

    def __init__(self, title, labels, ylabel, *, legend: bool, rows: int, lanes: int) -> None:
        self.small, self.medium, self.large = _font(12), _font(13), _font(15)
        self.line = _text_height(self.small)
        self.title = _wrap(title, self.large, WIDTH - 40)
        self.ylabel = ylabel
        # Lane labels take at most a third of the width; longer ones lose their middle.
        self.labels = [_shorten(label, self.small, WIDTH // 3) for label in labels or ()]
        label_w = max((self.small.getlength(label) for label in self.labels), default=0.0)
        if not labels:  # the counts of lanes on the y ticks
            label_w = self.small.getlength(f"{lanes:,}")
        self.legend_w = round(max(self.small.getlength(k) for k in COLOURS)) + 40 if legend else 0
        self.left = 12 + _text_height(self.medium) + 10 + round(label_w) + 10
        self.right = 20 + self.legend_w + 12
        self.title_line = round(1.3 * _text_height(self.large))
        self.top = 12 + len(self.title) * self.title_line + 10
        self.bottom = 8 + self.line + 10 + _text_height(self.medium) + 14
        self.rows = rows
        self.plot_w = WIDTH - self.left - self.right
        self.plot_h = min(max(LANE_PX * rows, 90), LANE_MIN_PX * MAX_LANES)
        self.height = self.top + self.plot_h + self.bottom
        self.centre = (self.left + self.plot_w / 2, self.top + self.plot_h / 2)

    def lane_band(self, row: int) -> tuple[int, int]:
        """The pixel rows (top, bottom, exclusive; from the plot's top) of a lane's bars;
        lane 0 lies at the bottom."""
        pitch = self.plot_h / self.rows
        centre = self.plot_h - (row + 0.5) * pitch
        half = max(BAR_SHARE * pitch / 2, 0.5)
        return round(centre - half), max(round(centre + half), round(centre - half) + 1)


def _bar_raster(x0, x1, lanes, codes, layout: _Layout, *, grid: list[int], edges: bool):
    """The plot's pixels as palette codes: each lane a row of pixels that its bars cover
    (counted per outcome with cumulative sums, so overlaps cost nothing), stretched to
    the lane's band; a bar at least 4 pixels wide, in a band at least 5 high, gets an edge."""
    width, rows = layout.plot_w, layout.rows
    left = np.clip(np.floor(x0).astype(np.intp), 0, width - 1)
    right = np.clip(np.maximum(np.round(x1).astype(np.intp), left + 1), 1, width)
    grid = [g for g in grid if 0 < g < width]
    lane_codes = np.zeros((rows, width), np.uint8)
    lane_codes[:, grid] = _GRID
    for name in _PRECEDENCE:
        code = _CODES[name]
        pick = codes == code
        if pick.any():
            lane_codes[_covered(lanes[pick], left[pick], right[pick], rows, width)] = code
    band_h = [bottom - top for top, bottom in map(layout.lane_band, range(rows))]
    edged = (right - left >= 4) & edges & (min(band_h, default=0) >= 5)
    edge_codes = lane_codes.copy()
    if edged.any():
        edge_codes[_covered(lanes[edged], left[edged], right[edged], rows, width)] = _EDGE
        for ends in (left[edged], right[edged] - 1):
            lane_codes[lanes[edged], ends] = _EDGE
            edge_codes[lanes[edged], ends] = _EDGE
    # Each pixel row of the plot shows a lane's row of codes, its edge row, or nothing.
    background = np.zeros((1, width), np.uint8)
    background[0, grid] = _GRID
    table = np.concatenate([lane_codes, edge_codes, background])
    pick_row = np.full(layout.plot_h, 2 * rows, np.intp)
    for row in range(rows):
        top, bottom = layout.lane_band(row)
        pick_row[max(top, 0) : bottom] = row
        pick_row[[max(top, 0), bottom - 1]] = row + rows  # the band's top and bottom edge
    return table[pick_row]


def _covered(lanes, left, right, rows: int, width: int) -> np.ndarray:
    """A mask of the (lane, pixel) cells that one bar or more covers: +1 where a bar
    starts, -1 past its end, summed along the lane."""
    size = rows * (width + 1)
    steps = np.bincount(lanes * (width + 1) + left, minlength=size) - np.bincount(
        lanes * (width + 1) + right, minlength=size
    )
    return np.cumsum(steps.reshape(rows, width + 1)[:, :width], axis=1) > 0


def _draw_axes(ink, draw, layout: _Layout, x_ticks, tick_px, labels, factor: int) -> None:
    left, top, right = layout.left, layout.top, layout.left + layout.plot_w
    bottom = top + layout.plot_h
    draw.rectangle((left - 1, top - 1, right, bottom), outline=INK)
    decimals = _decimals(x_ticks)
    for value, px in zip(x_ticks, tick_px, strict=True):
        draw.line((left + px, bottom, left + px, bottom + 4), fill=INK)
        _text(draw, (left + px, bottom + 7), f"{value:,.{decimals}f}", layout.small, "mt")
    xlabel = "seconds since the first attempt started"
    _text(draw, (left + layout.plot_w / 2, bottom + 10 + layout.line), xlabel, layout.medium, "mt")
    if labels:
        for row, label in enumerate(layout.labels):
            band_top, band_bottom = layout.lane_band(row)
            y = top + (band_top + band_bottom) / 2
            draw.line((left - 5, y, left - 1, y), fill=INK)
            _text(draw, (left - 8, y), label, layout.small, "rm")
    elif labels is None:  # packed lanes (an empty run has none): ticks count attempts at once
        for value in nice_ticks(layout.rows * factor, max(layout.plot_h // 40, 2)):
            y = bottom - round(value / factor * layout.plot_h / layout.rows)
            if y >= top:
                draw.line((left - 5, y, left - 1, y), fill=INK)
                _text(draw, (left - 8, y), f"{value:,.0f}", layout.small, "rm")
    _vertical_text(ink, (12, top + layout.plot_h / 2), layout.ylabel, layout.medium)
    for i, line in enumerate(layout.title):
        _text(draw, (WIDTH / 2, 12 + i * layout.title_line), line, layout.large, "mt")


def _draw_legend(codes: np.ndarray, draw, layout: _Layout) -> None:
    x, y = WIDTH - layout.legend_w - 12, layout.top
    draw.rectangle((x, y, x + layout.legend_w, y + 12 + 22 * len(COLOURS)), outline=LIGHT_INK)
    for i, name in enumerate(COLOURS):
        row = y + 10 + 22 * i
        codes[row : row + 13, x + 8 : x + 25] = _EDGE
        codes[row + 1 : row + 12, x + 9 : x + 24] = _CODES[name]
        _text(draw, (x + 32, row + 6), name, layout.small, "lm")


def nice_ticks(top: float, count: int) -> list[float]:
    """Ticks from 0 up to ``top`` in steps of 1, 2 or 5 times a power of ten, about
    ``count`` of them (at least two: the last one at or past ``top``)."""
    top = top if top > 0 else 1.0
    raw = top / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    last = math.floor(top / step + 1e-9)
    ticks = [i * step for i in range(last + 1)]
    return ticks if len(ticks) > 1 else [0.0, step]


def _decimals(ticks: list[float]) -> int:
    step = ticks[1] - ticks[0]
    return max(0, -math.floor(math.log10(step) + 1e-9))


@cache
def _font(size: int):
    # Pillow's own scalable font (FreeType), no font files of the system's.
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _text_height(font) -> int:
    top, bottom = font.getbbox("Hg")[1::2]
    return bottom - top


def _text(draw, xy, text: str, font, anchor: str) -> None:
    """Text placed by its box: ``anchor`` is horizontal (l, m, r) then vertical (t, m),
    measured here so that it works for Pillow's bitmap font too."""
    x0, y0, x1, _ = draw.textbbox((0, 0), text, font=font)
    height = _text_height(font)
    x = xy[0] - {"l": x0, "m": (x0 + x1) / 2, "r": x1}[anchor[0]]
    y = xy[1] - {"t": y0, "m": y0 + height / 2}[anchor[1]]
    draw.text((round(x), round(y)), text, font=font, fill=INK)


def _vertical_text(image, xy, text: str, font) -> None:
    """Text turned a quarter to the left, its left side at ``xy[0]``, centred on ``xy[1]``."""
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = font.getbbox(text)
    mask = Image.new("L", (x1 - x0 + 2, y1 - y0 + 2), 0)
    ImageDraw.Draw(mask).text((1 - x0, 1 - y0), text, font=font, fill=255)
    mask = mask.rotate(90, expand=True)
    # Longer than the plot is tall: it may reach into the margins, never out of the image.
    y = min(max(round(xy[1] - mask.height / 2), 0), max(image.height - mask.height, 0))
    image.paste(INK, (xy[0], y, xy[0] + mask.width, y + mask.height), mask)


def _wrap(text: str, font, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` pixels, broken at spaces."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(_shorten(word, font, width))
    return lines or [""]


def _shorten(text: str, font, width: int) -> str:
    """``text``, or its start and end around an ellipsis, in at most ``width`` pixels."""
    if font.getlength(text) <= width:
        return text

    def kept(keep: int) -> str:
        return f"{text[: (keep + 1) // 2]}…{text[len(text) - keep // 2 :]}"

    fits, too_long = 1, len(text)  # characters kept: a bisection
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        fits, too_long = (
            (middle, too_long) if font.getlength(kept(middle)) <= width else (fits, middle)
        )
    return kept(fits)


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
