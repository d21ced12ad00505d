from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.data.frame import PosedFrame
from locus_core.mapping import MapConfig
from locus_core.mapping.build import depth_patch_geometry, patch_geometry


def step_frame(noise: float = 0.0) -> PosedFrame:
    """A 32x32 frame of a wall at 2 m with a box at 1 m in front of its left half, the box's edge
    at column 12 (inside the second column of 8-pixel patches)."""
    depth = np.full((32, 32), 2.0, np.float32)
    depth[:, :12] = 1.0
    depth += noise * np.random.default_rng(0).standard_normal(depth.shape).astype(np.float32)
    depth[0, 0] = np.nan  # a hole does not make a patch an edge
    K = np.array([[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]])
    return PosedFrame(np.zeros((32, 32, 3), np.uint8), depth, K, np.eye(4), "step")


def test_patches_straddling_a_depth_edge_have_no_point() -> None:
    frame = step_frame(noise=0.005)
    valid = patch_geometry(frame, 8, MapConfig(max_depth_spread=0.05)).valid.reshape(4, 4)
    assert not valid[:, 1].any()  # the box's edge
    assert valid[:, [0, 2, 3]].all()  # box, wall: sensor noise (0.5 %) is not an edge
    assert patch_geometry(frame, 8).valid.all()  # off by default in the function


def test_edge_patch_depth_is_a_measured_one_when_allowed() -> None:
    z = patch_geometry(step_frame(), 8).points_cam[:, 2].reshape(4, 4)
    np.testing.assert_allclose(z[:, 0], 1.0)
    np.testing.assert_allclose(z[:, 1], 1.0)  # half box, half wall: never a blend such as 1.5
    np.testing.assert_allclose(z[:, 3], 2.0)


def float64_patch_geometry(depth: np.ndarray, K: np.ndarray, T: np.ndarray | None, stride: int, config: MapConfig) -> tuple[np.ndarray, np.ndarray]:
    """Camera and map points of ``depth_patch_geometry`` as it first computed them: everything lifted
    in float64 by ``lift_patches`` (the reference its faster path must equal bit for bit)."""
    from locus_core.geometry import depth_edge_patches, lift_patches, transform_points

    d = torch.from_numpy(np.array(depth, np.float64))[None]
    cam = lift_patches(d, torch.from_numpy(K)[None], torch.eye(4, dtype=torch.float64)[None], stride)[0]
    z = cam[:, 2]
    keep = (z >= config.min_depth_m) & (z <= config.max_depth_m)
    if np.isfinite(config.max_depth_spread):
        keep &= ~depth_edge_patches(d, z[None], stride, config.max_depth_spread)[0]
    cam[~keep] = float("nan")
    world = torch.full_like(cam, float("nan")) if T is None else transform_points(torch.from_numpy(T)[None], cam[None])[0]
    return cam.numpy(), world.numpy()


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from([np.float32, np.float64, np.float16]),
    spread=st.sampled_from([0.05, 0.2, float("inf")]),
    posed=st.booleans(),
    readonly=st.booleans(),
)
def test_depth_patch_geometry_equals_lifting_in_float64(seed: int, dtype: type, spread: float, posed: bool, readonly: bool) -> None:
    # depth as sensors give it: quantised (ties), holes, zeros, inf, edges; odd sizes leave pixels over
    rng = np.random.default_rng(seed)
    depth = np.round(rng.uniform(0.2, 6.0, (44, 61)), 3)
    depth[:, 30:] *= 1.5
    depth[rng.random(depth.shape) < 0.1] = np.nan
    depth[rng.random(depth.shape) < 0.05] = 0.0
    depth[rng.random(depth.shape) < 0.02] = np.inf
    depth[:8, :8] = np.nan
    depth = depth.astype(dtype)
    depth.flags.writeable = not readonly  # frames read from shared buffers are read-only
    K = np.array([[50.0 + rng.uniform(), 0, 30.3], [0, 51.0, 21.7], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    T[:3, 3] = rng.normal(size=3) * 10
    config = MapConfig(max_depth_spread=spread, min_depth_m=0.3, max_depth_m=8.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it wraps a read-only array
        got = depth_patch_geometry(depth.shape, depth, K, T if posed else None, 8, config)
    cam, world = float64_patch_geometry(depth, K, T if posed else None, 8, config)
    assert got.points_cam.dtype == got.points_map.dtype == np.float64
    np.testing.assert_array_equal(got.points_cam, cam)
    np.testing.assert_array_equal(got.points_map, world)


def test_depth_edge_tolerance_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_depth_spread must be > 0"):
        MapConfig(max_depth_spread=0.0)
    assert MapConfig(max_depth_spread=float("inf")).max_depth_spread == float("inf")


@pytest.mark.parametrize("lo, hi", [(5.0, 1.0), (2.0, 2.0)])
def test_a_depth_range_that_holds_no_depth_is_refused(lo: float, hi: float) -> None:
    # every frame of the build was read before "no keyframes" said so
    with pytest.raises(ValueError, match=r"need min_depth_m \(.*\) < max_depth_m"):
        MapConfig(min_depth_m=lo, max_depth_m=hi)


def test_a_large_map_is_indexed_from_its_float_descriptors_not_from_decoded_codes(
    scene: Path, model, monkeypatch: pytest.MonkeyPatch
) -> None:
    from locus_core.data import open_dataset
    from locus_core.mapping import build_map
    from locus_core.mapping.index import LandmarkIndex

    builds = []
    build = LandmarkIndex.build.__func__

    def spy(cls, descriptors, ids, **kw):  # type: ignore[no-untyped-def]
        builds.append((kw["kind"], descriptors))
        return build(cls, descriptors, ids, **kw)

    monkeypatch.setattr(LandmarkIndex, "build", classmethod(spy))
    # past 300 landmarks the index is product-quantised while the map grows, and rebuilt at the end
    m = build_map(model, open_dataset(scene, frames="0:48:2"), MapConfig(landmarks_per_keyframe=150, index_exact_max=300))
    kind, descriptors = builds[-1]
    assert kind == "ivf_pq" and m.index.kind == "ivf_pq" and m.index.ntotal == m.num_landmarks == len(descriptors)
    # the features are unit vectors; PQ codes decode to vectors a percent or so off unit length
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, atol=1e-5)


def test_frames_without_depth_in_range_at_a_mapped_viewpoint_are_not_keyframes() -> None:
    from locus_core.mapping.build import MapBuilder
    from locus_core.mapping.landmark_map import LandmarkMap

    rng = np.random.default_rng(0)
    features = rng.normal(size=(8, 4, 4)).astype(np.float32)
    builder = MapBuilder(LandmarkMap(model_hash="x", dim=8, config=MapConfig(scale=0)), 8)
    assert builder.add(features, step_frame(noise=0.005))
    for depth in (np.nan, 0.05):  # no depth, all closer than min_depth_m
        blind = dataclasses.replace(step_frame(), depth=np.full((32, 32), depth, np.float32))
        assert not builder.wants(blind) and not builder.add(features, blind)
    assert len(builder.map.keyframes) == 1 and len(builder.recent) == 1
    # a view the keyframe does not see still makes one (the box and wall moved away)
    assert builder.wants(dataclasses.replace(step_frame(), depth=np.full((32, 32), 3.0, np.float32)))


def test_the_map_records_the_selection_it_was_built_from(built_map) -> None:
    """`locus map info` shows it: a selection with a step is recorded with it (0:48:2, not 0:47)."""
    assert built_map.sources[0]["frames"] == "0:47:2" and built_map.sources[0]["count"] == 24


def test_frames_without_depth_in_range_at_a_new_viewpoint_are_not_keyframes() -> None:
    from locus_core.mapping.build import MapBuilder
    from locus_core.mapping.landmark_map import LandmarkMap

    rng = np.random.default_rng(0)
    features = rng.normal(size=(8, 4, 4)).astype(np.float32)
    features /= np.linalg.norm(features, axis=0)
    builder = MapBuilder(LandmarkMap(model_hash="x", dim=8, config=MapConfig(scale=0)), 8)
    assert builder.add(features, step_frame(noise=0.005))
    for step, depth in enumerate((np.nan, 0.05), start=1):  # no depth, all closer than min_depth_m
        T = np.eye(4)
        T[0, 3] = step  # metres from every keyframe: a new viewpoint
        blind = dataclasses.replace(step_frame(), depth=np.full((32, 32), depth, np.float32), T_world_cam=T)
        assert not builder.wants(blind) and not builder.add(features, blind)
    # they became keyframes without landmarks and pushed the real one out of the neighbours
    assert len(builder.map.keyframes) == 1 and [r.keyframe for r in builder.recent] == [0]
    assert len(builder.recent[0].landmark_ids) > 0


def test_offer_extracts_features_only_for_a_keyframe() -> None:
    from locus_core.mapping.build import MapBuilder
    from locus_core.mapping.landmark_map import LandmarkMap

    features = np.random.default_rng(0).normal(size=(8, 4, 4)).astype(np.float32)
    extracted = []

    def features_of(frame):
        extracted.append(frame.frame_id)
        return features

    builder = MapBuilder(LandmarkMap(model_hash="x", dim=8, config=MapConfig(scale=0)), 8)
    assert builder.offer(step_frame(noise=0.005), features_of) and len(extracted) == 1
    assert not builder.offer(step_frame(noise=0.005), features_of) and len(extracted) == 1  # mapped already
    assert not builder.offer(dataclasses.replace(step_frame(), depth=None), features_of) and len(extracted) == 1
    assert len(builder.map.keyframes) == 1


def test_a_build_whose_frames_have_no_depth_in_range_says_so(scene: Path, model) -> None:
    # it said that no frame had depth and a pose: a user checked the poses, not the depth range
    from locus_core.data import open_dataset
    from locus_core.mapping import MapError, build_map

    with pytest.raises(MapError, match=r"4 of the 4 frames have depth and a pose, but no patch with depth between "
                                       r"min_depth_m and max_depth_m \(20.0 and 30.0 m\)"):
        build_map(model, open_dataset(scene, frames="0:4"), MapConfig(min_depth_m=20.0, max_depth_m=30.0))


def test_a_data_set_without_poses_is_refused_before_its_frames_are_read(tmp_path: Path, model) -> None:
    from locus_core.data.dataset import PosedDataset
    from locus_core.mapping import MapError, build_map

    def read(k: int) -> PosedFrame:
        raise AssertionError("a frame was read")

    bag = PosedDataset(path=tmp_path / "run.mcap", name="run", format="rosbag", indices=range(1000), poses=None,
                       intrinsics=np.eye(3), image_size=(120, 160), loader=read)
    with pytest.raises(MapError, match=r"run.mcap: has no camera poses; mapping needs a pose per frame"):
        build_map(model, bag)
