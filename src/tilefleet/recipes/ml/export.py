"""``export`` (one task per UTM zone): the zone's patch predictions, each cropped to its
unbuffered square, merged into one COG on the zone's grid, nodata where no patch is.

The task lists the predictions folder once, keeps the zone's patches (by id,
``{epsg}_{col}_{row}``, within the plan's extent), and describes the mosaic as a GDAL VRT
file (one source window per patch, no command line, sources opened on demand through
GDAL's dataset pool, so neither the shell's length limit nor the open-file limit applies),
which GDAL's COG driver then writes block by block. Outputs: ``UTM_{epsg}.tif`` and its
STAC item ``UTM_{epsg}.json`` (the marker).
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from tilefleet.errors import JobError, PermanentError
from tilefleet.recipes.base import Recipe
from tilefleet.recipes.tiled_params import TiledParams
from tilefleet.store.location import StoreURL
from tilefleet.task import Task

ZONE_PREFIX = "UTM_"
_GDAL_TYPES = {
    "uint8": "Byte",
    "uint16": "UInt16",
    "int16": "Int16",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


class ExportParams(TiledParams):
    path_fields = (*TiledParams.path_fields, "input")

    input: StoreURL = Field(description="Folder of the patch predictions")
    layer: Literal["prediction", "probabilities"] = Field(
        "prediction", description="Which prediction files to merge"
    )
    profile: str = Field("deflate", description="COG compression profile")
    overview_resampling: str = Field("nearest", description="Overview resampling (mode, average…)")


def zone_name(epsg: int) -> str:
    return f"{ZONE_PREFIX}{epsg}"


class ExportRecipe(Recipe):
    name = "export"
    summary = "Merge the patch predictions of each UTM zone into one COG (one task per zone)."
    Params = ExportParams
    default_task_s = 10.0
    source_columns = ("zone",)

    def plan(self, params: ExportParams) -> list[Task]:
        from tilefleet.tiles.spec import tiles_from_spec
        from tilefleet.tiles.tile import TileInputError

        if params.tiles.grid != "utm":
            raise JobError("export merges UTM patches: tiles must be a utm grid")
        try:
            tiles = tiles_from_spec(params.tiles)
        except (TileInputError, OSError) as exc:
            raise JobError(f"tiles: {exc}") from None
        zones: dict[int, list] = defaultdict(list)
        for tile in tiles:
            zones[tile.epsg].append((tile.attrs["col"], tile.attrs["row"]))
        tasks = []
        for epsg, squares in sorted(zones.items()):
            cols, rows = zip(*squares, strict=True)
            payload = {
                "epsg": epsg,
                "size": params.tiles.size,
                "buffer": params.tiles.buffer,
                "cols": [min(cols), max(cols)],
                "rows": [min(rows), max(rows)],
                "patches": len(squares),
                "input": str(params.input),
                "suffix": ".tif" if params.layer == "prediction" else "-probabilities.tif",
                "profile": params.profile,
                "overview_resampling": params.overview_resampling,
            }
            name = zone_name(epsg)
            tasks.append(
                Task(name, self.name, payload, str(params.dest), f"{name}.json", {"zone": name})
            )
        return tasks

    def run(self, task: Task) -> dict[str, Any]:
        return export_zone(task)


def zone_patches(store, p: dict) -> list[tuple[str, int, int]]:
    """(key, col, row) of the zone's prediction files, from one listing of the folder."""
    pattern = re.compile(rf"^{p['epsg']}_(-?\d+)_(-?\d+){re.escape(p['suffix'])}$")
    found = []
    for info in store.list_dir(""):
        match = pattern.match(info.key)
        if match:
            col, row = int(match.group(1)), int(match.group(2))
            if p["cols"][0] <= col <= p["cols"][1] and p["rows"][0] <= row <= p["rows"][1]:
                found.append((info.key, col, row))
    return sorted(found, key=lambda f: (-f[2], f[1]))  # top row first, as the file is laid out


def zone_vrt(store, p: dict, patches: list[tuple[str, int, int]]) -> tuple[str, dict]:
    """The VRT XML of the zone's mosaic, and the properties of its grid."""
    from xml.sax.saxutils import escape

    import rasterio

    size, buffer = p["size"], p["buffer"]
    with rasterio.open(store.gdal_path(patches[0][0])) as first:  # all share its form
        res = first.transform.a
        count, dtype, nodata = first.count, first.dtypes[0], first.nodata
        crs_wkt = first.crs.to_wkt()
        block_x, block_y = first.block_shapes[0][1], first.block_shapes[0][0]
    pixels = size / res
    if abs(pixels - round(pixels)) > 1e-6:
        raise PermanentError(
            f"zone {p['epsg']}: patch size {size} is not a whole number of {res} m pixels"
        )
    pixels = round(pixels)
    x0, y1 = p["cols"][0] * size, (p["rows"][1] + 1) * size
    width = (p["cols"][1] - p["cols"][0] + 1) * pixels
    height = (p["rows"][1] - p["rows"][0] + 1) * pixels
    sources: list[list[str]] = [[] for _ in range(count)]
    for key, col, row in patches:
        # The patch's own grid is its buffered square snapped outwards to the pixel lattice
        # (Tile.geobox), so no patch file needs opening here (one request each on S3).
        left = math.floor((col * size - buffer) / res + 1e-6)
        right = math.ceil(((col + 1) * size + buffer) / res - 1e-6)
        bottom = math.floor((row * size - buffer) / res + 1e-6)
        top = math.ceil(((row + 1) * size + buffer) / res - 1e-6)
        src_x, src_y = round(col * size / res) - left, top - round((row + 1) * size / res)
        dst_x, dst_y = round((col * size - x0) / res), round((y1 - (row + 1) * size) / res)
        window = f'xOff="{{}}" yOff="{{}}" xSize="{pixels}" ySize="{pixels}"'
        properties = (
            f'<SourceProperties RasterXSize="{right - left}" RasterYSize="{top - bottom}" '
            f'DataType="{_GDAL_TYPES[dtype]}" BlockXSize="{block_x}" BlockYSize="{block_y}"/>'
        )
        for band in range(count):
            sources[band].append(
                "<SimpleSource>"
                f'<SourceFilename relativeToVRT="0">{escape(store.gdal_path(key))}</SourceFilename>'
                f"<SourceBand>{band + 1}</SourceBand>{properties}"
                f"<SrcRect {window.format(src_x, src_y)}/>"
                f"<DstRect {window.format(dst_x, dst_y)}/>"
                "</SimpleSource>"
            )
    nodata_text = "" if nodata is None else f"<NoDataValue>{nodata}</NoDataValue>"
    bands = "".join(
        f'<VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{band + 1}">{nodata_text}'
        + "".join(sources[band])
        + "</VRTRasterBand>"
        for band in range(count)
    )
    xml = (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{escape(crs_wkt)}</SRS>"
        f"<GeoTransform>{x0}, {res}, 0, {y1}, 0, {-res}</GeoTransform>"
        f"{bands}</VRTDataset>"
    )
    return xml, {"width": width, "height": height, "resolution": res, "bands": count}


def export_zone(task: Task) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    import rasterio

    from tilefleet.store.cog import cog_options, write_cog
    from tilefleet.store.gdal_env import gdal_config
    from tilefleet.store.objects import open_store
    from tilefleet.store.stac_item import item_bytes, raster_item

    p = task.params
    source = open_store(p["input"])
    patches = zone_patches(source, p)
    if not patches:
        raise PermanentError(f"zone {p['epsg']}: no patch prediction in {p['input']}")
    name = zone_name(p["epsg"])
    dest = open_store(task.dest)
    settings = dict(gdal_config())
    # GDAL's block cache defaults to 5 % of RAM; the mosaic is written once, block by
    # block, so a small cache serves as well and keeps the task's memory flat.
    if "GDAL_CACHEMAX" not in os.environ:  # a user's own setting is GDAL's to read
        settings.setdefault("GDAL_CACHEMAX", 64)  # MB
    with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp, rasterio.Env(**settings):
        xml, grid = zone_vrt(source, p, patches)
        vrt = Path(tmp) / f"{name}.vrt"
        vrt.write_text(xml)
        cog = Path(tmp) / f"{name}.tif"
        write_cog(
            str(vrt), cog, cog_options(p["profile"], overview_resampling=p["overview_resampling"])
        )
        size = cog.stat().st_size
        properties = {
            "tilefleet:zone": p["epsg"],
            "tilefleet:patches": len(patches),
            "tilefleet:patches_planned": p["patches"],
        }
        item = raster_item(
            str(cog),
            item_id=name,
            assets={"data": _map_asset(cog, f"./{name}.tif", grid)},
            properties=properties,
            when=datetime.now(UTC),
        )
        dest.put_file(cog, f"{name}.tif", move=True)
    dest.put_bytes(item_bytes(item), task.marker)  # last: the marker
    metrics: dict[str, Any] = {"patches": len(patches), "bytes_out": size, **grid}
    if len(patches) < p["patches"]:
        metrics["warning"] = (
            f"zone {p['epsg']}: {p['patches'] - len(patches)} of {p['patches']} patches have no "
            "prediction (nodata there)"
        )
    return metrics


def _map_asset(path, href: str, grid: dict) -> dict[str, Any]:
    """The zone map's asset: its bands' type, nodata and resolution (``raster:bands``),
    without statistics, which would read the whole map once more."""
    import rasterio

    from tilefleet.store.stac_item import COG_MEDIA_TYPE

    with rasterio.open(path) as ds:
        nodata = "nan" if ds.nodata is not None and math.isnan(ds.nodata) else ds.nodata
        bands = [
            {"data_type": dtype, "nodata": nodata, "spatial_resolution": grid["resolution"]}
            for dtype in ds.dtypes
        ]
    return {
        "href": href,
        "type": COG_MEDIA_TYPE,
        "roles": ["data"],
        "title": "Merged predictions",
        "raster:bands": bands,
    }
