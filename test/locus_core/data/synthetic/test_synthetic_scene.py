"""The in-memory synthetic scene: determinism, exact depth, labels, repeated objects, trajectory."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.data.synthetic import SceneConfig, SyntheticError, SyntheticScene
from locus_core.data.synthetic import render as render_module
from locus_core.data.synthetic.primitives import turn

SMALL = SceneConfig(texture_size=64)
SIZE = (60, 80)


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return SyntheticScene(seed=3, rooms=3, config=SMALL)


def test_same_seed_same_scene_and_images(scene: SyntheticScene) -> None:
    again = SyntheticScene(seed=3, rooms=3, config=SMALL)
    other = SyntheticScene(seed=4, rooms=3, config=SMALL)
    K = scene.intrinsics(SIZE)
    T = scene.trajectory(10)[4]
    np.testing.assert_array_equal(T, again.trajectory(10)[4])
    for a, b in zip(scene.render(T, K, SIZE), again.render(T, K, SIZE)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(scene.render(T, K, SIZE)[0], other.render(T, K, SIZE)[0])
    assert scene.describe() == again.describe()


def _inverse_depth_at(depth: np.ndarray, ids: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear inverse depth at sub-pixel ``uv`` (exact on a plane) where the 4 neighbours agree."""
    H, W = depth.shape
    u0, v0 = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    ok = (u0 >= 0) & (v0 >= 0) & (u0 < W - 1) & (v0 < H - 1)
    u0, v0 = np.where(ok, u0, 0), np.where(ok, v0, 0)
    corners = [(v0, u0), (v0, u0 + 1), (v0 + 1, u0), (v0 + 1, u0 + 1)]
    same = np.all([ids[c] == ids[corners[0]] for c in corners], axis=0)
    wu, wv = uv[:, 0] - u0, uv[:, 1] - v0
    inv = 1 / depth
    value = ((1 - wu) * (1 - wv) * inv[corners[0]] + wu * (1 - wv) * inv[corners[1]]
             + (1 - wu) * wv * inv[corners[2]] + wu * wv * inv[corners[3]])
    return 1 / value, ok & same


def test_depth_reprojects_between_frames_with_the_exact_poses(scene: SyntheticScene) -> None:
    size = (120, 160)
    K = scene.intrinsics(size)
    poses = scene.trajectory(400)  # ~8 cm apart
    for i, j in ((100, 101), (250, 252)):
        _, depth_a, sem_a, ins_a = scene.render(poses[i], K, size)
        _, depth_b, sem_b, ins_b = scene.render(poses[j], K, size)
        assert np.isfinite(depth_a).all() and depth_a.min() > 0.2  # closed rooms, no collisions
        v, u = np.mgrid[0:size[0], 0:size[1]]
        rays = np.linalg.inv(K) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
        cam_a = rays * depth_a.ravel().astype(np.float64)
        world = poses[i][:3, :3] @ cam_a + poses[i][:3, 3:]
        T_b = np.linalg.inv(poses[j])
        cam_b = T_b[:3, :3] @ world + T_b[:3, 3:]
        proj = K @ cam_b
        uv = (proj[:2] / proj[2]).T
        labels_b = ins_b * 100 + sem_b
        predicted, ok = _inverse_depth_at(depth_b.astype(np.float64), labels_b, uv)
        error = np.abs(predicted - cam_b[2])
        visible = ok & (cam_b[2] > 0) & (error < 0.05)  # occluded points disagree by more
        assert visible.mean() > 0.3
        assert np.median(error[visible]) < 1e-3


def test_culling_changes_nothing(scene: SyntheticScene, monkeypatch: pytest.MonkeyPatch) -> None:
    K = scene.intrinsics(SIZE)
    poses = scene.trajectory(24)
    fast = [scene.render(T, K, SIZE) for T in poses[::4]]
    renderer = scene._renderer
    full = lambda o, rects, H, W: {r.index: (0, W, 0, H) for r in renderer.rooms}  # noqa: E731
    monkeypatch.setattr(renderer, "_visible_rooms", full)
    monkeypatch.setattr(render_module, "_rects", lambda corners, R, o, K, H, W: np.tile(
        np.array([0, W, 0, H]), (len(corners), 1)))
    for T, expected in zip(poses[::4], fast):
        for a, b in zip(scene.render(T, K, SIZE), expected):
            np.testing.assert_array_equal(a, b)


def test_labels_agree_with_scene_json(scene: SyntheticScene) -> None:
    K = scene.intrinsics(SIZE)
    instances = scene.instances
    seen_classes: set[int] = set()
    for T in scene.trajectory(12):
        _, _, semantic, instance = scene.render(T, K, SIZE)
        for i in np.unique(instance[instance > 0]):
            assert set(np.unique(semantic[instance == i])) == {instances[int(i)]}
        assert set(np.unique(semantic[instance == 0])) <= {1, 2, 3}
        seen_classes.update(np.unique(semantic).tolist())
    assert {1, 2} <= seen_classes and len(seen_classes - {1, 2, 3}) >= 3


def _facing(scene: SyntheticScene, instance: int) -> np.ndarray:
    """A camera 0.9 m in front of an object, looking at it, placed in the object's own frame."""
    spot = scene.placements[instance - 1]
    model = scene.models[spot.model]
    front = model.half_extent[1] + 0.9
    height = float(np.mean([(p.lo[2] + p.hi[2]) / 2 for p in model.parts]))
    position = np.array([0.0, front, max(height, 0.6)])
    forward = np.array([0.0, -1.0, 0.0])
    right, down = np.array([-1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])
    T = np.eye(4)
    T[:3, :3] = np.stack([right, down, forward], 1)
    T[:3, 3] = position
    turned = np.eye(4)
    c, s = turn(np.float32(1), np.float32(0), spot.quarter)
    turned[:2, :2] = [[c, -s], [s, c]]
    turned[:2, 3] = spot.x, spot.y
    return turned @ T


def test_repeated_objects_look_identical(scene: SyntheticScene) -> None:
    groups = scene.repeated()
    assert len(groups) >= 2
    rooms = {scene.placements[i - 1].room for i in groups[0]}
    assert len(rooms) > 1  # copies stand in different rooms
    K = scene.intrinsics((96, 128))
    compared = 0
    for group in groups:
        a, b = group[:2]
        rgb_a, _, _, ins_a = scene.render(_facing(scene, a), K, (96, 128), lit=False)
        rgb_b, _, _, ins_b = scene.render(_facing(scene, b), K, (96, 128), lit=False)
        mask_a, mask_b = ins_a == a, ins_b == b
        both = mask_a & mask_b
        if both.sum() < 0.8 * max(mask_a.sum(), mask_b.sum()) or both.sum() < 50:
            continue  # something else stands in front of one copy
        diff = np.abs(rgb_a[both].astype(int) - rgb_b[both].astype(int))
        assert np.percentile(diff, 99) <= 2
        compared += 1
    assert compared >= 1


def test_trajectory_is_smooth_closed_and_revisits(scene: SyntheticScene) -> None:
    poses = scene.trajectory(400)  # ~8 cm apart
    R = poses[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0, append=poses[:1, :3, 3]), axis=1)
    assert steps.max() < 2.5 * np.median(steps)  # even spacing, including the closing step
    rel = np.einsum("nij,nik->njk", R, np.roll(R, -1, axis=0))
    angles = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() < 20 and np.median(angles) < 5
    assert np.all(np.abs(poses[:, 2, 3] - 1.5) < 0.1)  # head height
    # most places are passed again later: some frame far along the loop comes within 0.5 m
    xy = poses[:, :2, 3]
    far_apart = np.abs(np.arange(400)[:, None] - np.arange(400)[None]) > 40
    near = np.linalg.norm(xy[:, None] - xy[None], axis=2) < 0.5
    assert (near & far_apart).any(1).mean() > 0.6


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("rooms", [1, 4])
def test_any_seed_gives_a_closed_walkable_scene(seed: int, rooms: int) -> None:
    scene = SyntheticScene(seed, rooms, SceneConfig(texture_size=16))
    K = scene.intrinsics((32, 40))
    for T in scene.trajectory(16):
        _, depth, _, _ = scene.render(T, K, (32, 40))
        assert np.isfinite(depth).all() and depth.min() > 0.2


def test_bad_parameters_raise_clear_errors(scene: SyntheticScene) -> None:
    with pytest.raises(SyntheticError, match="rooms"):
        SyntheticScene(0, 0)
    with pytest.raises(SyntheticError, match="frames"):
        scene.trajectory(0)
    with pytest.raises(SyntheticError, match="size"):
        scene.render(np.eye(4), scene.intrinsics(SIZE), (8, 8))
    with pytest.raises(SyntheticError, match="rotation"):
        scene.render(np.diag([1.0, 1.0, -1.0, 1.0]), scene.intrinsics(SIZE), SIZE)
    with pytest.raises(SyntheticError, match="texture_size"):
        SceneConfig(texture_size=100)
    with pytest.raises(SyntheticError, match=r"seed=-1: must be >= 0"):  # not numpy's ValueError
        SyntheticScene(-1, 1)


@settings(max_examples=25, deadline=None)
@given(x=st.floats(-0.2, 1.2), y=st.floats(-0.2, 1.2), z=st.floats(0.2, 2.4),
       yaw=st.floats(-np.pi, np.pi), pitch=st.floats(-1.2, 1.2), room=st.integers(0, 2))
def test_culling_is_exact_from_any_pose(scene: SyntheticScene, x: float, y: float, z: float,
                                        yaw: float, pitch: float, room: int) -> None:
    """Portal and rectangle culling drop nothing visible, wherever the camera is (even in a wall)."""
    r = scene.rooms[room]
    position = [r.lo[0] + x * (r.hi[0] - r.lo[0]), r.lo[1] + y * (r.hi[1] - r.lo[1]), z]
    forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    T = np.eye(4)
    T[:3, :3] = np.stack([right, np.cross(forward, right), forward], 1)
    T[:3, 3] = position
    K = scene.intrinsics((32, 40))
    fast = scene.render(T, K, (32, 40))
    renderer = scene._renderer
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(renderer, "_visible_rooms",
                      lambda o, rects, H, W: {q.index: (0, W, 0, H) for q in renderer.rooms})
        patch.setattr(render_module, "_rects", lambda corners, R, o, K, H, W: np.tile(
            np.array([0, W, 0, H]), (len(corners), 1)))
        slow = scene.render(T, K, (32, 40))
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)


def test_in_memory_frames_match_renders(scene: SyntheticScene) -> None:
    frames = SyntheticScene.from_config(dataclasses.replace(SMALL, seed=3)).frames(3, (32, 40))
    T = scene.trajectory(3)[2]
    rgb, depth, semantic, instance = scene.render(T, scene.intrinsics((32, 40)), (32, 40))
    f = frames[2]
    assert (f.index, f.frame_id, f.height, f.width) == (2, "frame-000002", 32, 40)
    np.testing.assert_array_equal(f.T_world_cam, T)
    for a, b in ((f.rgb, rgb), (f.depth, depth), (f.semantic, semantic), (f.instance, instance)):
        np.testing.assert_array_equal(a, b)
