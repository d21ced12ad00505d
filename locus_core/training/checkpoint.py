"""Checkpoints of a training run: written atomically and durably, found again by ``--resume``.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN/`` holding ``model.pt`` (``LocusModel.save``),
``state.pt`` (step, optimiser state, torch RNG state, counters: plain tensors and containers, so
``torch.load(weights_only=True)`` reads it) and ``train_config.yaml`` (the resolved config). It is
assembled in a hidden temporary folder ``.step-NNNNNNNN.tmp-<pid>``, its files and the folder are
synced to disk, and only then is it renamed into place and are older checkpoints pruned: a run
killed at any moment, or an OS crash, leaves the complete checkpoint or none, and never only a
damaged one. :func:`latest_checkpoint` still skips one that does not load (damaged some other way),
and :func:`remove_stale` deletes the temporary folders of killed runs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from locus_core.config import read_yaml, save_config
from locus_core.durable import fsync_path, process_alive, replace_folder
from locus_core.errors import ConfigError, torch_load_failure
from locus_core.training.errors import TrainingError

log = logging.getLogger(__name__)

STATE_FORMAT = 1
_NAME = re.compile(r"^step-(\d{8})$")
_TEMPORARY = re.compile(r"^\.step-\d{8}\.(tmp|old)-(\d+)$")


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: Path, step: int, model: Any, state: dict[str, Any], config: Any, *, keep: int
) -> Path:
    """Write checkpoint ``step`` and prune all but the newest ``keep``; returns its folder."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(tmp / "model.pt")
    torch.save({"format": STATE_FORMAT, "step": step, **state}, tmp / "state.pt")
    save_config(config, tmp / "train_config.yaml")
    # Without the syncs an OS crash can persist the rename (and the pruning) before the data.
    for path in tmp.iterdir():
        fsync_path(path)
    fsync_path(tmp)
    # Replacing an existing one happens only after resuming from an older checkpoint because this
    # one was incomplete or did not load.
    replace_folder(tmp, final, final.with_name(f".{final.name}.old-{os.getpid()}"))
    # The newest `keep` up to this one: a newer folder is a damaged checkpoint that resuming skipped
    # (replaced when the run reaches its step), never a reason to delete the one just written.
    for old in [c for c in list_checkpoints(run_dir) if c.name <= final.name][:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_stale(run_dir: Path) -> None:
    """Delete the temporary folders that saves of dead processes (killed runs) left behind."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return
    for path in root.iterdir():
        match = _TEMPORARY.match(path.name)
        if match and not process_alive(int(match.group(2))):
            log.info("removing %s, left by a killed run", path)
            shutil.rmtree(path, ignore_errors=True)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of killed writes are ignored)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / "state.pt").exists()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint that loads (None: there is none); newer ones that do not are skipped
    with a warning.

    Raises:
        TrainingError: there are checkpoints but none loads, naming the newest one's fault.
            Starting over instead would delete the run's logs and then replace its checkpoints,
            which a file restored from a backup could still have saved.
    """
    newest_fault = None
    for folder in reversed(list_checkpoints(run_dir)):
        try:
            _check_loads(folder)
        except TrainingError as exc:
            log.warning("skipping checkpoint %s: %s; trying the one before", folder.name, exc)
            newest_fault = newest_fault or exc
            continue
        return folder
    if newest_fault is not None:
        raise TrainingError(
            f"no checkpoint in {checkpoint_dir(run_dir)} loads ({newest_fault}): repair or remove "
            "them, or set run_dir to a new folder to start over"
        )
    return None


def _check_loads(folder: Path) -> None:
    """Read every file of checkpoint ``folder`` (what resuming reads).

    Raises:
        TrainingError: naming the file that does not load.
    """
    load_state(folder)
    model = Path(folder) / "model.pt"
    try:
        torch.load(model, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, missing file, ...: all mean "cannot resume from it"
        raise TrainingError(f"{model}: unreadable model ({type(exc).__name__}: {torch_load_failure(exc)})") from None
    config = Path(folder) / "train_config.yaml"
    try:
        if not read_yaml(config):
            raise TrainingError(f"{config}: empty file")
    except ConfigError as exc:
        raise TrainingError(str(exc)) from None


def load_state(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "state.pt"
    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:
        raise TrainingError(f"{path}: unreadable training state ({type(exc).__name__}: {torch_load_failure(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainingError(f"{path}: not a training state of format {STATE_FORMAT}")
    return state
