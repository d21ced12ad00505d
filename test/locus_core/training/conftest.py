"""A tiny synthetic scene and a test-backbone training config shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from locus_core.config import load_config
from locus_core.training.config import TrainConfig


@pytest.fixture(scope="session")
def synthetic_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from locus_core.data.synthetic import generate_scene

    return generate_scene(tmp_path_factory.mktemp("scene") / "s0", seed=3, rooms=1, frames=16, size=(48, 64))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # One cache per session: features of the tiny scene are computed once, never in ~/.cache.
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path_factory.getbasetemp() / "locus-cache"))


def tiny_overrides(scene: Path, run_dir: Path) -> dict:
    return {
        "model": {"backbone": "test", "radii": [0.2, 0.6], "input_size": [48, 64], "dim": 8,
                  "hidden": 16, "layers": 1, "heads": 2},
        "data": {"train": [{"path": str(scene), "frames": "0:12"}], "val": {"path": str(scene), "frames": "12:16"},
                 "batch_frames": 4, "min_overlap": 0.05},
        "landmarks": {"landmarks": 8, "min_separation": 0.1, "patch_keep": 0.5},
        "optim": {"lr": 0.005, "warmup_steps": 2},
        "validation": {"queries": 40},
        "run_dir": str(run_dir), "steps": 3, "steps_per_epoch": 2, "threads": 1,
    }


@pytest.fixture
def make_config(synthetic_scene: Path) -> Callable[[Path], TrainConfig]:
    """A tiny test-backbone config training on the synthetic scene, writing to the given run dir."""
    return lambda run_dir: load_config(TrainConfig, None, tiny_overrides(synthetic_scene, run_dir))


@pytest.fixture
def tiny_config(make_config: Callable[[Path], TrainConfig], tmp_path: Path) -> TrainConfig:
    return make_config(tmp_path / "run")
