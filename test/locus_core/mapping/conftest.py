"""A small synthetic scene and the map the test backbone builds of it (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from locus_core.data.synthetic import generate_scene

    return generate_scene(tmp_path_factory.mktemp("scene"), seed=3, rooms=2, frames=48, size=(120, 160))


@pytest.fixture(scope="session")
def model():
    from locus_core.models.model import load_model

    torch.set_num_threads(2)
    return load_model("backbone:test")


@pytest.fixture(scope="session")
def built_map(scene: Path, model):
    from locus_core.data import open_dataset
    from locus_core.mapping import MapConfig, build_map

    return build_map(model, open_dataset(scene, frames="0:48:2"), MapConfig(landmarks_per_keyframe=150))
