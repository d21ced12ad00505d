from __future__ import annotations

import numpy as np
import pytest

from locus_core.data.registration import register_depth

K = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])


def test_identity_rig_gives_the_depth_back() -> None:
    depth = np.random.default_rng(0).uniform(0.5, 3.0, (48, 64)).astype(np.float32)
    depth[3, 4] = np.nan
    depth[5, 6] = 0.0
    out = register_depth(depth, K, K, np.eye(4), (48, 64))
    valid = np.isfinite(depth) & (depth > 0)
    np.testing.assert_allclose(out[valid], depth[valid], rtol=1e-6)
    assert np.isnan(out[3, 4]) and np.isnan(out[5, 6])


def test_a_plane_seen_by_a_wider_colour_camera_keeps_its_depth_where_covered() -> None:
    depth = np.full((48, 64), 2.0, np.float32)
    wider = K.copy()
    wider[0, 0] = wider[1, 1] = 40.0  # the colour camera sees more: depth covers its centre only
    out = register_depth(depth, K, wider, np.eye(4), (48, 64))
    covered = np.isfinite(out)
    assert covered[24, 32] and not covered[0, 0] and not covered[47, 63]
    np.testing.assert_allclose(out[covered], 2.0)
    # 50 px of depth focal length per 40 of colour: the covered band is 4/5 of the width
    assert abs(covered[24].sum() - 64 * 40 / 50) <= 2


def test_points_move_with_the_rig() -> None:
    depth = np.full((48, 64), 2.0, np.float32)
    T = np.eye(4)
    T[2, 3] = 0.5  # the colour camera 0.5 m behind the depth camera
    out = register_depth(depth, K, K, T, (48, 64))
    np.testing.assert_allclose(out[np.isfinite(out)], 2.5)


def test_the_nearest_surface_wins_where_points_collide() -> None:
    depth = np.full((48, 64), 3.0, np.float32)
    depth[24, 32] = 1.0  # one near point among far ones
    half = K.copy()
    half[:2] /= 2  # four depth pixels land on each colour pixel
    out = register_depth(depth, K, half, np.eye(4), (24, 32))
    u, v = (np.array([32, 24, 1.0]) @ np.linalg.inv(K).T) @ half.T[:, :2]
    assert out[int(round(v)), int(round(u))] == pytest.approx(1.0)
    assert np.nanmax(out) == pytest.approx(3.0) and np.sum(out == 1.0) == 1


def test_points_behind_the_colour_camera_are_dropped() -> None:
    T = np.eye(4)
    T[2, 3] = -5.0
    out = register_depth(np.full((48, 64), 2.0, np.float32), K, K, T, (48, 64))
    assert np.isnan(out).all()


@pytest.mark.parametrize(("args", "message"), [
    ((np.zeros((2, 3, 4)), K, K, np.eye(4), (48, 64)), r"depth: expected \(H, W\)"),
    ((np.ones((4, 4)), K[:2], K, np.eye(4), (48, 64)), r"K_depth: expected a finite \(3, 3\)"),
    ((np.ones((4, 4)), K, K * np.nan, np.eye(4), (48, 64)), r"K_color: expected a finite"),
    ((np.ones((4, 4)), K, K, np.eye(3), (48, 64)), r"T_color_depth: expected a finite \(4, 4\)"),
    ((np.ones((4, 4)), K, K, np.eye(4), (0, 64)), r"color_size: expected"),
])
def test_bad_arguments_are_named(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        register_depth(*args)
