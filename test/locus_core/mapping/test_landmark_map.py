from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

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


def _camera(x: float, yaw_deg: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    T[0, 3] = x
    return T


def test_landmarks_near_a_pose_are_those_of_nearby_keyframes_looking_its_way() -> None:
    landmark_map = LandmarkMap(model_hash="h", dim=4)
    rng = np.random.default_rng(0)
    # keyframes: 0 at the query, 1 one metre away, 2 far away, 3 at the query looking backwards
    for kf, (x, yaw) in enumerate([(0.0, 0.0), (1.0, 30.0), (10.0, 0.0), (0.0, 180.0)]):
        landmark_map.keyframes.append(_camera(x, yaw), np.eye(3), f"f{kf}", kf, float(kf))
        landmark_map.add_landmarks(rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 3)), kf, np.zeros((3, 2)))
    query = _camera(0.0, 0.0)
    np.testing.assert_array_equal(landmark_map.landmarks_near(query, 2.0, 60.0), [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(landmark_map.landmarks_near(query, 2.0, 20.0), [0, 1, 2])
    np.testing.assert_array_equal(np.sort(landmark_map.landmarks_near(query, 20.0, 180.0)), np.arange(12))
    landmark_map.remove_landmarks(np.array([1]))
    np.testing.assert_array_equal(landmark_map.landmarks_near(query, 2.0, 20.0), [0, 2])
    landmark_map.add_landmarks(rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(2, 3)), 0, np.zeros((2, 2)))
    np.testing.assert_array_equal(landmark_map.landmarks_near(query, 2.0, 20.0), [0, 2, 12, 13])


def test_the_anchor_index_is_counted_in_the_table_bytes() -> None:
    landmark_map = LandmarkMap(model_hash="h", dim=4)
    landmark_map.keyframes.append(np.eye(4), np.eye(3), "f0", 0, 0.0)
    landmark_map.add_landmarks(np.ones((5, 4), np.float32), np.zeros((5, 3)), 0, np.zeros((5, 2)))
    table = landmark_map.landmarks
    before = table.nbytes()
    np.testing.assert_array_equal(table.anchored_at(np.array([0, 7])), np.arange(5))  # 7: no such keyframe
    assert table.nbytes() == before + 5 * 4 + 2 * 8  # uint32 per landmark, int64 run starts per keyframe + 1


def test_a_map_under_another_config_searches_its_own_index(built_map: LandmarkMap) -> None:
    ivf = built_map.with_config(dataclasses.replace(built_map.config, index_nprobe=4))
    ivf.reindex(kind="ivf_pq")
    fewer = ivf.with_config(dataclasses.replace(ivf.config, index_nprobe=1))
    assert ivf.index._index.nprobe == 4 and fewer.index._index.nprobe == 1
    assert built_map.index.kind == "flat" and fewer.index.ntotal == ivf.index.ntotal == built_map.num_landmarks
