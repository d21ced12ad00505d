from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from locus_core import durable
from locus_core.durable import atomic_write, atomic_write_text, fsync_path, process_alive, replace_folder, written_last


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


def test_an_atomic_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "cache.npy"
    target.write_text("old")
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_text("new")
        assert target.read_text() == "old"  # readers see the previous file until the rename

    assert atomic_write(target, write) == target
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["cache.npy"]
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".")  # beside it (one file system), hidden
    assert atomic_write_text(tmp_path / "new.txt", "text").read_text() == "text"


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()], ids=repr)
def test_a_failed_atomic_write_keeps_the_previous_file_and_removes_its_temporary(
    tmp_path: Path, error: BaseException
) -> None:
    target = tmp_path / "model.pt"
    target.write_text("previous")

    def write(tmp: Path) -> None:
        tmp.write_text("half")  # cut short by a full disk, or Ctrl-C
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, write)
    assert target.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_rename_that_fails_removes_the_temporary(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()  # os.replace cannot put a file over a folder
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "out", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("durable_", [False, True], ids=["plain", "durable"])
def test_only_a_durable_write_syncs_the_file_then_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable_: bool
) -> None:
    target = tmp_path / "model.pt"
    target.write_text("old")
    synced: list[tuple[str, str]] = []

    def fsync(fd: int) -> None:  # which file, and what the target held then
        synced.append((Path(os.readlink(f"/proc/self/fd/{fd}")).name, target.read_text()))

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_text(target, "new", durable=durable_)
    if not durable_:
        assert synced == []
    else:  # the new file before the rename, the folder after it
        assert len(synced) == 2 and synced[0][0].startswith(".model.pt.") and synced[0][1] == "old"
        assert synced[1] == (tmp_path.name, "new")


def test_threads_writing_the_same_file_use_their_own_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "engine"
    both_writing = threading.Barrier(2)
    temporaries: list[Path] = []

    def write(tmp: Path) -> None:
        temporaries.append(tmp)
        tmp.write_text("engine")
        both_writing.wait(timeout=10)  # neither renames before the other has written its temporary

    threads = [threading.Thread(target=atomic_write, args=(target, write)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(temporaries)) == 2 and [p.name for p in tmp_path.iterdir()] == ["engine"]
