"""Skip-existing on an object store: the folders of one parent (a TTC ``{year}/{X}/``
column of tile folders) are found by one recursive listing of the parent, not one LIST
per folder; a parent holding more than that would save is listed folder by folder again.
Checked against a real S3 API on loopback; a local destination lists each folder."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tilefleet.engine import skip
from tilefleet.engine.skip import find_done_markers
from tilefleet.store import objects


def counted_listings(monkeypatch):
    """Every ``list_dir`` and recursive ``list`` the stores make, as ``(kind, prefix)``."""
    calls = []
    for cls in (objects.ObjectStore, objects.LocalStore):
        for name in ("list_dir", "list"):
            original = getattr(cls, name)

            def counted(self, prefix="", _original=original, _name=name):
                calls.append((_name, prefix))
                return _original(self, prefix)

            monkeypatch.setattr(cls, name, counted)
    return calls


def ttc_layout(columns=3, rows=6):
    """Keys of TTC-like tile folders: data files, a Zarr store and the done marker."""
    keys, markers = [], []
    for x in range(columns):
        for y in range(rows):
            folder = f"2023/{1000 + x}/{500 + y}"
            marker = f"{folder}/dem.json"
            markers.append(marker)
            keys += [f"{folder}/dem.tif", f"{folder}/s2.zarr/zarr.json", f"{folder}/s2.zarr/c/0"]
            if y % 3 != 2:  # a third of the tiles are not done yet
                keys.append(marker)
    return keys, markers


def put_all(client, bucket, keys, body=b"{}"):
    client.create_bucket(Bucket=bucket)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=body), keys))


def test_tile_folders_of_one_column_are_found_in_one_listing(s3, monkeypatch):
    keys, markers = ttc_layout()
    put_all(s3, "ttc", keys)
    s3.put_object(Bucket="ttc", Key="2023/1000/500/dem.json", Body=b"")  # empty: not done
    calls = counted_listings(monkeypatch)
    found = find_done_markers((f"id:{m}", "s3://ttc", m) for m in markers)
    done = {f"id:{m}" for m in markers if m in keys} - {"id:2023/1000/500/dem.json"}
    assert found == done and len(done) == 11
    assert sorted(calls) == [("list", f"2023/{1000 + x}") for x in range(3)]


def test_a_parent_holding_much_else_is_listed_folder_by_folder(s3, monkeypatch):
    keys, markers = ttc_layout(columns=1, rows=5)
    keys += [f"2023/1000/other/{i}.tif" for i in range(40)]  # not this run's tiles
    put_all(s3, "busy", keys)
    monkeypatch.setattr(objects, "LIST_PAGE_KEYS", 4)  # 5 folders: at most 20 keys together
    calls = counted_listings(monkeypatch)
    found = find_done_markers((f"id:{m}", "s3://busy", m) for m in markers)
    assert found == {f"id:{m}" for m in markers if m in keys}
    folders = sorted({m.rsplit("/", 1)[0] for m in markers})
    assert sorted(calls) == [("list", "2023/1000")] + [("list_dir", f) for f in folders]


def test_a_few_folders_and_local_folders_are_listed_alone(s3, tmp_path, monkeypatch):
    keys, markers = ttc_layout(columns=2, rows=skip.LISTED_TOGETHER_FROM - 1)
    put_all(s3, "few", keys)
    for key in keys:
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{}")
    many_keys, many_markers = ttc_layout(columns=1, rows=8)
    for key in many_keys:
        path = tmp_path / "many" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{}")
    calls = counted_listings(monkeypatch)
    on_s3 = find_done_markers((f"id:{m}", "s3://few", m) for m in markers)
    assert on_s3 == {f"id:{m}" for m in markers if m in keys}
    assert {kind for kind, _ in calls} == {"list_dir"} and len(calls) == len(markers)
    calls.clear()
    local = find_done_markers((m, str(tmp_path / "many"), m) for m in many_markers)
    assert local == {m for m in many_markers if m in many_keys}
    assert {kind for kind, _ in calls} == {"list_dir"} and len(calls) == len(many_markers)


def test_listings_in_flight_stay_few_and_local_folders_take_few_threads(tmp_path, monkeypatch):
    """Thousands of folders: every done marker is found, while at most two listings per
    thread wait at once (a wait looks at each pending listing: all of them pending would
    cost their square), on the few threads of a local destination."""
    folders = 2000
    for i in range(folders):
        (tmp_path / f"{i:04d}").mkdir()
        if i % 3:
            (tmp_path / f"{i:04d}" / "done.json").write_bytes(b"{}")
    waited, threads = [], set()
    original_wait, original_list_dir = skip.wait, objects.LocalStore.list_dir

    def counted_wait(pending, **kwargs):
        waited.append(len(pending))
        return original_wait(pending, **kwargs)

    def list_dir(self, prefix):
        threads.add(threading.current_thread().name)
        return original_list_dir(self, prefix)

    monkeypatch.setattr(skip, "wait", counted_wait)
    monkeypatch.setattr(objects.LocalStore, "list_dir", list_dir)
    markers = [(f"t{i}", str(tmp_path), f"{i:04d}/done.json") for i in range(folders)]
    assert find_done_markers(markers) == {f"t{i}" for i in range(folders) if i % 3}
    assert max(waited) <= 2 * skip.LOCAL_PARALLEL_LISTINGS
    assert 1 <= len(threads) <= skip.LOCAL_PARALLEL_LISTINGS
