"""Camera messages → PosedFrame without ROS: plain objects with the message fields stand in for
rclpy and rosbags messages (ROS 1 CameraInfo spells K and D in capitals)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from locus_core.pipeline import ConversionError, UnsupportedEncoding, frame_from_messages
from locus_core.pipeline.messages import distortion_warning, registration_warning

K = np.array([[50.0, 0, 3.5], [0, 50.0, 2.5], [0, 0, 1]])


def _header(t: float = 12.5, frame: str = "camera_color_optical_frame") -> SimpleNamespace:
    return SimpleNamespace(stamp=SimpleNamespace(sec=int(t), nanosec=int(round((t % 1) * 1e9))), frame_id=frame)


def _image(array: np.ndarray, encoding: str, *, pad: int = 0, big_endian: bool = False, **header) -> SimpleNamespace:
    h, w = array.shape[:2]
    dtype = array.dtype.newbyteorder(">" if big_endian else "<")
    rows = np.ascontiguousarray(array, dtype=dtype).reshape(h, -1).view(np.uint8)
    data = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    return SimpleNamespace(header=_header(**header), height=h, width=w, encoding=encoding, is_bigendian=int(big_endian),
                           step=data.shape[1], data=data.ravel())  # rosbags holds data as a uint8 array


def _info(w: int = 8, h: int = 6, *, ros1: bool = False, d=(0.0,) * 5, P: np.ndarray | None = None) -> SimpleNamespace:
    P = np.zeros((3, 4)) if P is None else P
    fields = {"K": K.ravel(), "D": np.array(d), "P": P.ravel()} if ros1 else {"k": K.ravel(), "d": np.array(d), "p": P.ravel()}
    return SimpleNamespace(header=_header(), width=w, height=h, distortion_model="plumb_bob", **fields)


RGB = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
DEPTH_MM = np.full((6, 8), 1500, np.uint16)


@pytest.mark.parametrize("ros1", [False, True])
def test_frame_from_a_synchronised_set(ros1: bool) -> None:
    depth_mm = DEPTH_MM.copy()
    depth_mm[0, 0] = 0
    frame, camera = frame_from_messages(_image(RGB[:, :, ::-1], "bgr8", pad=3), _image(depth_mm, "16UC1", big_endian=True),
                                        _info(ros1=ros1))
    assert camera == "camera_color_optical_frame" and frame.stamp == pytest.approx(12.5)
    assert frame.frame_id == "camera_color_optical_frame@12.500000" and frame.T_world_cam is None
    np.testing.assert_array_equal(frame.rgb, RGB)
    assert np.isnan(frame.depth[0, 0]) and frame.depth[1, 1] == pytest.approx(1.5)
    np.testing.assert_array_equal(frame.K, K)
    frame, camera = frame_from_messages(_image(RGB, "rgb8"), _image(np.full((6, 8), 2.0, np.float32), "32FC1"), _info(),
                                        camera_frame="override")
    assert camera == "override" and frame.frame_id.startswith("override@")


def test_unusable_sets_say_why() -> None:
    depth = _image(DEPTH_MM, "16UC1")
    topics = ("/cam/rgb", "/cam/depth", "/cam/info")
    with pytest.raises(UnsupportedEncoding, match="/cam/rgb: encoding 'yuv422' is not a colour encoding"):
        frame_from_messages(_image(RGB, "yuv422"), depth, _info(), topics=topics)
    with pytest.raises(UnsupportedEncoding, match="/cam/depth: encoding 'rgb8' is not a depth encoding"):
        frame_from_messages(_image(RGB, "rgb8"), _image(RGB, "rgb8"), _info(), topics=topics)
    with pytest.raises(ConversionError, match="size mismatch: /cam/rgb 8x6, /cam/depth 4x6"):
        frame_from_messages(_image(RGB, "rgb8"), _image(DEPTH_MM[:, :4], "16UC1"), _info(), topics=topics)
    with pytest.raises(ConversionError, match="size mismatch: /cam/rgb 8x6, /cam/info 16x12"):
        frame_from_messages(_image(RGB, "rgb8"), depth, _info(16, 12), topics=topics)
    with pytest.raises(ConversionError, match="/cam/rgb: empty header.frame_id"):
        frame_from_messages(_image(RGB, "rgb8", frame=""), depth, _info(), topics=topics)
    uncalibrated = _info()
    uncalibrated.k = np.zeros(9)
    with pytest.raises(ConversionError, match="/cam/info: K = .* is not a calibrated pinhole matrix"):
        frame_from_messages(_image(RGB, "rgb8"), depth, uncalibrated, topics=topics)
    truncated = _image(RGB, "rgb8")
    truncated.data = truncated.data[:-1]
    with pytest.raises(ConversionError, match="/cam/rgb: 143 bytes of data for 8x6 rgb8"):
        frame_from_messages(truncated, depth, _info(), topics=topics)


def test_distortion_warning_names_the_parameter_that_reads_rectified_images() -> None:
    assert distortion_warning(_info()) == ""
    warning = distortion_warning(_info(ros1=True, d=(0.1, 0, 0, 0, 0)))
    assert "plumb_bob distortion [0.1" in warning and "read as undistorted with K" in warning
    assert "image_rect" in warning and "rectified: true" in warning


@pytest.mark.parametrize("ros1", [False, True])
def test_rectified_images_take_their_intrinsics_from_P(ros1: bool) -> None:
    """image_proc's image_rect: P[:3, :3] holds the rectified camera's intrinsics, K the raw one's."""
    P = np.zeros((3, 4))
    P[:, :3] = [[40.0, 0, 4.0], [0, 41.0, 3.0], [0, 0, 1]]
    info = _info(ros1=ros1, d=(0.1, 0, 0, 0, 0), P=P)
    frame, _ = frame_from_messages(_image(RGB, "rgb8"), _image(DEPTH_MM, "16UC1"), info, rectified=True)
    np.testing.assert_array_equal(frame.K, P[:, :3])
    frame, _ = frame_from_messages(_image(RGB, "rgb8"), _image(DEPTH_MM, "16UC1"), info)
    np.testing.assert_array_equal(frame.K, K)


def test_rectified_without_a_monocular_P_says_why() -> None:
    depth, topics = _image(DEPTH_MM, "16UC1"), ("/cam/rgb", "/cam/depth", "/cam/info")
    with pytest.raises(ConversionError, match=r"/cam/info: P\[:3, :3\] = .* is not a calibrated pinhole matrix"):
        frame_from_messages(_image(RGB, "rgb8"), depth, _info(), topics=topics, rectified=True)  # P unset: zeros
    stereo_right = np.zeros((3, 4))
    stereo_right[:, :3] = K
    stereo_right[0, 3] = -50.0 * 0.05  # Tx = -fx * baseline
    with pytest.raises(ConversionError, match="/cam/info: P has Tx, Ty = -2.5, 0.0: a stereo pair's second camera"):
        frame_from_messages(_image(RGB, "rgb8"), depth, _info(P=stereo_right), topics=topics, rectified=True)


def test_depth_in_another_frame_is_warned_about_not_refused() -> None:
    rgb, depth = _image(RGB, "rgb8"), _image(DEPTH_MM, "16UC1", frame="camera_depth_optical_frame")
    warning = registration_warning(rgb, depth, topics=("/cam/rgb", "/cam/depth"))
    assert "/cam/depth is in frame 'camera_depth_optical_frame' and /cam/rgb in 'camera_color_optical_frame'" in warning
    assert "depth must be registered to the colour camera" in warning
    frame, camera = frame_from_messages(rgb, depth, _info())  # still used: some drivers label registered depth so
    assert camera == "camera_color_optical_frame"
    assert registration_warning(rgb, _image(DEPTH_MM, "16UC1", frame="/camera_color_optical_frame")) == ""


def test_compressed_depth_as_image_transport_records_it() -> None:
    """The decoder's errors come out as the pipeline's: the node counts RVL as an unknown encoding
    (a configuration problem), an undecodable PNG as a bad message."""
    import cv2

    png = cv2.imencode(".png", DEPTH_MM)[1].ravel()
    data, topics = np.concatenate([np.zeros(12, np.uint8), png]), ("/cam/rgb", "/cam/depth", "/cam/info")
    frame, _ = frame_from_messages(_image(RGB, "rgb8"), SimpleNamespace(format="16UC1; compressedDepth png", data=data), _info())
    np.testing.assert_allclose(frame.depth, 1.5)
    rvl = SimpleNamespace(format="16UC1; compressedDepth rvl", data=np.arange(40, dtype=np.uint8))
    with pytest.raises(UnsupportedEncoding, match=r"/cam/depth: compressed depth '16UC1; compressedDepth rvl' is not read "
                                                  r"\(16UC1 compressedDepth png only\)"):
        frame_from_messages(_image(RGB, "rgb8"), rvl, _info(), topics=topics)
    corrupt = SimpleNamespace(format="16UC1; compressedDepth png", data=np.zeros(20, np.uint8))
    with pytest.raises(ConversionError, match="/cam/depth: cannot decode") as caught:
        frame_from_messages(_image(RGB, "rgb8"), corrupt, _info(), topics=topics)
    assert not isinstance(caught.value, UnsupportedEncoding)


@pytest.mark.parametrize("rectified", [False, True])
def test_binned_and_cropped_images_take_intrinsics_for_their_size(rectified: bool) -> None:
    """image_proc's crop_decimate (and drivers that bin or crop on the sensor) keep the calibration's
    full size in width/height and set binning and roi: such images were refused as a size mismatch."""
    full = np.array([[50.0, 0, 7.5], [0, 50.0, 5.5], [0, 0, 1]])
    P = np.zeros((3, 4))
    P[:, :3] = full
    info = SimpleNamespace(header=_header(), width=20, height=16, distortion_model="plumb_bob", k=full.ravel(), d=np.zeros(5),
                           p=P.ravel(), binning_x=2, binning_y=2,
                           roi=SimpleNamespace(x_offset=4, y_offset=2, width=16, height=12, do_rectify=False))
    frame, _ = frame_from_messages(_image(RGB, "rgb8"), _image(DEPTH_MM, "16UC1"), info, rectified=rectified)
    # the decimated image's pixel (u, v) is the full image's (2u + 4, 2v + 2), as crop_decimate takes them
    point = np.array([0.3, -0.2, 2.0])
    u_full, v_full = (full @ point / point[2])[:2]
    u, v = (frame.K @ point / point[2])[:2]
    assert (2 * u + 4, 2 * v + 2) == pytest.approx((u_full, v_full))
    info.roi = SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0, do_rectify=False)  # unset: the full 20x16
    with pytest.raises(ConversionError, match=r"size mismatch: rgb 8x6, /cam/info 10x8 \(roi and binning of 20x16\)"):
        frame_from_messages(_image(RGB, "rgb8"), _image(DEPTH_MM, "16UC1"), info, topics=("rgb", "depth", "/cam/info"))
    info.roi = SimpleNamespace(x_offset=8, y_offset=0, width=16, height=12, do_rectify=False)
    with pytest.raises(ConversionError, match=r"/cam/info: roi 16x12 at \(8, 0\) with binning 2x2 does not fit the calibrated 20x16"):
        frame_from_messages(_image(RGB, "rgb8"), _image(DEPTH_MM, "16UC1"), info, topics=("rgb", "depth", "/cam/info"))
