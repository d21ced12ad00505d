"""Message <-> array conversions, offline (message classes only, no rclpy.init). Messages built here
are read back with the ROS-free decoder (``locus_core.data.formats.ros_messages``): rclpy messages
are what the node decodes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sensor_msgs.msg")
from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from locus_core.data.errors import MessageError  # noqa: E402
from locus_core.data.formats import ros_messages as rm  # noqa: E402
from locus_ros import conversions as cv  # noqa: E402
from locus_ros.errors import ConversionError  # noqa: E402


def _rgb(h: int = 5, w: int = 7) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_give_rgb(encoding: str) -> None:
    rgb = _rgb()
    channels = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1]}
    alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    channels["rgba8"] = np.concatenate([rgb, alpha], axis=2)
    channels["bgra8"] = np.concatenate([rgb[:, :, ::-1], alpha], axis=2)
    msg = cv.numpy_to_image(np.ascontiguousarray(channels[encoding]), encoding)
    assert (msg.height, msg.width, msg.step) == (5, 7, 7 * channels[encoding].shape[2])
    np.testing.assert_array_equal(rm.rgb_from_image(msg), rgb)


def test_mono8_is_replicated() -> None:
    gray = _rgb()[:, :, 0]
    out = rm.rgb_from_image(cv.numpy_to_image(gray, "mono8"))
    assert out.shape == (5, 7, 3) and (out == gray[:, :, None]).all()


def test_row_padding_and_big_endian_depth() -> None:
    mm = np.array([[0, 1000, 2500], [65535, 1, 300]], dtype=np.uint16)
    padded = np.zeros((2, 4), dtype=">u2")
    padded[:, :3] = mm
    msg = Image(height=2, width=3, encoding="16UC1", is_bigendian=1, step=8)
    msg.data = padded.tobytes()
    depth = rm.depth_from_image(msg)
    assert depth.dtype == np.float32 and np.isnan(depth[0, 0])
    np.testing.assert_allclose(depth[0, 1:], [1.0, 2.5])
    np.testing.assert_allclose(depth[1], [65.535, 0.001, 0.3], rtol=1e-6)


def test_depth_32fc1_invalid_values_become_nan() -> None:
    metres = np.array([[1.5, np.nan, np.inf], [0.0, -1.0, 2.0]], dtype=np.float32)
    depth = rm.depth_from_image(cv.numpy_to_image(metres, "32FC1"))
    assert np.isnan(depth).tolist() == [[False, True, True], [True, True, False]]
    np.testing.assert_allclose(depth[~np.isnan(depth)], [1.5, 2.0])


def test_depth_to_image_round_trips_in_millimetres() -> None:
    metres = np.array([[0.5, np.nan], [1.2345, 3.0]], dtype=np.float32)
    msg = cv.depth_to_image(metres)
    assert msg.encoding == "16UC1"
    back = rm.depth_from_image(msg)
    np.testing.assert_allclose(back, [[0.5, np.nan], [1.234, 3.0]], atol=1e-3)
    # beyond the 16-bit range, or inf: invalid (0), as bag convert writes it, not a reading at 65.535 m
    far = rm.depth_from_image(cv.depth_to_image(np.array([[70.0, np.inf, -1.0]])))
    assert np.isnan(far).all()


def test_bad_images_are_rejected_naming_the_topic() -> None:
    msg = cv.numpy_to_image(_rgb(), "rgb8")
    msg.encoding = "yuv422"
    with pytest.raises(MessageError, match=r"camera/rgb: encoding .yuv422. is not a colour encoding"):
        rm.rgb_from_image(msg, what="camera/rgb")
    msg = cv.numpy_to_image(_rgb(), "rgb8")
    msg.height = 6
    with pytest.raises(MessageError, match=r"105 bytes of data for 7x6 rgb8"):
        rm.rgb_from_image(msg)
    with pytest.raises(MessageError, match="not a depth encoding"):
        rm.depth_from_image(cv.numpy_to_image(_rgb(), "rgb8"))
    with pytest.raises(MessageError, match="not a colour encoding"):
        rm.rgb_from_image(cv.numpy_to_image(np.zeros((2, 2), np.uint16), "16UC1"))
    yuv = Image(height=1, width=2, encoding="yuv422", step=4)
    with pytest.raises(MessageError, match="unsupported encoding .yuv422."):
        rm.image_to_numpy(yuv)
    with pytest.raises(ConversionError, match="does not fit rgb8"):
        cv.numpy_to_image(np.zeros((2, 2), np.uint8), "rgb8")
    empty = Image(height=0, width=0, encoding="mono8")
    with pytest.raises(MessageError, match="empty image"):
        rm.image_to_numpy(empty)


def test_compressed_round_trip() -> None:
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (200, 30, 10)
    decoded = rm.rgb_from_compressed(cv.rgb_to_compressed(rgb, quality=95))
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).mean() < 4
    broken = CompressedImage(format="jpeg")
    broken.data = b"not a jpeg"
    with pytest.raises(MessageError, match="cannot decode 10 bytes"):
        rm.rgb_from_compressed(broken)


def test_camera_info() -> None:
    K = np.array([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]])
    msg = cv.camera_info_from_intrinsics(K, 640, 480)
    np.testing.assert_array_equal(rm.intrinsics_from_camera_info(msg), K)
    assert cv.distortion_warning(msg) == ""
    msg.d = [0.2, -0.1, 0.0, 0.0, 0.0]
    assert "plumb_bob distortion" in cv.distortion_warning(msg)
    with pytest.raises(MessageError, match="not a calibrated pinhole matrix"):
        rm.intrinsics_from_camera_info(CameraInfo(width=640, height=480), what="cam/info")
    msg.width = 0
    with pytest.raises(MessageError, match="image size 0x480"):
        rm.intrinsics_from_camera_info(msg)


def test_stamps() -> None:
    stamp = cv.seconds_to_stamp(12.3456789012)
    assert (stamp.sec, stamp.nanosec) == (12, 345678901)
    assert cv.stamp_to_seconds(stamp) == pytest.approx(12.345678901)
    assert cv.seconds_to_stamp(-1.0).sec == 0


@settings(max_examples=50, deadline=None)
@given(
    rotvec=st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3),
    translation=st.lists(st.floats(-100, 100), min_size=3, max_size=3),
)
def test_pose_and_transform_round_trip(rotvec: list[float], translation: list[float]) -> None:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = translation
    np.testing.assert_allclose(cv.pose_to_matrix(cv.matrix_to_pose(T)), T, atol=1e-9)
    np.testing.assert_allclose(cv.transform_to_matrix(cv.matrix_to_transform(T)), T, atol=1e-9)


def test_invalid_pose_is_rejected() -> None:
    pose = cv.matrix_to_pose(np.eye(4))
    pose.orientation.w = 0.0
    with pytest.raises(ConversionError, match="odom: invalid rotation"):
        cv.pose_to_matrix(pose, what="odom")
    with pytest.raises(ConversionError, match="finite"):
        cv.matrix_to_pose(np.full((4, 4), np.nan))


def _se3(rotvec: list[float], translation: list[float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = translation
    return T


def test_pose_message_carries_pose_and_covariance() -> None:
    from std_msgs.msg import Header

    T = _se3([0.1, -0.2, 0.3], [1.0, 2.0, 3.0])
    covariance = np.diag(np.arange(1.0, 7.0))
    msg = cv.pose_message(Header(frame_id="map"), T, covariance)
    assert msg.header.frame_id == "map"
    np.testing.assert_allclose(cv.pose_to_matrix(msg.pose.pose), T, atol=1e-12)
    np.testing.assert_array_equal(np.reshape(msg.pose.covariance, (6, 6)), covariance)
    # no covariance: the message's zeros, which ROS reads as unknown
    assert not np.any(cv.pose_message(Header(), T, None).pose.covariance)


def test_place_matches_carry_relative_pose_only_when_verified() -> None:
    from std_msgs.msg import Header

    from locus_core.mapping.localizer import PlaceMatch

    keyframe, relative = _se3([0.0, 0.5, 0.0], [1.0, 0.0, 0.0]), _se3([0.2, 0.0, 0.0], [0.0, 0.1, 0.0])
    verified = PlaceMatch(keyframe_id=3, score=2.5, inliers=40, T_keyframe_query=relative, T_map_keyframe=keyframe)
    candidate = PlaceMatch(keyframe_id=9, score=1.0, inliers=0, T_keyframe_query=None, T_map_keyframe=keyframe)
    msg = cv.place_matches_message(Header(frame_id="map"), [verified, candidate])
    first, second = msg.matches
    assert (first.keyframe_id, first.score, first.inliers) == (3, 2.5, 40)
    np.testing.assert_allclose(cv.pose_to_matrix(first.keyframe_pose), keyframe, atol=1e-12)
    np.testing.assert_allclose(cv.pose_to_matrix(first.relative_pose), relative, atol=1e-12)
    np.testing.assert_array_equal(cv.pose_to_matrix(second.relative_pose), np.eye(4))
    assert cv.place_matches_message(Header(), []).matches == []


def test_map_markers_hold_landmarks_and_keyframes_in_the_map_frame() -> None:
    from std_msgs.msg import Header
    from visualization_msgs.msg import Marker

    landmarks = np.random.default_rng(0).normal(size=(5, 3))
    keyframes = np.array([[0.0, 0.0, 1.0], [1.0, 0.5, 1.0]])
    markers = {m.ns: m for m in cv.map_markers(Header(frame_id="map"), landmarks, keyframes).markers}
    assert set(markers) == {"landmarks", "keyframes"}
    assert (markers["landmarks"].type, markers["keyframes"].type) == (Marker.POINTS, Marker.SPHERE_LIST)
    for ns, xyz in (("landmarks", landmarks), ("keyframes", keyframes)):
        assert markers[ns].header.frame_id == "map" and markers[ns].color.a == 1.0
        np.testing.assert_allclose([(p.x, p.y, p.z) for p in markers[ns].points], xyz)
    # an empty map still publishes both markers (RViz clears what it showed)
    assert all(not m.points for m in cv.map_markers(Header(), np.zeros((0, 3)), np.zeros((0, 3))).markers)
