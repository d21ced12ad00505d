from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from locus_core import durable
from locus_core.durable import fsync_path, process_alive, replace_folder, written_last


def test_a_process_is_alive_until_it_exits_and_this_one_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_alive(child.pid) and process_alive(os.getppid())
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid)
    assert not process_alive(os.getpid())  # a temporary of its own is from an earlier, failed save


def test_files_and_folders_can_be_synced(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    fsync_path(tmp_path / "f")
    fsync_path(tmp_path)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename aside"])
def test_a_folder_replaces_another_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    if not exchange:  # a file system without RENAME_EXCHANGE
        monkeypatch.setattr(durable, "_exchange", lambda a, b: False)
    final, aside = tmp_path / "map", tmp_path / "map.old-1"
    for version in ("first", "second"):
        tmp = tmp_path / f"map.tmp-{version}"
        tmp.mkdir()
        (tmp / "data").write_text(version)
        replace_folder(tmp, final, aside)
        assert (final / "data").read_text() == version and sorted(p.name for p in tmp_path.iterdir()) == ["map"]


def test_written_last_removes_the_marker_first_and_writes_it_only_after_a_clean_block(tmp_path: Path) -> None:
    marker = tmp_path / "metrics.json"
    marker.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with written_last(marker, "new"):
            assert not marker.exists()  # gone while the other files are written
            raise KeyboardInterrupt
    assert not marker.exists()
    with written_last(marker, "new"):
        pass
    assert marker.read_text() == "new"


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename aside"])
def test_a_previous_folder_that_cannot_be_deleted_does_not_fail_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(durable, "_exchange", lambda a, b: False)
    final, aside = tmp_path / "map", tmp_path / "map.old-1"
    final.mkdir()
    (final / "data").write_text("first")
    tmp = tmp_path / "map.tmp-second"
    tmp.mkdir()
    (tmp / "data").write_text("second")
    real_rmtree = durable.shutil.rmtree

    def refuse(path, ignore_errors=False, **kw):  # a file of the old map held open on a network share
        if not ignore_errors:
            raise PermissionError(13, "Permission denied", str(path))
        real_rmtree(path, ignore_errors=True, **kw)

    monkeypatch.setattr(durable.shutil, "rmtree", refuse)
    replace_folder(tmp, final, aside)  # the new folder is in place: the save succeeded
    assert (final / "data").read_text() == "second"


def test_written_last_leaves_no_marker_when_writing_it_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a full disk: the marker of a finished run was left truncated (empty) beside the run's files
    marker = tmp_path / "metrics.json"

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(durable.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        with written_last(marker, '{"ap": 0.5}'):
            (tmp_path / "report.md").write_text("r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
