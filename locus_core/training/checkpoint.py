"""Checkpoints of a training run: written atomically, found again by ``--resume``.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN/`` holding ``model.pt`` (``LocusModel.save``),
``state.pt`` (step, optimiser state, torch RNG state, counters: plain tensors and containers, so
``torch.load(weights_only=True)`` reads it) and ``train_config.yaml`` (the resolved config). It is
assembled in a hidden temporary folder and renamed into place, so a run killed at any moment
leaves either the complete checkpoint or none.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from locus_core.config import save_config
from locus_core.training.errors import TrainingError

STATE_FORMAT = 1
_NAME = re.compile(r"^step-(\d{8})$")


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
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of killed writes are ignored)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / "state.pt").exists()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_state(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "state.pt"
    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:
        raise TrainingError(f"{path}: unreadable training state ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainingError(f"{path}: not a training state of format {STATE_FORMAT}")
    return state
