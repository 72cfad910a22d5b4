"""What a STAC search asks for, and what it means for an item to match.

The query is one model whatever answers it (a STAC API or a static catalog), so the same
query means the same thing everywhere: both dates inclusive (the whole end day), results
sorted by datetime then id, duplicates (same collection and id) dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import pystac
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from tilefleet.errors import TilefleetError


class StacSearchError(TilefleetError):
    """A search could not be run or answered; the message names the API or file at fault."""


@dataclass(frozen=True)
class StacQuery:
    """What to search for. ``geometry`` is in WGS84 lon/lat; both dates are inclusive.

    ``max_cloud_cover`` keeps items whose ``eo:cloud_cover`` is at most this; in static
    catalogs items without the property are kept, while a STAC API decides by itself (the
    common servers drop them). ``max_items`` keeps the earliest items.
    """

    geometry: BaseGeometry
    start: date
    end: date
    collections: tuple[str, ...] = ()
    max_cloud_cover: float | None = None
    max_items: int | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"end date {self.end} is before start date {self.start}")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"max_items must be at least 1, not {self.max_items}")

    @classmethod
    def from_bbox(cls, bbox: Sequence[float], start: date, end: date, **kwargs) -> StacQuery:
        """A query for a ``(west, south, east, north)`` box in lon/lat."""
        return cls(box(*bbox), start, end, **kwargs)

    @property
    def interval(self) -> tuple[datetime, datetime]:
        """The closed UTC interval: start day 00:00 to the last microsecond of the end day."""
        return (
            datetime.combine(self.start, time.min, UTC),
            datetime.combine(self.end, time.max, UTC),
        )

    @property
    def datetime_range(self) -> str:
        """The interval as STAC API ``datetime`` text."""
        start, end = self.interval
        return f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%S.%fZ}"


def matches(item: pystac.Item, query: StacQuery) -> bool:
    """Whether ``item`` meets every condition of ``query``."""
    # An item that names no collection (and was found under none) may be of any: the
    # catalog it came from is the user's choice, so it is kept rather than silently lost.
    collection = item.collection_id
    if query.collections and collection is not None and collection not in query.collections:
        return False
    cloud = item.properties.get("eo:cloud_cover")
    if query.max_cloud_cover is not None and cloud is not None and cloud > query.max_cloud_cover:
        return False
    first, last = item_interval(item)
    start, end = query.interval
    if first > end or last < start:
        return False
    footprint = item_footprint(item)
    return footprint is not None and footprint.intersects(query.geometry)


def item_datetime(item: pystac.Item) -> datetime:
    """The item's ``datetime``, or the start of its range: what it is sorted and grouped by."""
    return item_interval(item)[0]


def item_interval(item: pystac.Item) -> tuple[datetime, datetime]:
    """The UTC time (or ``start_datetime``/``end_datetime`` range) an item covers."""
    if item.datetime is not None:
        moment = _utc(item.datetime)
        return moment, moment
    common = item.common_metadata
    if common.start_datetime is None or common.end_datetime is None:
        raise StacSearchError(f"item {item.id} has neither datetime nor start/end_datetime")
    return _utc(common.start_datetime), _utc(common.end_datetime)


def _utc(moment: datetime) -> datetime:
    # STAC requires a time zone; a naive one in the wild means UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def item_footprint(item: pystac.Item) -> BaseGeometry | None:
    """The item's geometry, else its bbox, in lon/lat (None when it has neither)."""
    if item.geometry:
        return shape(item.geometry)
    if item.bbox:  # 2D (w, s, e, n) or 3D (w, s, zmin, e, n, zmax)
        half = len(item.bbox) // 2
        return box(*item.bbox[:2], *item.bbox[half : half + 2])
    return None


def sorted_unique(items: Iterable[pystac.Item], max_items: int | None) -> list[pystac.Item]:
    """``items`` without duplicates (same collection and id), by datetime then id, the
    first ``max_items`` of them."""
    unique: dict[tuple[str | None, str], pystac.Item] = {}
    for item in items:
        unique.setdefault((item.collection_id, item.id), item)
    ordered = sorted(unique.values(), key=lambda item: (item_datetime(item), item.id))
    return ordered[:max_items] if max_items is not None else ordered
