"""Static STAC catalogs of real inputs for ``ttc-ard``, written in fixtures.

Every item is a real item of its collection (Planetary Computer or Earth Search metadata
from ``stac_items/`` and ``s2_l2a_29RKH_20200219/``) pointed at a real raster of the test
data: its geometry, bbox and projection fields are read from that raster, so they are
true; ids and datetimes are changed only where a test needs more dates than the one real
acquisition (each such change is said where it is made).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import rasterio
from rasterio.warp import transform_bounds

from stac_server import write_catalog as write_static_catalog

TILEDB = "ttc_tiledb/tiledb.parquet"
DEM_FILE = "copernicus_dem/Copernicus_DSM_COG_10_N00_00_E006_00_DEM.tif"
#: A tile of Sao Tome island (0-1 N, 6-7 E): land with relief, a little sea.
DEM_TILE = (1804, 968)


def place(source: Path, folder: Path) -> str:
    """Put a real data file in ``folder/assets`` (hard link, else copy) and return its href
    relative to the items in ``folder/items``."""
    target = folder / "assets" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        try:
            target.hardlink_to(source)
        except OSError:
            shutil.copyfile(source, target)
    return f"../assets/{source.name}"


def footprint(path: Path) -> tuple[list[float], dict]:
    """(bbox, GeoJSON polygon) in lon/lat of a georeferenced raster."""
    with rasterio.open(path) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return [west, south, east, north], {"type": "Polygon", "coordinates": [ring]}


def projection(path: Path) -> dict:
    with rasterio.open(path) as src:
        return {
            "proj:code": f"EPSG:{src.crs.to_epsg()}",
            "proj:shape": [src.height, src.width],
            "proj:transform": list(src.transform)[:6],
        }


def write_catalog(root: Path, groups: dict[str, list[dict]]) -> Path:
    """A catalog of collections (id -> items) below ``root``; returns catalog.json's path."""
    return write_static_catalog(
        root, groups, "ttc-ard-test", "Real inputs for tilefleet's ttc-ard tests"
    )


def dem_items(data_dir: Path, root: Path) -> list[dict]:
    """The real GLO-30 tile N00 E006 as a ``cop-dem-glo-30`` item (Planetary Computer's
    metadata of that collection, its id, footprint and grid those of the file)."""
    template = json.loads((data_dir / "stac_items/cop-dem-glo-30-pc.json").read_text())[0]
    source = data_dir / DEM_FILE
    bbox, geometry = footprint(source)
    item = copy.deepcopy(template)
    item["id"] = source.stem.removesuffix("_DEM") + "_DEM"
    item["bbox"], item["geometry"] = bbox, geometry
    item["properties"] = {
        k: v for k, v in item["properties"].items() if not k.startswith("proj:")
    } | projection(source)
    item["stac_extensions"] = ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"]
    item["assets"] = {
        "data": {**template["assets"]["data"], "href": place(source, root / "cop-dem-glo-30")}
    }
    return [item]


S2_FOLDER = "s2_l2a_29RKH_20200219"
S2_ITEM = "S2A_29RKH_20200219_0_L2A"
#: A tile in the middle of 29RKH: its 15-tile screening box lies inside the scene.
S2_TILE = (1480, 1396)
#: The 20 m bands the fixture lacks (it has B11 only): their assets point at B11's file.
MISSING_20M = ("rededge1", "rededge2", "rededge3", "nir08", "swir22")
#: The dates of the series: the real acquisition, then the same scene listed again on
#: other days of 2020 (its own time of day), 31 December among them, and one cloudy day.
S2_CLEAR_DATES = ("2020-02-19", "2020-03-12", "2020-06-11", "2020-12-31")
S2_CLOUDY_DATE = "2020-02-24"
#: A day whose SCL is cloudy over the tile only: stage 1 keeps it, stage 2 drops it.
S2_TILE_CLOUDY_DATE = "2020-09-03"


def cloudy_scl(source: Path, target: Path) -> None:
    """The real SCL with its bare-soil class (5, 96 % of the scene) relabelled as cloud of
    high probability (9): the scene's real clouds, cirrus and edges stay where they are."""
    with rasterio.open(source) as src:
        profile, classes = src.profile, src.read(1)
    classes[classes == 5] = 9
    profile.update(driver="GTiff")
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(classes, 1)


def cloud_over_tile_scl(source: Path, target: Path, bounds: tuple[float, ...]) -> None:
    """The real SCL with the pixels of one lon/lat box (a TTC tile) relabelled as cloud of
    high probability (9): a cloud the size of the tile sitting on it."""
    from rasterio.windows import from_bounds

    with rasterio.open(source) as src:
        profile, classes = src.profile, src.read(1)
        west, south, east, north = transform_bounds("EPSG:4326", src.crs, *bounds)
        window = from_bounds(west, south, east, north, src.transform).round_offsets()
        window = window.round_lengths()
    rows, cols = window.toslices()
    classes[rows, cols] = 9
    profile.update(driver="GTiff")
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(classes, 1)


def s2_items(
    data_dir: Path, root: Path, tile_bounds: tuple[float, ...] | None = None
) -> list[dict]:
    """The real 29RKH L2A item (Earth Search) on the real downsampled COGs, listed on each
    of :data:`S2_CLEAR_DATES` (id suffixed with the date, datetime moved to it) and on
    :data:`S2_CLOUDY_DATE` with :func:`cloudy_scl` as its SCL (eo:cloud_cover 40, so the
    search keeps it and the SCL must drop it), and, given ``tile_bounds``, on
    :data:`S2_TILE_CLOUDY_DATE` with :func:`cloud_over_tile_scl` over them as its SCL."""
    folder = data_dir / S2_FOLDER
    real = json.loads((folder / f"{S2_ITEM}.json").read_text())
    target = root / "sentinel-2-l2a"
    assets = {}
    for key, asset in real["assets"].items():
        source = folder / asset["href"].rsplit("/", 1)[-1]
        if asset["href"].endswith(".tif") and source.is_file():
            assets[key] = {**asset, "href": place(source, target), **projection(source)}
    for key in MISSING_20M:
        assets[key] = {**real["assets"][key], "href": assets["swir16"]["href"]}
    (target / "assets").mkdir(parents=True, exist_ok=True)
    cloudy = target / "assets/SCL-cloudy.tif"
    cloudy_scl(folder / "SCL.tif", cloudy)
    days = [*S2_CLEAR_DATES, S2_CLOUDY_DATE]
    if tile_bounds is not None:
        cloud_over_tile_scl(folder / "SCL.tif", target / "assets/SCL-tile-cloudy.tif", tile_bounds)
        days.append(S2_TILE_CLOUDY_DATE)
    time_of_day = real["properties"]["datetime"].split("T", 1)[1]
    items = []
    for day in days:
        item = copy.deepcopy(real)
        item["id"] = S2_ITEM if day == "2020-02-19" else f"{S2_ITEM}-as-{day}"
        item["properties"]["datetime"] = f"{day}T{time_of_day}"
        item["assets"] = copy.deepcopy(assets)
        if day == S2_CLOUDY_DATE:
            item["assets"]["scl"]["href"] = "../assets/SCL-cloudy.tif"
            item["properties"]["eo:cloud_cover"] = 40.0
        if day == S2_TILE_CLOUDY_DATE:
            item["assets"]["scl"]["href"] = "../assets/SCL-tile-cloudy.tif"
        items.append(item)
    return items


S1_FOLDER = "s1_grd_20180716"
S1_TILE = (5464, 1080)  # inside the GRD footprint, southern India
#: sigma-nought = DN^2 / A^2; the product's calibration LUT is not in the test data, so a
#: typical IW GRD value of A stands for it (the composites' arithmetic is what is tested).
S1_CALIBRATION = 500.0
S1_NODATA = -32768.0  # what Planetary Computer's RTC assets declare
S1_RESOLUTION = 0.002  # degrees, about the downsampled GRD's pixel
#: The real acquisition (descending, Q3) and the same rasters listed again on other days:
#: Q1, Q2, a second Q3 day, and an ascending listing in Q4 (so AUTO, which picks the
#: direction with more full days, leaves Q4 without a scene).
S1_LISTINGS = (
    ("2018-07-16", "descending"),
    ("2018-02-10", "descending"),
    ("2018-05-03", "descending"),
    ("2018-07-28", "descending"),
    ("2018-11-01", "ascending"),
)


def warp_grd(source: Path, target: Path) -> None:
    """A GRD measurement (radar geometry, GCPs only) warped by its GCPs onto EPSG:4326 as
    float32 backscatter (DN^2 / A^2), nodata where the scene has none (DN 0) or no pixel."""
    import numpy as np
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(source) as src:
        gcps, gcp_crs = src.gcps
        dn = src.read(1).astype(np.float32)
        transform, width, height = calculate_default_transform(
            gcp_crs, "EPSG:4326", src.width, src.height, gcps=gcps, resolution=S1_RESOLUTION
        )
    sigma = np.where(dn > 0, (dn / S1_CALIBRATION) ** 2, S1_NODATA).astype(np.float32)
    out = np.full((height, width), S1_NODATA, dtype=np.float32)
    reproject(
        sigma, out, gcps=gcps, src_crs=gcp_crs, dst_transform=transform, dst_crs="EPSG:4326",
        src_nodata=S1_NODATA, dst_nodata=S1_NODATA, resampling=Resampling.bilinear,
    )  # fmt: skip
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "float32",
        "crs": "EPSG:4326", "transform": transform, "nodata": S1_NODATA, "tiled": True,
        "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(out, 1)


def s1_items(data_dir: Path, root: Path) -> list[dict]:
    """The GRD rasters, warped by :func:`warp_grd`, as ``sentinel-1-rtc`` items built from
    Planetary Computer's real RTC item metadata, footprint and times those of the GRD
    product (``productInfo.json``), one per :data:`S1_LISTINGS`."""
    template = json.loads((data_dir / "stac_items/sentinel-1-rtc-pc.json").read_text())[0]
    info = json.loads((data_dir / S1_FOLDER / "productInfo.json").read_text())
    target = root / "sentinel-1-rtc" / "assets"
    target.mkdir(parents=True, exist_ok=True)
    hrefs = {}
    for pol in ("vv", "vh"):
        warp_grd(data_dir / S1_FOLDER / f"iw-{pol}.tiff", target / f"iw-{pol}.rtc.tif")
        hrefs[pol] = f"../assets/iw-{pol}.rtc.tif"
    geometry = {"type": "Polygon", "coordinates": info["footprint"]["coordinates"]}
    ring = geometry["coordinates"][0]
    bbox = [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring),
            max(p[1] for p in ring)]  # fmt: skip
    start, stop = info["startTime"].split("T")[1], info["stopTime"].split("T")[1]
    items = []
    for day, orbit in S1_LISTINGS:
        item = copy.deepcopy(template)
        item["id"] = info["id"] + ("_rtc" if day == "2018-07-16" else f"_rtc-as-{day}-{orbit}")
        item["geometry"], item["bbox"] = geometry, bbox
        props = {k: v for k, v in item["properties"].items() if not k.startswith(("proj:", "s1:"))}
        props.update(
            datetime=f"{day}T{start}Z", start_datetime=f"{day}T{start}Z",
            end_datetime=f"{day}T{stop}Z", **{"sat:orbit_state": orbit},
            **{"sat:absolute_orbit": info["absoluteOrbitNumber"], "platform": "SENTINEL-1A"},
        )  # fmt: skip
        item["properties"] = props
        item["assets"] = {
            pol: {**template["assets"][pol], "href": hrefs[pol]} for pol in ("vv", "vh")
        }
        items.append(item)
    return items
