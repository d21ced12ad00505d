"""Pose maths shared by the readers: quaternions, interpolation, and the rigidity check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from locus_core.data import FrameError
from locus_core.data.poses import check_pose, interpolate_tq, pose_from_tq, quaternion_to_matrix, slerp_tq

QUARTER_TURN_Z = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])


def _rotation_deg(R: np.ndarray) -> float:
    return float(np.degrees(Rotation.from_matrix(R).magnitude()))


def test_quaternion_to_matrix() -> None:
    s = np.sqrt(0.5)
    np.testing.assert_allclose(quaternion_to_matrix([0, 0, s, s]), QUARTER_TURN_Z, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix([0, 0, 3.0, 3.0]), QUARTER_TURN_Z, atol=1e-12)  # normalised
    q = Rotation.random(5, random_state=0).as_quat()  # scipy is scalar-last too
    batch = quaternion_to_matrix(q.reshape(5, 1, 4))
    assert batch.shape == (5, 1, 3, 3)
    np.testing.assert_allclose(batch[:, 0], Rotation.from_quat(q).as_matrix(), atol=1e-12)


def test_a_zero_quaternion_is_refused() -> None:
    with pytest.raises(ValueError, match=r"quaternion \(0, 0, 0, 0\), 1 of 2: zero norm"):
        quaternion_to_matrix([[0, 0, 0, 1], [0, 0, 0, 0]])
    with pytest.raises(FrameError, match="zero norm"):  # one line from the CLI, not a traceback
        pose_from_tq(np.zeros(7))


def test_slerp_and_interpolation_midpoints() -> None:
    s = np.sqrt(0.5)
    a, b = np.array([0, 0, 0, 0, 0, 0, 1.0]), np.array([2, 0, 4, 0, 0, s, s])
    mid = slerp_tq(a, b, 0.5)
    np.testing.assert_allclose(mid[:3], [1, 0, 2])
    np.testing.assert_allclose(quaternion_to_matrix(mid[3:]), Rotation.from_euler("z", 45, degrees=True).as_matrix(), atol=1e-12)
    # the same rotation written with the opposite sign takes the short way too
    np.testing.assert_allclose(quaternion_to_matrix(slerp_tq(a, b * [1, 1, 1, -1, -1, -1, -1], 0.5)[3:]),
                               quaternion_to_matrix(mid[3:]), atol=1e-12)
    stamps, tq = np.array([10.0, 10.1]), np.stack([a, b])
    np.testing.assert_allclose(interpolate_tq(stamps, tq, 10.05, max_dt=0.1), mid, atol=1e-12)
    np.testing.assert_array_equal(interpolate_tq(stamps, tq, 10.1, max_dt=0.01), b)  # an exact sample as it is
    assert interpolate_tq(stamps, tq, 10.05, max_dt=0.04) is None  # samples too far apart
    assert interpolate_tq(stamps, tq, 10.2, max_dt=1.0) is None  # no extrapolation


def test_check_pose_repairs_a_nearly_orthonormal_rotation() -> None:
    T = np.eye(4)
    T[:3, :3] = QUARTER_TURN_Z @ (np.eye(3) + np.array([[3e-4, 1e-4, 0], [1e-4, -2e-4, 2e-4], [0, 2e-4, 1e-4]]))
    T[:3, 3] = (1, 2, 3)
    T[3] = (0, 0, 1e-5, 1)
    given = T.copy()
    fixed = check_pose(T, "pose.txt")
    np.testing.assert_array_equal(T, given)  # the caller's array is left alone
    R = fixed[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
    assert _rotation_deg(R.T @ QUARTER_TURN_Z) < 0.02 and np.abs(fixed - T).max() < 1e-3
    np.testing.assert_array_equal(fixed[:3, 3], T[:3, 3])
    np.testing.assert_array_equal(fixed[3], [0, 0, 0, 1])
    clean = pose_from_tq(np.array([1, 2, 3, 0.1, 0.2, 0.3, 0.9]))
    np.testing.assert_array_equal(check_pose(clean, "clean"), clean)  # float noise is not "repaired"


@pytest.mark.parametrize(("T", "message"), [
    (np.eye(4)[:3], r"a.txt: pose must be 4x4, got shape \(3, 4\)"),
    (np.where(np.eye(4) > 0, np.nan, 0.0), "a.txt: pose has NaN or infinite entries"),
    (np.diag([1.0, 1.0, 1.01, 1.0]), r"a.txt: pose is not rigid \(rotation error 0.02"),
    (np.diag([1.0, 1.0, -1.0, 1.0]), r"a.txt: pose is not rigid \(rotation error 2"),  # a reflection
    (np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0.1, 1]]), r"last row \[0.0, 0.0, 0.1, 1.0\]"),
])
def test_check_pose_rejects(T: np.ndarray, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        check_pose(T, "a.txt")
