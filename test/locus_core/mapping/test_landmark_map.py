from __future__ import annotations

import pytest

from locus_core.mapping import LandmarkMap, MapConfig
from locus_core.mapping.errors import MapError
from locus_core.models.model import LocusModel, ModelConfig


@pytest.fixture(scope="module")
def two_scale_model() -> LocusModel:
    config = ModelConfig(backbone="test", radii=(0.2, 0.05), input_size=(64, 80), dim=8, hidden=32)
    return LocusModel(config).eval()


def test_default_scale_is_the_finest_radius(two_scale_model: LocusModel) -> None:
    empty = LandmarkMap.for_model(two_scale_model)
    assert empty.config.scale == 1  # radius 0.05 m
    assert empty.model_hash == two_scale_model.hash and empty.dim == 8
    assert empty.model_info["config"]["radii"] == [0.2, 0.05]


def test_explicit_scale_is_kept_and_checked(two_scale_model: LocusModel) -> None:
    assert LandmarkMap.for_model(two_scale_model, MapConfig(scale=0)).config.scale == 0
    with pytest.raises(MapError, match=r"map scale 2 out of range: model .* has 2 scale\(s\)"):
        LandmarkMap.for_model(two_scale_model, MapConfig(scale=2))
