"""Reading pretrained weight files safely (no pickled code) and finding them on disk (no downloads)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from locus_core.errors import torch_load_failure
from locus_core.models.errors import ModelError

RANDOM = "random"
"""``weights=RANDOM`` builds a backbone with random weights: for tests and benchmarks only."""

WEIGHTS_DIR_ENV = "LOCUS_WEIGHTS_DIR"


def read_state_dict(path: Path, *, backbone: str) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or torch (``.pt/.pth/.bin``) file, read without unpickling code.

    Checkpoints that wrap the weights (``{"model": ...}``, ``{"state_dict": ...}``, DINO's
    ``{"teacher": {"backbone.*": ..., "head.*": ...}, "args": Namespace}``, keys under ``module.``) are unwrapped:
    when any key is under ``backbone.``, only those are kept, without the prefix.

    Raises:
        ModelError: naming ``path`` when it is missing or not a weights file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weights file for backbone {backbone} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            # DINO's training checkpoints hold the script's arguments: a Namespace is plain data
            with torch.serialization.safe_globals([argparse.Namespace]):
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for corrupt files
        raise ModelError(
            f"{path}: not a readable weights file for backbone {backbone} ({type(exc).__name__}: {torch_load_failure(exc)})"
        ) from None
    for key in ("teacher", "model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: holds no state dict of tensors for backbone {backbone}")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    # DINO checkpoints hold the projection head beside the backbone (head.*): only the backbone's
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return state


def weights_dir() -> Path | None:
    """``$LOCUS_WEIGHTS_DIR`` when set."""
    value = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(value).expanduser() if value else None


def huggingface_hub_dirs() -> list[Path]:
    """Where huggingface_hub keeps its cache, in the order it looks (env vars, then the default)."""
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]).expanduser())
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]).expanduser() / "hub")
    dirs.append(Path("~/.cache/huggingface/hub").expanduser())
    return dirs
