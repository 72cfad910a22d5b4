"""A local destination on a small file system that fills up while the run goes (another
writer takes all but a few pages once the first row is done).

The rows that can no longer be written (each COG copy fails part of the way) fail at once
with one line saying the destination is full; nothing half-written stays there (no partial
file, no output of a row not done); the row done before stays done; the ledger and reports
(in a run dir elsewhere) are whole and hold no credential; the exit status says some rows
failed. Once space is freed, the same command finishes exactly the rows that were missing.

A small file system is a tmpfs mounted here, which needs root (as CI runs); elsewhere the
test is skipped with the reason."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from rio_cogeo.cogeo import cog_validate

from chaos.conftest import attempts
from conftest import no_partials
from helpers import read_csv
from tilefleet.engine.callbacks import RunCallback
from tilefleet.errors import ExitCode
from tilefleet.task import SUCCEEDED

#: The first row's outputs are small; each later row's COG is larger than the room left.
ROWS = ["s2/SCL.tif", "landsat/RGB.byte.tif", "landsat/L7_ETMs.tif", "dem/glo90_polar.tif"]
#: What the other writer leaves free: each later COG fails part of the way through its copy.
LEFT_FREE = 64 * 1024
FAKE_SECRET = "fake-secret-value-0d9c8b7a6f5e"


@pytest.fixture
def small_fs(tmp_path):
    """A 16 MB tmpfs mounted on a temporary folder, unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system (tmpfs) needs root")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path, left_free: int) -> Path:
    """Take all but ``left_free`` bytes of the file system of ``folder`` with one file."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 12):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    os.truncate(filler, filler.stat().st_size - left_free)
    assert left_free <= shutil.disk_usage(folder).free < 2 * left_free
    return filler


class FillOnFirstSuccess(RunCallback):
    """Another writer on the destination's file system: fills it (all but a few pages)
    once a row is done."""

    def __init__(self, folder: Path):
        self.folder, self.filler = folder, None

    def on_attempt_end(self, attempt) -> None:
        if attempt.status == SUCCEEDED and self.filler is None:
            self.filler = fill(self.folder, LEFT_FREE)


def outputs(dest: Path, row: str) -> list[Path]:
    stem = row.removesuffix(".tif")
    return [dest / f"{stem}{suffix}" for suffix in (".tif", ".jpg", ".json")]


@pytest.mark.slow
def test_a_destination_that_fills_up_fails_the_rows_left_and_a_rerun_finishes_them(
    inputs, small_fs, tmp_path, monkeypatch
):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path\n" + "\n".join(ROWS) + "\n")
    dest, run_dir = small_fs / "out", tmp_path / "run"
    filling = FillOnFirstSuccess(small_fs)
    # One attempt at a time, so that the row done before the file system fills is known.
    result = run_job_with(manifest, inputs, dest, run_dir, callbacks=[filling])

    assert result.exit_code == ExitCode.PARTIAL
    assert (result.report["succeeded"], result.report["failed"]) == (1, 3)
    first = ROWS[0]
    failed = read_csv(run_dir / "failed.csv")
    assert sorted(row["path"] for row in failed) == sorted(ROWS[1:])
    for row in failed:
        reason = row["reason"]
        assert "destination is full" in reason and "No space left on device" in reason, reason
        assert "\n" not in reason and "Traceback" not in reason
        assert row["path"] in reason  # which output could not be written
    assert attempts(run_dir) == {first: [1], **{row: [0] for row in ROWS[1:]}}  # not retried
    # Nothing half-written: no partial file, no output of a row not done.
    assert no_partials(small_fs) == []
    for row in ROWS[1:]:
        assert not any(path.exists() for path in outputs(dest, row))
    cog, preview, item = outputs(dest, first)
    assert cog_validate(str(cog))[0] and preview.is_file() and json.loads(item.read_text())
    # The run dir is whole: its reports parse and name every row; no credential in it.
    report = json.loads((run_dir / "report.json").read_text())
    assert (report["succeeded"], report["failed"]) == (1, 3)
    assert len(read_csv(run_dir / "tasks.csv")) == len(ROWS)
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert FAKE_SECRET.encode() not in path.read_bytes(), path

    filling.filler.unlink()  # space freed: the same command finishes what is missing
    before = cog.stat().st_mtime_ns
    rerun = run_job_with(manifest, inputs, dest, run_dir)

    assert rerun.exit_code == ExitCode.OK
    assert attempts(run_dir) == {first: [1], **{row: [0, 1] for row in ROWS[1:]}}
    assert cog.stat().st_mtime_ns == before  # the row done before was not redone
    for row in ROWS:
        cog_path, preview_path, item_path = outputs(dest, row)
        assert cog_validate(str(cog_path))[0] and preview_path.is_file() and item_path.is_file()
    assert no_partials(small_fs) == []
    assert shutil.disk_usage(small_fs).free > 0


def run_job_with(manifest, inputs, dest, run_dir, callbacks=()):
    from tilefleet.engine.run import run_job
    from tilefleet.jobs import build_job

    values = {
        "recipe": "cogify",
        "manifest": str(manifest),
        "input_root": str(inputs),
        "dest": str(dest),
        "run_dir": str(run_dir),
        "workers": 1,
        "max_in_flight": 1,
        "backoff_s": 0.05,
    }
    return run_job(build_job(values), callbacks=callbacks)
