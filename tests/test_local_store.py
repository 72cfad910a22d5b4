"""Local folders: atomic writes and the sweeping of what killed writers left behind."""

from __future__ import annotations

import os
import subprocess
import sys

from tilefleet.store.objects import PARTIAL_MARK, open_store


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_partials_of_gone_writers_are_swept(tmp_path):
    store = open_store(str(tmp_path))
    store.put_bytes(b"whole", "a/b/tile.tif")
    live = f"a/b/tile.tif{PARTIAL_MARK}{os.getpid()}-00000001"
    dead = f"a/b/tile.tif{PARTIAL_MARK}{_dead_pid()}-00000002"
    unnamed = f"a/other.tif{PARTIAL_MARK}0123456789ab"  # no pid in the name: stale
    for key in (live, dead, unnamed):
        (tmp_path / key).write_bytes(b"half")

    assert store.remove_partials_below() == 2
    left = sorted(info.key for info in store.list())
    assert left == sorted(["a/b/tile.tif", live])


def test_listing_sweep_keeps_a_live_writers_partial(tmp_path):
    store = open_store(str(tmp_path))
    live = f"t.tif{PARTIAL_MARK}{os.getpid()}-00000003"
    dead = f"t.tif{PARTIAL_MARK}{_dead_pid()}-00000004"
    for key in (live, dead):
        (tmp_path / key).write_bytes(b"half")
    assert store.remove_partials(store.list_dir("")) == 1
    assert [info.key for info in store.list_dir("")] == [live]


def test_a_write_leaves_no_partial(tmp_path):
    store = open_store(str(tmp_path))
    source = tmp_path / "src.bin"
    source.write_bytes(b"x" * 1000)
    store.put_file(source, "out/x.bin")
    store.put_bytes(b"y", "out/y.bin")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.bin", "y.bin"]
