"""STAC search against a real STAC API on loopback (stac-fastapi-static) and against static
catalogs of real items (local, over HTTP, on moto's S3); band resolution on the three item
styles of the field (Earth Search, Planetary Computer, openEO)."""

from __future__ import annotations

import json
import socket
import time
from datetime import date
from pathlib import Path

import pystac
import pytest
import rasterio
from shapely.geometry import Polygon, box

from tilefleet.sources.stac import (
    MissingBandError,
    SignerError,
    StacQuery,
    StacSearchError,
    band_assets,
    load_signer,
    search_items,
)
from tilefleet.store.objects import open_store

MOL = box(5.069, 51.214, 5.081, 51.221)  # the openEO chips near Mol, BE
RKH = box(-12.0, 24.3, -10.8, 25.3)  # MGRS tile 29RKH
WORLD = box(-180, -90, 180, 90)
OPENEO = ["openEO_2023-06-01Z.tif", "openEO_2023-06-04Z.tif", "openEO_2023-06-06Z.tif"]
S2_29RKH = "S2A_29RKH_20200219_0_L2A"
T35MNM = box(26.0, -8.2, 27.0, -7.2)  # inside the footprints of the 13 Planetary Computer items


def ids(items: list[pystac.Item]) -> list[str]:
    return [item.id for item in items]


@pytest.fixture
def openeo_collection(data_dir) -> str:
    return str(data_dir / "s2_openeo_3dates_be" / "collection.json")


@pytest.fixture
def pc_items(data_dir) -> str:
    return str(data_dir / "stac_items" / "site2-2020_jun_jul-35MNM.geojson")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- STAC API ----------------------------------------------------------------------------


def test_api_search_by_area_and_dates(stac_api):
    found = search_items(StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 4)), stac_url=stac_api.url)

    assert ids(found) == OPENEO[:2]
    assert {item.collection_id for item in found} == {"openeo-mol"}
    href, band = band_assets(found[1], ["B02"])["B02"]
    assert (href, band) == (f"{stac_api.url}/openeo-mol/assets/{OPENEO[1]}", 3)
    with rasterio.open(href) as src:  # the href the API hands out is readable as it is
        assert [src.tags(b)["DESCRIPTION"] for b in src.indexes] == ["B04", "B03", "B02"]


def test_api_search_by_collection_cloud_cover_and_max_items(stac_api):
    years = date(2020, 1, 1), date(2023, 12, 31)

    everything = search_items(StacQuery(WORLD, *years), stac_url=stac_api.url)
    assert ids(everything) == [S2_29RKH, *OPENEO]  # sorted by datetime
    only_s2 = StacQuery(WORLD, *years, collections=("sentinel-2-l2a",))
    assert ids(search_items(only_s2, stac_url=stac_api.url)) == [S2_29RKH]
    # The 29RKH scene has 4.05 % cloud cover.
    clear = StacQuery(RKH, *years, max_cloud_cover=5)
    assert ids(search_items(clear, stac_url=stac_api.url)) == [S2_29RKH]
    clearer = StacQuery(RKH, *years, max_cloud_cover=4)
    assert search_items(clearer, stac_url=stac_api.url) == []
    # The server cannot sort, so the earliest two are picked here, the same on every run.
    first_two = StacQuery(WORLD, *years, max_items=2)
    assert ids(search_items(first_two, stac_url=stac_api.url)) == [S2_29RKH, OPENEO[0]]


def test_api_end_date_is_inclusive(stac_api):
    # The scene was acquired at 11:34 on 2020-02-19: an end date of that day must find it.
    on_the_day = StacQuery(RKH, date(2020, 2, 1), date(2020, 2, 19))
    day_before = StacQuery(RKH, date(2020, 2, 1), date(2020, 2, 18))
    assert ids(search_items(on_the_day, stac_url=stac_api.url)) == [S2_29RKH]
    assert search_items(day_before, stac_url=stac_api.url) == []


def test_api_empty_result(stac_api):
    elsewhere = StacQuery(box(100, 10, 101, 11), date(2020, 1, 1), date(2023, 12, 31))
    assert search_items(elsewhere, stac_url=stac_api.url) == []


def test_api_earth_search_item_points_at_the_local_rasters(stac_api):
    (item,) = search_items(
        StacQuery(RKH, date(2020, 2, 19), date(2020, 2, 19)), stac_url=stac_api.url
    )
    bands = band_assets(item, ["red", "B08", "SCL", "swir16"])
    assert bands == {
        "red": (f"{stac_api.url}/sentinel-2-l2a/assets/B04.tif", 1),
        "B08": (f"{stac_api.url}/sentinel-2-l2a/assets/B08.tif", 1),
        "SCL": (f"{stac_api.url}/sentinel-2-l2a/assets/SCL.tif", 1),
        "swir16": (f"{stac_api.url}/sentinel-2-l2a/assets/B11.tif", 1),
    }
    with rasterio.open(bands["SCL"][0]) as src:
        assert [src.height, src.width] == item.assets["scl"].extra_fields["proj:shape"]


def test_a_429_storm_shorter_than_the_retries_is_ridden_out(stac_api):
    query = StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 30))
    stac_api.storm(2, retry_after="1")
    started = time.monotonic()

    found = search_items(query, stac_url=stac_api.url, retries=5, backoff_s=0.01)

    assert ids(found) == OPENEO
    assert stac_api.storm_state()["answered"] == 2
    # Retry-After (1 s) is honoured over the much shorter backoff.
    assert time.monotonic() - started >= 2


def test_a_429_storm_longer_than_the_retries_fails_clearly(stac_api):
    stac_api.storm(50, retry_after="0")
    query = StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 30))

    with pytest.raises(StacSearchError) as failure:
        search_items(query, stac_url=stac_api.url, retries=3, backoff_s=0.01)

    assert str(failure.value) == (
        f"STAC API {stac_api.url}: HTTP 429 Too Many Requests after 3 retries"
    )
    assert stac_api.storm_state()["answered"] == 4  # the first try and three retries


def test_server_errors_are_retried_too(stac_api):
    stac_api.storm(2, status=503, retry_after="0")
    query = StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 1))
    assert ids(search_items(query, stac_url=stac_api.url, backoff_s=0.01)) == OPENEO[:1]
    assert stac_api.storm_state()["answered"] == 2


def test_unreachable_api_fails_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    query = StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 30))
    with pytest.raises(StacSearchError) as failure:
        search_items(query, stac_url=url, retries=1, backoff_s=0.01)
    assert str(failure.value) == f"STAC API {url}: unreachable ([Errno 111] Connection refused)"


def test_a_url_that_is_no_stac_api_fails_in_one_line(stac_api):
    query = StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 30))
    for path, reason in (
        ("/nothing", 'HTTP 404 Not Found: {"detail":"Not Found"}'),
        ("/catalog.json", "offers no item search (/search)"),  # a static catalog
    ):
        with pytest.raises(StacSearchError) as failure:
            search_items(query, stac_url=stac_api.url + path, retries=0)
        assert str(failure.value) == f"STAC API {stac_api.url}{path}: {reason}"


def test_exactly_one_source(openeo_collection, stac_api):
    query = StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 30))
    with pytest.raises(StacSearchError, match="exactly one"):
        search_items(query)
    with pytest.raises(StacSearchError, match="exactly one"):
        search_items(query, stac_url=stac_api.url, catalog=openeo_collection)


# --- static catalogs --------------------------------------------------------------------


def test_static_collection_is_walked_into_sub_folders(openeo_collection, data_dir):
    query = StacQuery(MOL, date(2023, 6, 2), date(2023, 6, 6))

    found = search_items(query, catalog=openeo_collection)

    assert ids(found) == OPENEO[1:]
    assert {item.collection_id for item in found} == {"unknown-job"}  # from collection.json
    href, band = band_assets(found[0], ["B03"])["B03"]
    # Local hrefs come back absolute, with links resolved (as every local store path is).
    assert href == str((data_dir / "s2_openeo_3dates_be" / "sub-folder" / OPENEO[1]).resolve())
    assert band == 2
    with rasterio.open(href) as src:
        assert src.tags(band)["DESCRIPTION"] == "B03"


def test_static_and_api_agree(openeo_collection, stac_api):
    for query in (
        StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 4)),
        StacQuery(MOL, date(2023, 6, 4), date(2023, 6, 30), max_items=1),
        StacQuery(MOL, date(2023, 6, 7), date(2023, 6, 30)),
    ):
        static = ids(search_items(query, catalog=openeo_collection))
        assert static == ids(search_items(query, stac_url=stac_api.url))
    assert static == []


def test_static_geometry_is_the_footprint_not_its_bbox(openeo_collection):
    # A triangle whose bounding box covers the chips while the triangle itself misses them.
    beside = Polygon([(5.0, 51.0), (5.2, 51.0), (5.0, 51.3)])
    assert not beside.intersects(MOL) and beside.envelope.intersects(MOL)
    assert (
        search_items(
            StacQuery(beside, date(2023, 6, 1), date(2023, 6, 30)), catalog=openeo_collection
        )
        == []
    )
    touching = Polygon([(5.0, 51.0), (5.075, 51.218), (5.0, 51.3)])
    found = search_items(
        StacQuery(touching, date(2023, 6, 1), date(2023, 6, 30)), catalog=openeo_collection
    )
    assert ids(found) == OPENEO


def test_item_collection_by_cloud_cover_dates_and_max_items(pc_items):
    june = StacQuery(T35MNM, date(2020, 6, 1), date(2020, 6, 30), max_cloud_cover=1.0)
    assert ids(search_items(june, catalog=pc_items)) == [
        "S2B_MSIL2A_20200606T080609_R078_T35MNM_20200826T094900",  # 0.97 %
        "S2B_MSIL2A_20200616T080609_R078_T35MNM_20201027T073925",  # 0.02 %
    ]
    first = StacQuery(T35MNM, date(2020, 6, 1), date(2020, 7, 31), max_items=2)
    assert ids(search_items(first, catalog=pc_items)) == [
        "S2A_MSIL2A_20200601T080611_R078_T35MNM_20201027T072253",
        "S2B_MSIL2A_20200606T080609_R078_T35MNM_20200826T094900",
    ]
    both_months = StacQuery(T35MNM, date(2020, 6, 1), date(2020, 7, 31))
    assert len(search_items(both_months, catalog=pc_items)) == 13
    ours = StacQuery(T35MNM, date(2020, 6, 1), date(2020, 7, 31), collections=("landsat-c2-l2",))
    assert search_items(ours, catalog=pc_items) == []


def test_json_list_of_items(data_dir):
    listing = str(data_dir / "stac_items" / "sentinel-2-l2a-pc.json")
    day = date(2024, 4, 19)
    # Only tile 47XMJ reaches this far east at 80.1° N.
    found = search_items(StacQuery(box(94.5, 80.1, 94.8, 80.13), day, day), catalog=listing)
    assert ids(found) == ["S2B_MSIL2A_20240419T095549_R122_T47XMJ_20240419T122756"]
    all_four = search_items(
        StacQuery(WORLD, day, day, collections=("sentinel-2-l2a",)), catalog=listing
    )
    assert len(all_four) == 4
    assert (
        search_items(StacQuery(WORLD, date(2024, 4, 20), date(2024, 4, 30)), catalog=listing) == []
    )


def test_items_naming_no_collection_are_kept_by_a_collection_filter(data_dir, tmp_path):
    source = data_dir / "s2_openeo_3dates_be" / "openEO_2023-06-01Z.tif.json"
    named, anonymous = json.loads(source.read_text()), json.loads(source.read_text())
    named["id"], named["collection"] = "named", "landsat-c2-l2"
    anonymous["id"] = "anonymous"
    anonymous.pop("collection", None)
    path = tmp_path / "items.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [named, anonymous]}))
    day = date(2023, 6, 1)
    query = StacQuery(MOL, day, day, collections=("sentinel-2-l2a",))
    assert ids(search_items(query, catalog=str(path))) == ["anonymous"]


def test_end_day_counts_to_its_last_moment(data_dir, tmp_path):
    """A copy of a real openEO item re-dated to 23:59:59.5 on its day, and one given only a
    start/end range, in an ItemCollection next to the real chips."""
    source = data_dir / "s2_openeo_3dates_be" / "openEO_2023-06-01Z.tif.json"
    late, ranged = json.loads(source.read_text()), json.loads(source.read_text())
    late["id"], late["properties"]["datetime"] = "late", "2023-06-01T23:59:59.500Z"
    ranged["id"] = "ranged"
    ranged["properties"].update(
        datetime=None,
        start_datetime="2023-05-20T00:00:00Z",
        end_datetime="2023-06-02T12:00:00Z",
    )
    for item in (late, ranged):  # keep the assets pointing at the real chip
        for asset in item["assets"].values():
            asset["href"] = str(source.parent / asset["href"])
    path = tmp_path / "items.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [late, ranged]}))

    def found(start: date, end: date) -> list[str]:
        return ids(search_items(StacQuery(MOL, start, end), catalog=f"file://{path}"))

    assert found(date(2023, 6, 1), date(2023, 6, 1)) == ["ranged", "late"]
    assert found(date(2023, 6, 2), date(2023, 6, 30)) == ["ranged"]  # the range overlaps
    assert found(date(2023, 6, 3), date(2023, 6, 30)) == []
    assert found(date(2023, 5, 1), date(2023, 5, 19)) == []
    late_item = search_items(StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 1)), catalog=str(path))[
        1
    ]
    assert band_assets(late_item, ["B04"])["B04"] == (str(source.parent / OPENEO[0]), 1)


def test_static_catalog_over_http(stac_api):
    # The API's own catalog files, read as a static catalog (root → collections → items).
    found = search_items(
        StacQuery(WORLD, date(2020, 1, 1), date(2023, 12, 31)),
        catalog=f"{stac_api.url}/catalog.json",
    )
    assert ids(found) == [S2_29RKH, *OPENEO]
    assert band_assets(found[0], ["nir"])["nir"] == (
        f"{stac_api.url}/sentinel-2-l2a/assets/B08.tif",
        1,
    )


def test_static_catalog_on_s3(s3, data_dir):
    folder = data_dir / "s2_openeo_3dates_be"
    s3.create_bucket(Bucket="tf-stac")
    for path in folder.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "tf-stac", f"openeo/{path.relative_to(folder).as_posix()}")

    found = search_items(
        StacQuery(MOL, date(2023, 6, 4), date(2023, 6, 6)),
        catalog="s3://tf-stac/openeo/collection.json",
    )

    assert ids(found) == OPENEO[1:]
    href, band = band_assets(found[1], ["B02"])["B02"]
    assert (href, band) == (f"s3://tf-stac/openeo/sub-folder/{OPENEO[2]}", 3)
    assert open_store("s3://tf-stac").exists(f"openeo/sub-folder/{OPENEO[2]}")


def test_missing_catalog_fails_in_one_line(tmp_path):
    missing = tmp_path / "nowhere" / "catalog.json"
    with pytest.raises(StacSearchError) as failure:
        search_items(StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 1)), catalog=str(missing))
    assert str(failure.value) == f"STAC document {missing}: not found"


# --- bands ------------------------------------------------------------------------------


def read_item(path: Path) -> pystac.Item:
    (item,) = search_items(StacQuery(WORLD, date(2000, 1, 1), date(2030, 1, 1)), catalog=str(path))
    return item


def test_bands_of_earth_search_items(data_dir):
    old = read_item(data_dir / "stac_items" / "S2A_28QCH_20200714_0_L2A.json")  # keys B04…
    new = read_item(data_dir / "s2_l2a_29RKH_20200219" / "S2A_29RKH_20200219_0_L2A.json")  # red…

    for item in (old, new):
        bands = band_assets(item, ["red", "B04", "nir", "scl", "SCL"])
        assert bands["red"] == bands["B04"] and bands["red"][0].endswith("/B04.tif")
        assert bands["nir"][0].endswith("/B08.tif")
        assert bands["scl"] == bands["SCL"] and bands["scl"][0].endswith("/SCL.tif")
        assert {band for _href, band in bands.values()} == {1}
    # The true-colour image also lists `red`; the single-band data asset wins.
    assert band_assets(new, ["red"])["red"][0].endswith("/B04.tif")


def test_bands_of_planetary_computer_items(pc_items):
    item = search_items(StacQuery(T35MNM, date(2020, 6, 1), date(2020, 6, 1)), catalog=pc_items)[0]
    bands = band_assets(item, ["red", "B04", "nir08", "SCL", "scl"])
    assert bands["red"] == bands["B04"] and bands["red"][0].endswith("_B04_10m.tif")
    assert bands["nir08"][0].endswith("_B8A_20m.tif")
    assert bands["scl"] == bands["SCL"] and bands["SCL"][0].endswith("_SCL_20m.tif")


def test_bands_of_openeo_items_live_in_one_file(openeo_collection, data_dir):
    item = search_items(
        StacQuery(MOL, date(2023, 6, 6), date(2023, 6, 6)), catalog=openeo_collection
    )[0]
    chip = str((data_dir / "s2_openeo_3dates_be" / "sub-folder" / OPENEO[2]).resolve())
    assert band_assets(item, ["B04", "b03", "B02"]) == {
        "B04": (chip, 1),
        "b03": (chip, 2),
        "B02": (chip, 3),
    }


def test_missing_band_names_what_the_item_offers(openeo_collection):
    item = search_items(
        StacQuery(MOL, date(2023, 6, 1), date(2023, 6, 1)), catalog=openeo_collection
    )[0]
    with pytest.raises(MissingBandError) as failure:
        band_assets(item, ["B04", "B08"])
    assert str(failure.value) == (
        "item openEO_2023-06-01Z.tif has no band 'B08'; "
        "it offers: openEO_2023-06-01Z.tif (B04, B03, B02)"
    )
    assert isinstance(failure.value, KeyError)


# --- signing ----------------------------------------------------------------------------


def test_load_signer():
    assert load_signer(None) is None
    sign = load_signer("posixpath:basename")
    assert sign("https://host/a/b/B04.tif") == "B04.tif"
    with pytest.raises(SignerError, match="cannot import no_such_module_tf"):
        load_signer("no_such_module_tf:sign")
    with pytest.raises(SignerError, match="posixpath has no function sign_it"):
        load_signer("posixpath:sign_it")
    with pytest.raises(SignerError, match="package.module:function"):
        load_signer("posixpath.basename")
