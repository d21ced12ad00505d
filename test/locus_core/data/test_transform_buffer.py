"""The fallback transform buffer: chains, interpolation, static edges, extrapolation errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from locus_core.data.errors import ExtrapolationError, LookupTransformError, TransformError
from locus_core.data.formats.tf import SAME_STAMP_S, TfTree, TransformBuffer


def _T(rotvec=(0.0, 0.0, 0.0), t=(0.0, 0.0, 0.0)) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


@pytest.fixture
def tree() -> TransformBuffer:
    """map -> odom (dynamic) -> base_link (dynamic) -> camera (static); map -> landmark (static)."""
    buf = TransformBuffer()
    buf.set_transform("map", "odom", _T(t=(1, 0, 0)), 0.0)
    buf.set_transform("map", "odom", _T(t=(1, 0, 0)), 10.0)
    buf.set_transform("odom", "base_link", _T(t=(0, 0, 0)), 1.0)
    buf.set_transform("odom", "base_link", _T((0, 0, np.pi / 2), (2, 0, 0)), 3.0)
    buf.set_transform("/base_link", "camera", _T((-np.pi / 2, 0, 0), (0, 0, 0.5)), 0.0, static=True)
    buf.set_transform("map", "landmark", _T(t=(0, 5, 0)), 0.0, static=True)
    return buf


def test_chain_and_interpolation(tree: TransformBuffer) -> None:
    T = tree.lookup("map", "base_link", 2.0)  # halfway: 45 degrees, x = 1
    np.testing.assert_allclose(T, _T((0, 0, np.pi / 4), (2, 0, 0)), atol=1e-12)
    expected = _T(t=(1, 0, 0)) @ _T((0, 0, np.pi / 4), (1, 0, 0)) @ _T((-np.pi / 2, 0, 0), (0, 0, 0.5))
    np.testing.assert_allclose(tree.lookup("map", "camera", 2.0), expected, atol=1e-12)
    # Through the common ancestor `map`, and the inverse direction.
    T_landmark_camera = tree.lookup("landmark", "camera", 2.0)
    np.testing.assert_allclose(T_landmark_camera, np.linalg.inv(_T(t=(0, 5, 0))) @ expected, atol=1e-12)
    np.testing.assert_allclose(tree.lookup("camera", "landmark", 2.0), np.linalg.inv(T_landmark_camera), atol=1e-12)
    np.testing.assert_array_equal(tree.lookup("odom", "odom", 99.0), np.eye(4))


def test_latest_common_time(tree: TransformBuffer) -> None:
    # odom->base_link ends at 3 s, map->odom at 10 s: the latest time the whole chain is known is 3.
    np.testing.assert_allclose(tree.lookup("map", "base_link"), tree.lookup("map", "base_link", 3.0))
    np.testing.assert_allclose(tree.lookup("base_link", "camera"), _T((-np.pi / 2, 0, 0), (0, 0, 0.5)), atol=1e-12)


def test_extrapolation_and_missing_frames(tree: TransformBuffer) -> None:
    with pytest.raises(ExtrapolationError, match=r"odom -> base_link at t=4.000000 would extrapolate into the future"):
        tree.lookup("map", "camera", 4.0)
    with pytest.raises(ExtrapolationError, match="into the past"):
        tree.lookup("map", "base_link", 0.5)
    with pytest.raises(LookupTransformError, match="frame 'nowhere' does not exist"):
        tree.lookup("map", "nowhere", 2.0)
    tree.set_transform("world", "gps", _T(), 0.0, static=True)
    with pytest.raises(LookupTransformError, match="not connected"):
        tree.lookup("gps", "camera", 2.0)
    assert not tree.can_transform("map", "camera", 5.0) and tree.can_transform("map", "camera", 2.5)
    with pytest.raises(TransformError, match="must be non-empty and differ"):
        tree.set_transform("a", "a", _T(), 0.0)
    with pytest.raises(TransformError, match="finite"):
        tree.set_transform("a", "b", np.full((4, 4), np.nan), 0.0)


@pytest.mark.parametrize("R", [np.diag([1.0, 1.0, -1.0]), 2 * np.eye(3), np.zeros((3, 3))])
def test_a_matrix_that_is_not_a_rotation_is_refused(R: np.ndarray) -> None:
    """A reflection raised scipy's ValueError; a scaled rotation was stored as the nearest rotation."""
    buf, T = TransformBuffer(), np.eye(4)
    T[:3, :3] = R
    with pytest.raises(TransformError, match="a -> b at t=1.0: pose is not rigid"):
        buf.set_transform("a", "b", T, 1.0)
    assert buf.frames == set()


def test_cache_window_and_clear(tree: TransformBuffer) -> None:
    buf = TransformBuffer(cache_time=1.0)
    for i in range(20):
        buf.set_transform("odom", "base_link", _T(t=(i, 0, 0)), i * 0.5)
    with pytest.raises(ExtrapolationError, match="buffered from 8.500000 to 9.500000"):
        buf.lookup("odom", "base_link", 5.0)
    tree.clear()
    assert tree.frames == {"base_link", "camera", "map", "landmark"}
    with pytest.raises(ValueError, match="cache_time"):
        TransformBuffer(cache_time=0)


def test_time_going_backwards_restarts_the_edge() -> None:
    buf = TransformBuffer(cache_time=2.0)
    for t in (100.0, 101.0, 102.0):
        buf.set_transform("odom", "base_link", _T(t=(t, 0, 0)), t)
    buf.set_transform("odom", "base_link", _T(t=(1, 0, 0)), 1.0)  # the bag looped
    buf.set_transform("odom", "base_link", _T(t=(2, 0, 0)), 2.0)
    assert buf.time_jumps == 1
    np.testing.assert_allclose(buf.lookup("odom", "base_link", 1.5)[:3, 3], [1.5, 0, 0])
    with pytest.raises(ExtrapolationError):
        buf.lookup("odom", "base_link", 101.0)


def test_a_jump_shorter_than_the_cache_restarts_the_edge_before_the_new_sample() -> None:
    """A restarted simulator 3 s back (within the 10 s cache): the new run's samples were
    interpolated with the old run's; a sample only a little late still joins the history."""
    buf = TransformBuffer()
    for t in range(6):
        buf.set_transform("odom", "base_link", _T(t=(t, 0, 0)), float(t))
    buf.set_transform("odom", "base_link", _T(t=(3, 0, 0)), 4.5)  # 0.5 s late: the same run
    assert buf.time_jumps == 0
    buf.set_transform("odom", "base_link", _T(t=(100, 0, 0)), 2.2)  # the new run
    buf.set_transform("odom", "base_link", _T(t=(100, 0, 0)), 3.0)
    assert buf.time_jumps == 1
    np.testing.assert_allclose(buf.lookup("odom", "base_link", 2.5)[:3, 3], [100, 0, 0])
    with pytest.raises(ExtrapolationError, match="buffered from 2.200000 to 3.000000"):
        buf.lookup("odom", "base_link", 3.5)  # not between the new run's 3.0 and the old run's 4.0


def test_reparenting_discards_old_history() -> None:
    buf = TransformBuffer()
    buf.set_transform("odom", "base_link", _T(t=(1, 0, 0)), 0.0)
    buf.set_transform("map", "base_link", _T(t=(2, 0, 0)), 1.0)
    assert "odom" not in buf.frames
    np.testing.assert_allclose(buf.lookup("map", "base_link", 1.0), _T(t=(2, 0, 0)))


@settings(max_examples=40, deadline=None)
@given(
    poses=st.lists(
        st.tuples(st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3), st.lists(st.floats(-5, 5), min_size=3, max_size=3)),
        min_size=2, max_size=6,
    ),
    alpha=st.floats(0.0, 1.0),
)
def test_interpolation_hits_samples_and_stays_rigid(poses, alpha: float) -> None:
    buf = TransformBuffer()
    mats = [_T(r, t) for r, t in poses]
    for i, T in enumerate(mats):
        buf.set_transform("odom", "base_link", T, float(i))
    for i, T in enumerate(mats):
        np.testing.assert_allclose(buf.lookup("odom", "base_link", float(i)), T, atol=1e-9)
    T = buf.lookup("base_link", "odom", alpha)
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
    translation = np.linalg.inv(T)[:3, 3]
    # a stamp within SAME_STAMP_S of a sample is that sample
    alpha = 0.0 if alpha <= SAME_STAMP_S else 1.0 if 1.0 - alpha <= SAME_STAMP_S else alpha
    np.testing.assert_allclose(translation, (1 - alpha) * mats[0][:3, 3] + alpha * mats[1][:3, 3], atol=1e-9)


def _tq(T: np.ndarray) -> np.ndarray:
    return np.concatenate([T[:3, 3], Rotation.from_matrix(T[:3, :3]).as_quat()])


def test_max_gap_refuses_to_bridge_a_hole_in_the_stream() -> None:
    buf = TransformBuffer(max_gap=0.5)
    for t in (0.0, 0.2, 5.0):
        buf.set_transform_tq("odom", "base_link", _tq(_T(t=(t, 0, 0))), t)
    np.testing.assert_allclose(buf.lookup("odom", "base_link", 0.1)[:3, 3], [0.1, 0, 0])
    np.testing.assert_allclose(buf.lookup("odom", "base_link", 5.0)[:3, 3], [5.0, 0, 0])  # a sample: no gap involved
    with pytest.raises(ExtrapolationError, match=r"falls in a gap of the stream: samples at 0.200000 and 5.000000"):
        buf.lookup("odom", "base_link", 2.0)
    with pytest.raises(TransformError, match="invalid pose"):
        buf.set_transform_tq("odom", "base_link", np.zeros(7), 1.0)


def test_max_gap_is_the_time_between_the_two_samples() -> None:
    """Near a sample or midway, a lookup between samples further apart than max_gap is refused; any
    lookup between closer ones is answered."""
    tree = TfTree(max_gap=0.5)
    for t in (10.0, 10.8, 11.2):
        tree.add("odom", "base_link", t, _tq(_T(t=(t, 0, 0))), static=False)
    assert [tree.lookup("odom", "base_link", t) for t in (10.05, 10.4, 10.75)] == [None] * 3
    for t in (10.85, 11.0, 11.15):
        np.testing.assert_allclose(tree.lookup("odom", "base_link", t)[:3, 3], [t, 0, 0], atol=1e-12)


def test_tf_tree_keeps_the_whole_recording_and_answers_none() -> None:
    """The bag readers' view: unlimited history, poses as tx ty tz qx qy qz qw, None instead of errors."""
    tree = TfTree(max_gap=0.5)
    T_base_cam = _T((-np.pi / 2, 0, 0), (0, 0, 0.5))
    tree.add("base_link", "camera", 0.0, _tq(T_base_cam), static=True)
    for i in range(200):  # 100 s at 2 Hz: far beyond the live buffer's 10 s window
        tree.add("odom", "base_link", i * 0.5, _tq(_T((0, 0, 0.01 * i), (i, 0, 0))), static=False)
    np.testing.assert_allclose(tree.lookup("odom", "camera", 0.25), _T((0, 0, 0.005), (0.5, 0, 0)) @ T_base_cam, atol=1e-9)
    assert tree.lookup("odom", "camera", 200.0) is None  # after the recording
    assert tree.lookup("odom", "nowhere", 1.0) is None
    np.testing.assert_array_equal(tree.lookup("nowhere", "nowhere", 1.0), np.eye(4))
    tree.add("odom", "base_link", 1.0, np.full(7, np.nan), static=False)
    assert tree.rejected == 1 and tree.frames == {"odom", "base_link", "camera"}


def test_one_stale_stamp_does_not_split_its_stream_from_the_others() -> None:
    from locus_core.data.formats.tf import TfSegments

    segments = TfSegments(jump_s=1.0)
    for k in range(150):
        assert segments.observe("/rgb", 1 + k / 30) == 0 and segments.observe("/depth", 1 + k / 30) == 0
    assert segments.observe("/rgb", 1.0) == 1  # one message stamped far back
    for k in range(150, 160):  # its stream goes on where it was, alone: back with the others
        assert segments.observe("/rgb", 1 + k / 30) == 0 and segments.observe("/depth", 1 + k / 30) == 0


def test_a_restarted_recording_stays_a_new_segment_past_the_old_ones_end() -> None:
    from locus_core.data.formats.tf import TfSegments

    segments = TfSegments(jump_s=1.0)
    for k in range(60):
        segments.observe("/rgb", k / 30)
        segments.observe("/depth", k / 30)
    for k in range(120):  # restarted at 0 and running longer than the first run
        assert segments.observe("/rgb", k / 30) == 1 and segments.observe("/depth", k / 30) == 1
