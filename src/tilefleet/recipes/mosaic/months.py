"""Calendar months, the unit a mosaic is cut by in time: the months a job spans, their
``YYYY-MM`` names, and their first and last instants (31 December included)."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime


def months_between(start: date, end: date) -> list[tuple[int, int]]:
    """Every calendar month (year, month) from the month of ``start`` to that of ``end``."""
    first, last = start.year * 12 + start.month - 1, end.year * 12 + end.month - 1
    return [(index // 12, index % 12 + 1) for index in range(first, last + 1)]


def month_end(year: int, month: int) -> datetime:
    """The last instant of a month (its last day included, 31 December too)."""
    last_day = calendar.monthrange(year, month)[1]
    return datetime(year, month, last_day, 23, 59, 59, 999999, tzinfo=UTC)


def month_label(month: tuple[int, int]) -> str:
    """``YYYY-MM``: how a month is named in task ids, output folders and reports."""
    return f"{month[0]:04d}-{month[1]:02d}"


def month_interval(label: str) -> tuple[datetime, datetime]:
    """The first and the last instant of the month named ``YYYY-MM``."""
    year, month = (int(part) for part in label.split("-"))
    return datetime(year, month, 1, tzinfo=UTC), month_end(year, month)
