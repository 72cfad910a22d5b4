"""STAC items describing written rasters, with the projection and raster extensions.

The item of an output doubles as its done marker: it is written after the data, so its
presence means the data is complete.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pystac
import rasterio
from rio_stac import create_stac_item

COG_MEDIA_TYPE = pystac.MediaType.COG


def raster_item(
    local_path: str,
    *,
    item_id: str,
    data_href: str,
    extra_assets: dict[str, pystac.Asset] | None = None,
    properties: dict | None = None,
) -> dict:
    """A STAC item (as a dict) for the raster at ``local_path``; its asset points at ``data_href``.

    Rasters without a CRS (radar geometry, GCPs only) get an item without geometry.
    """
    with rasterio.open(local_path) as ds:
        georeferenced = ds.crs is not None
        created = datetime.now(UTC)
        props = {"created": stac_datetime(created), **(properties or {})}
        if georeferenced:
            item = create_stac_item(
                ds,
                input_datetime=created,
                id=item_id,
                asset_name="data",
                asset_roles=["data"],
                asset_media_type=COG_MEDIA_TYPE,
                asset_href=data_href,
                with_proj=True,
                with_raster=True,
                properties=props,
            )
        else:
            item = pystac.Item(item_id, None, None, created, props)
            item.add_asset(
                "data", pystac.Asset(data_href, media_type=COG_MEDIA_TYPE, roles=["data"])
            )
    for key, asset in (extra_assets or {}).items():
        item.add_asset(key, asset)
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def stac_datetime(moment: datetime) -> str:
    """A UTC time as STAC writes it: RFC 3339 with ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def item_bytes(item: dict) -> bytes:
    return json.dumps(item, indent=1).encode()
