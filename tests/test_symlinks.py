"""Symbolic links never lead a run outside its roots: a manifest row that is a link to a file
outside the input root, or lies in a linked folder that points outside, fails with the
reason; a linked folder in a local destination that points outside is refused. Links that
stay inside a root work as before."""

from __future__ import annotations

import shutil

from conftest import RASTERS
from helpers import read_csv, run_cogify


def reasons(run_dir) -> dict[str, str]:
    return {row["path"]: row["reason"] for row in read_csv(run_dir / "failed.csv")}


def test_inputs_linked_from_outside_the_root_fail_alone(inputs, data_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(data_dir / RASTERS["dem/glo90_polar.tif"], outside / "polar.tif")
    (inputs / "escape.tif").symlink_to(outside / "polar.tif")
    (inputs / "linked").symlink_to(outside, target_is_directory=True)
    (inputs / "inside.tif").symlink_to(inputs / "landsat/RGB.byte.tif")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\nescape.tif\nlinked/polar.tif\ninside.tif\ndem/glo90_polar.tif\n")
    result = run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run")

    assert result.exit_code == 1
    assert (result.report["succeeded"], result.report["failed"]) == (2, 2)
    why = reasons(tmp_path / "run")
    assert set(why) == {"escape.tif", "linked/polar.tif"}
    for path, reason in why.items():
        assert f"{path} leads outside {inputs}" in reason
        assert str(outside / "polar.tif") in reason
    tasks = {row["id"]: row for row in read_csv(tmp_path / "run/tasks.csv")}
    assert tasks["escape.tif"]["attempts"] == "1"  # permanent: not retried
    assert (tmp_path / "out/inside.json").is_file()  # a link inside the root is followed
    assert not (tmp_path / "out/escape.json").exists()


def test_a_linked_folder_in_the_destination_that_points_outside_is_refused(inputs, tmp_path):
    elsewhere, dest = tmp_path / "elsewhere", tmp_path / "out"
    elsewhere.mkdir()
    dest.mkdir()
    (dest / "landsat").symlink_to(elsewhere, target_is_directory=True)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\nlandsat/RGB.byte.tif\ndem/glo90_polar.tif\n")
    result = run_cogify(manifest, inputs, dest, tmp_path / "run")

    assert (result.report["succeeded"], result.report["failed"]) == (1, 1)
    assert "landsat/RGB.byte.tif leads outside" in reasons(tmp_path / "run")["landsat/RGB.byte.tif"]
    assert list(elsewhere.iterdir()) == []  # nothing written through the link
    assert (dest / "dem/glo90_polar.json").is_file()
