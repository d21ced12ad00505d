"""Camera messages → arrays and intrinsics without ROS: plain objects with the message fields stand
in for rclpy and rosbags messages (ROS 1 CameraInfo spells K, D and P in capitals)."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from locus_core.data import DataError
from locus_core.data.errors import MessageError, UnsupportedMessage
from locus_core.data.formats.ros_messages import (
    depth_from_image,
    distortion_coefficients,
    image_size_in_words,
    image_size_of_camera_info,
    intrinsics_from_camera_info,
    rgb_from_image,
    rgb_from_message,
)

DEPTH_MM = np.full((6, 8), 1500, np.uint16)


def _image(array: np.ndarray, encoding: str) -> SimpleNamespace:
    h, w = array.shape[:2]
    rows = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(h, -1).view(np.uint8)
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=0, step=rows.shape[1],
                           data=rows.ravel())  # rosbags holds data as a uint8 array


def _compressed_depth(fmt: str, data: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=data)


def test_depth_invalid_values_become_nan() -> None:
    metres = np.array([[1.0, 0.0, -1.0, np.inf]], np.float32)
    depth = depth_from_image(_image(metres, "32FC1"))
    assert depth[0, 0] == 1.0 and np.isnan(depth[0, 1:]).all()


def test_compressed_depth_as_image_transport_records_it() -> None:
    ok, png = cv2.imencode(".png", DEPTH_MM)
    assert ok
    data = np.concatenate([np.zeros(12, np.uint8), png.ravel()])  # a 12-byte configuration header first
    np.testing.assert_allclose(depth_from_image(_compressed_depth("16UC1; compressedDepth png", data)), 1.5)
    with pytest.raises(UnsupportedMessage, match="compressed depth '32FC1; compressedDepth rvl' is not read"):
        depth_from_image(_compressed_depth("32FC1; compressedDepth rvl", data))
    with pytest.raises(MessageError, match="cannot decode"):
        depth_from_image(_compressed_depth("16UC1; compressedDepth png", np.zeros(20, np.uint8)))
    # RVL, the other codec of ROS 2's compressed_depth_image_transport: a codec not read, not corrupt data
    with pytest.raises(UnsupportedMessage, match=r"/depth: compressed depth '16UC1; compressedDepth rvl' is not read "
                                                 r"\(16UC1 compressedDepth png only\)"):
        depth_from_image(_compressed_depth("16UC1; compressedDepth rvl", np.arange(40, dtype=np.uint8)), what="/depth")


def test_broken_image_messages_name_their_source() -> None:
    """``what`` names the topic (and the bag file, for the bag reader); the errors are the data layer's."""
    truncated = _image(np.zeros((2, 2, 3), np.uint8), "rgb8")
    truncated.data = truncated.data[:-2]
    with pytest.raises(MessageError, match=r"bag:/rgb@1\.0: 10 bytes of data for 2x2 rgb8 with step 6 \(expected 12\)"):
        rgb_from_image(truncated, what="bag:/rgb@1.0")
    png8 = cv2.imencode(".png", np.full((2, 2), 7, np.uint8))[1].ravel()
    eight_bit = _compressed_depth("16UC1; compressedDepth png", np.concatenate([np.zeros(12, np.uint8), png8]))
    with pytest.raises(MessageError, match=r"bag:/depth@1\.0: cannot decode .* as a 16-bit PNG"):
        depth_from_image(eight_bit, what="bag:/depth@1.0")
    with pytest.raises(DataError, match="not a colour encoding"):
        rgb_from_message(_image(DEPTH_MM, "16UC1"))


def test_jpeg_and_raw_colour_decode_alike() -> None:
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:, :4] = (200, 30, 10)
    png = SimpleNamespace(format="rgb8; png compressed bgr8", data=cv2.imencode(".png", rgb[:, :, ::-1])[1].ravel())
    np.testing.assert_array_equal(rgb_from_message(png), rgb)
    np.testing.assert_array_equal(rgb_from_message(_image(rgb[:, :, ::-1], "bgr8")), rgb)


@pytest.mark.parametrize("ros1", [False, True])
def test_binning_and_roi_give_the_intrinsics_and_size_of_the_images(ros1: bool) -> None:
    """A driver's binning and ROI (image_proc's crop_decimate too) keep the full sensor's calibration
    and size in CameraInfo: the images' pixel (u, v) is the sensor's (2u + 4, 2v + 2)."""
    full = np.array([[50.0, 0, 7.5], [0, 50.0, 5.5], [0, 0, 1]])
    calibration = {"K": full.ravel(), "D": np.zeros(5)} if ros1 else {"k": full.ravel(), "d": np.zeros(5)}
    info = SimpleNamespace(width=20, height=16, binning_x=2, binning_y=2, **calibration,
                           roi=SimpleNamespace(x_offset=4, y_offset=2, width=16, height=12, do_rectify=False))
    K = intrinsics_from_camera_info(info)
    point = np.array([0.3, -0.2, 2.0])
    u_full, v_full = (full @ point / point[2])[:2]
    u, v = (K @ point / point[2])[:2]
    assert (2 * u + 4, 2 * v + 2) == pytest.approx((u_full, v_full))
    assert image_size_of_camera_info(info) == (6, 8)
    assert image_size_in_words(info, (6, 8)) == "8x6 (roi and binning of 20x16)"
    assert distortion_coefficients(info).shape == (5,)
    info.roi = SimpleNamespace(x_offset=8, y_offset=0, width=16, height=12, do_rectify=False)
    with pytest.raises(MessageError, match=r"bag:/info: roi 16x12 at \(8, 0\) with binning 2x2 does not fit the calibrated 20x16"):
        image_size_of_camera_info(info, what="bag:/info")


def test_camera_info_without_binning_or_roi_describes_the_full_size() -> None:
    """ROS defaults: binning 0 means 1, an all-zero ROI the full image (and a message may lack both)."""
    K = np.array([[50.0, 0, 3.5], [0, 50.0, 2.5], [0, 0, 1]])
    zeros = SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0, do_rectify=False)
    for info in (SimpleNamespace(width=8, height=6, k=K.ravel(), binning_x=0, binning_y=0, roi=zeros),
                 SimpleNamespace(width=8, height=6, k=K.ravel())):
        np.testing.assert_array_equal(intrinsics_from_camera_info(info), K)
        assert image_size_of_camera_info(info) == (6, 8) and image_size_in_words(info, (6, 8)) == "8x6"
