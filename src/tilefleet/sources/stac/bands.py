"""Band resolution: which asset of a STAC item holds a band, and at which index.

Providers name things differently: Planetary Computer names assets after band ids
(``B04``, ``SCL``), Earth Search after common names (``red``, ``scl``), openEO holds several
bands in one file described by ``eo:bands``/``bands``. A band name finds its asset in each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pystac

from tilefleet.errors import PermanentError

# Sentinel-2 MSI band ids and the STAC common names (Earth Search asset keys) they go by,
# so `B04` and `red` find the same file whichever naming a provider chose.
S2_BAND_ALIASES = {
    "b01": "coastal",
    "b02": "blue",
    "b03": "green",
    "b04": "red",
    "b05": "rededge1",
    "b06": "rededge2",
    "b07": "rededge3",
    "b08": "nir",
    "b8a": "nir08",
    "b09": "nir09",
    "b11": "swir16",
    "b12": "swir22",
}
S2_BAND_ALIASES.update({name: band for band, name in list(S2_BAND_ALIASES.items())})


class MissingBandError(PermanentError, KeyError):
    """An item offers no asset for a requested band."""

    def __init__(self, item_id: str, band: str, available: Sequence[str]):
        super().__init__(item_id, band, tuple(available))
        self.item_id, self.band, self.available = item_id, band, tuple(available)

    def __str__(self) -> str:
        return (
            f"item {self.item_id} has no band {self.band!r}; "
            f"it offers: {', '.join(self.available) or 'no assets'}"
        )


def band_assets(item: pystac.Item, bands: Iterable[str]) -> dict[str, tuple[str, int]]:
    """For each band, the absolute href of the asset holding it and its 1-based index there.

    A band is found as an asset key (any case: ``scl`` finds ``SCL``), else as the ``name``
    or ``common_name`` of an entry in an asset's ``eo:bands`` (STAC 1.0) or ``bands``
    (STAC 1.1), data assets and single-band files first (so ``red`` is ``B04``, not the
    true-colour image). For Sentinel-2 items a band id and its common name stand for each
    other (``B04`` ↔ ``red``), as Earth Search names assets one way and Planetary Computer
    the other.
    """
    found = {}
    for band in bands:
        names = [band]
        if _is_sentinel2(item) and band.lower() in S2_BAND_ALIASES:
            names.append(S2_BAND_ALIASES[band.lower()])
        location = next(filter(None, (_find_band(item, name) for name in names)), None)
        if location is None:
            raise MissingBandError(item.id, band, _offered(item))
        found[band] = location
    return found


def _find_band(item: pystac.Item, band: str) -> tuple[str, int] | None:
    wanted = band.lower()
    if band in item.assets:
        return _href(item, band), 1
    for key in item.assets:
        if key.lower() == wanted:
            return _href(item, key), 1
    candidates = []
    for order, (key, asset) in enumerate(item.assets.items()):
        entries = _band_entries(asset)
        for index, entry in enumerate(entries):
            by_name = str(entry.get("name") or "").lower() == wanted
            by_common = str(entry.get("common_name") or "").lower() == wanted
            if by_name or by_common:
                is_data = "data" in (asset.roles or ["data"])
                rank = (not by_name, not is_data, len(entries), order)
                candidates.append((rank, key, index + 1))
    if not candidates:
        return None
    _, key, index = min(candidates)
    return _href(item, key), index


def _band_entries(asset: pystac.Asset) -> list[dict]:
    entries = asset.extra_fields.get("bands") or asset.extra_fields.get("eo:bands") or []
    return [entry for entry in entries if isinstance(entry, dict)]


def _href(item: pystac.Item, key: str) -> str:
    asset = item.assets[key]
    return asset.get_absolute_href() or asset.href


def _is_sentinel2(item: pystac.Item) -> bool:
    props = item.properties
    text = " ".join(
        str(value).lower()
        for value in (props.get("constellation"), props.get("platform"), item.collection_id)
        if value
    )
    return "sentinel-2" in text or "sentinel-s2" in text


def _offered(item: pystac.Item) -> list[str]:
    offered = []
    for key, asset in item.assets.items():
        names = [entry.get("name") or entry.get("common_name") for entry in _band_entries(asset)]
        names = [str(name) for name in names if name and str(name) != key]
        offered.append(f"{key} ({', '.join(names)})" if names else key)
    return offered
