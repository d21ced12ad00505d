from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from locus_core.models.model import LocusModel
from locus_core.training.checkpoint import (
    checkpoint_dir, latest_checkpoint, list_checkpoints, load_state, remove_stale, save_checkpoint,
)
from locus_core.training.config import TrainConfig
from locus_core.training.errors import TrainingError


def _save(config: TrainConfig, step: int, keep: int = 3) -> Path:
    return save_checkpoint(config.run_dir, step, LocusModel(config.model), {"skipped": 0}, config, keep=keep)


def test_files_and_folder_are_synced_before_the_rename_and_pruning_comes_last(
    tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(tiny_config, 1, keep=1)
    events: list[tuple[str, str]] = []

    def logged(kind: str, call: Callable[..., Any], what: Callable[..., str]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            events.append((kind, what(*args)))
            return call(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(os, "fsync", logged("fsync", os.fsync, lambda fd: os.readlink(f"/proc/self/fd/{fd}")))
    monkeypatch.setattr(os, "rename", logged("rename", os.rename, lambda _, dst: str(dst)))
    monkeypatch.setattr(shutil, "rmtree", logged("rmtree", shutil.rmtree, str))
    final = _save(tiny_config, 2, keep=1)
    renamed = events.index(("rename", str(final)))
    synced = {Path(p).name for kind, p in events[:renamed] if kind == "fsync"}
    assert {p.name for p in final.iterdir()} | {f".step-00000002.tmp-{os.getpid()}"} <= synced
    root = str(checkpoint_dir(tiny_config.run_dir))
    assert events.index(("fsync", root)) > renamed
    assert events.index(("rmtree", f"{root}/step-00000001")) > events.index(("fsync", root))
    assert [p.name for p in list_checkpoints(tiny_config.run_dir)] == ["step-00000002"]


@pytest.mark.parametrize(("damaged", "why"), [("state.pt", "unreadable training state"),
                                              ("model.pt", "unreadable model"),
                                              ("train_config.yaml", "train_config.yaml: empty file")])
def test_a_checkpoint_that_does_not_load_is_skipped_and_can_be_written_again(
    tiny_config: TrainConfig, caplog: pytest.LogCaptureFixture, damaged: str, why: str
) -> None:
    _save(tiny_config, 1)
    newest = _save(tiny_config, 2)
    (newest / damaged).write_bytes(b"")  # what an OS crash can leave of an unsynced file
    with caplog.at_level(logging.WARNING):
        assert latest_checkpoint(tiny_config.run_dir).name == "step-00000001"
    assert f"skipping checkpoint step-00000002: {newest / damaged}" in caplog.text and why in caplog.text
    assert _save(tiny_config, 2) == newest  # the same step again replaces the damaged one
    assert latest_checkpoint(tiny_config.run_dir) == newest and load_state(newest)["step"] == 2
    assert sorted(p.name for p in checkpoint_dir(tiny_config.run_dir).iterdir()) == [
        "step-00000001", "step-00000002"]


def test_temporary_folders_of_dead_processes_are_removed(tiny_config: TrainConfig) -> None:
    _save(tiny_config, 1)
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        root = checkpoint_dir(tiny_config.run_dir)
        stale = [root / f".step-00000002.tmp-{dead.pid}", root / f".step-00000001.old-{dead.pid}"]
        running = root / f".step-00000003.tmp-{alive.pid}"
        for folder in [*stale, running]:
            folder.mkdir()
        remove_stale(tiny_config.run_dir)
        assert not any(p.exists() for p in stale) and running.is_dir()
        assert (root / "step-00000001").is_dir()
    finally:
        alive.kill()
        alive.wait()


def test_a_checkpoint_written_after_a_skipped_newer_one_is_kept(tiny_config: TrainConfig) -> None:
    damaged = _save(tiny_config, 200)
    (damaged / "state.pt").write_bytes(b"")
    with pytest.raises(TrainingError, match=r"no checkpoint in .* loads \(.*step-00000200/state\.pt"):
        latest_checkpoint(tiny_config.run_dir)  # resuming refuses: nothing saved is thrown away
    written = _save(tiny_config, 100, keep=1)  # pruning by name alone deleted it at once
    assert latest_checkpoint(tiny_config.run_dir) == written
    assert [p.name for p in list_checkpoints(tiny_config.run_dir)] == ["step-00000100", "step-00000200"]
