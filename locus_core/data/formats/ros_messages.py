"""Camera messages → numpy arrays and intrinsics, reading message fields only (no ROS runtime).

The one decoder of ``sensor_msgs`` camera messages: the bag reader (``rosbag``) and the pipeline
(the node, ``locus bag eval``) both use it. Works on rclpy messages and on ``rosbags`` ones (ROS 2
and ROS 1: ``K``/``D``/``P`` are accepted for ``k``/``d``/``p``). Colour encodings: rgb8, bgr8,
rgba8, bgra8, mono8, and CompressedImage (JPEG/PNG); depth: 16UC1/mono16 (millimetres, 0 = invalid),
32FC1 (metres) and 16UC1 compressedDepth PNG. Errors are ``MessageError``s (``UnsupportedMessage``
for an encoding or codec not read) naming ``what``: the caller's topic, and file if any.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from locus_core.data.errors import MessageError, UnsupportedMessage
from locus_core.data.io import depth_from_raw

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")


def _field(msg: Any, ros2: str, ros1: str) -> Any:
    return getattr(msg, ros2) if hasattr(msg, ros2) else getattr(msg, ros1)


def is_compressed(msg: Any) -> bool:
    """A CompressedImage (it has ``format``; an Image has ``encoding``)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def image_to_numpy(msg: Any, *, what: str = "image") -> np.ndarray:
    """The pixels of an Image as (H, W) or (H, W, C) in the message's own dtype (a copy).

    Row padding (``step`` > width * pixel size) and big-endian data are handled.

    Raises:
        UnsupportedMessage: an encoding not in ``ENCODINGS``.
        MessageError: ``data``/``step`` inconsistent with the size; names ``what`` (the topic).
    """
    if msg.encoding not in ENCODINGS:
        raise UnsupportedMessage(f"{what}: unsupported encoding {msg.encoding!r}; supported: {', '.join(ENCODINGS)}")
    dtype, channels = ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if height <= 0 or width <= 0:
        raise MessageError(f"{what}: empty image ({width}x{height})")
    if step < row_bytes:
        raise MessageError(f"{what}: step {step} is smaller than a row ({width} px x {channels * dtype.itemsize} B)")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise MessageError(
            f"{what}: {data.size} bytes of data for {width}x{height} {msg.encoding} with step {step} "
            f"(expected {step * height})"
        )
    rows = data.reshape(height, step)[:, :row_bytes]
    byte_order = ">" if msg.is_bigendian else "<"
    pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder(byte_order)).astype(dtype, copy=True)
    return pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)


def rgb_from_image(msg: Any, *, what: str = "rgb") -> np.ndarray:
    """(H, W, 3) uint8 RGB from any colour encoding (mono8 is replicated to three channels)."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise UnsupportedMessage(f"{what}: encoding {msg.encoding!r} is not a colour encoding ({', '.join(COLOR_ENCODINGS)})")
    pixels = image_to_numpy(msg, what=what)
    if msg.encoding == "mono8":
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def rgb_from_compressed(msg: Any, *, what: str = "rgb/compressed") -> np.ndarray:
    """(H, W, 3) uint8 RGB decoded from a JPEG/PNG CompressedImage."""
    import cv2

    data = np.frombuffer(msg.data, dtype=np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if decoded is None:
        raise MessageError(f"{what}: cannot decode {data.size} bytes of format {msg.format!r} as an image")
    return np.ascontiguousarray(decoded[:, :, ::-1])


def rgb_from_message(msg: Any, *, what: str = "rgb") -> np.ndarray:
    """(H, W, 3) uint8 RGB from an Image or a CompressedImage."""
    return rgb_from_compressed(msg, what=what) if is_compressed(msg) else rgb_from_image(msg, what=what)


def depth_from_image(msg: Any, *, what: str = "depth") -> np.ndarray:
    """(H, W) float32 metres, NaN where invalid (0 mm; non-finite or non-positive metres), from an
    Image or a 16UC1 compressedDepth CompressedImage (what ``image_transport`` records)."""
    if is_compressed(msg):
        raw = _compressed_depth(msg, what)
    elif msg.encoding not in DEPTH_ENCODINGS:
        raise UnsupportedMessage(f"{what}: encoding {msg.encoding!r} is not a depth encoding ({', '.join(DEPTH_ENCODINGS)})")
    else:
        raw = image_to_numpy(msg, what=what)
    if raw.dtype == np.uint16:  # the data readers' conversion, so a bag's frames equal the folder's to the bit
        return depth_from_raw(raw, 1000.0)
    depth = raw.astype(np.float32, copy=False)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def _compressed_depth(msg: Any, what: str) -> np.ndarray:
    """(H, W) uint16 millimetres of a 16UC1 compressedDepth PNG."""
    import cv2

    fmt = msg.format.lower()
    # ROS 2's compressed_depth_image_transport also writes RVL ("... compressedDepth rvl"): not a
    # PNG, a codec this reader lacks, not corrupt data.
    if "compresseddepth" not in fmt or "16uc1" not in fmt or "rvl" in fmt:
        raise UnsupportedMessage(f"{what}: compressed depth {msg.format!r} is not read (16UC1 compressedDepth png only)")
    # compressedDepth prefixes the PNG with a 12-byte configuration header.
    data = np.frombuffer(msg.data, dtype=np.uint8)[12:]
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise MessageError(f"{what}: cannot decode {data.size} bytes of {msg.format!r} as a 16-bit PNG")
    return raw


def intrinsics_from_camera_info(msg: Any, *, what: str = "camera_info", rectified: bool = False) -> np.ndarray:
    """(3, 3) float64 intrinsics of a calibrated camera: K of the raw images, or with ``rectified``
    P[:3, :3], those of the rectified images (image_proc's image_rect; the ROS convention); both
    for the images' size (``image_size_of_camera_info``: ROI and binning applied).

    Raises:
        MessageError: the matrix unset (an uncalibrated camera publishes zeros) or not a pinhole
            matrix; with ``rectified``, P of a stereo pair's second camera (a monocular P has
            Tx = Ty = 0); a ROI outside the calibrated image.
    """
    if rectified:
        P = np.asarray(_field(msg, "p", "P"), dtype=np.float64).reshape(3, 4)
        if P[0, 3] != 0 or P[1, 3] != 0:
            raise MessageError(
                f"{what}: P has Tx, Ty = {P[0, 3]}, {P[1, 3]}: a stereo pair's second camera; rectified images must be monocular"
            )
        K, name = P[:, :3], "P[:3, :3]"
    else:
        K, name = np.asarray(_field(msg, "k", "K"), dtype=np.float64).reshape(3, 3), "K"
    fx, fy = K[0, 0], K[1, 1]
    if not (np.isfinite(K).all() and fx > 0 and fy > 0 and K[2, 2] == 1.0):
        raise MessageError(f"{what}: {name} = {K.ravel().tolist()} is not a calibrated pinhole matrix")
    if msg.width <= 0 or msg.height <= 0:
        raise MessageError(f"{what}: image size {msg.width}x{msg.height} is not set")
    # K and P are for the full sensor (width x height); a driver's binning or ROI, or image_proc's
    # crop_decimate, publish smaller images with the same calibration and binning/roi set. The
    # images' intrinsics follow as image_geometry (and image_proc's rectification) derive them.
    (x0, y0, _, _), (bx, by) = _roi_and_binning(msg, what)
    K = K.copy()
    K[0, 2] -= x0
    K[1, 2] -= y0
    K[0] /= bx
    K[1] /= by
    return K


def image_size_of_camera_info(msg: Any, *, what: str = "camera_info") -> tuple[int, int]:
    """(height, width) of the images ``msg`` describes: its ROI (the full size when unset) divided
    by its binning."""
    (_, _, width, height), (bx, by) = _roi_and_binning(msg, what)
    return height // by, width // bx


def image_size_in_words(msg: Any, size: tuple[int, int]) -> str:
    """``size`` (height, width), of the images ``msg`` describes, as ``WxH`` for an error message,
    followed by the calibrated size when ROI or binning make the two differ."""
    height, width = size
    full = "" if size == (int(msg.height), int(msg.width)) else f" (roi and binning of {msg.width}x{msg.height})"
    return f"{width}x{height}{full}"


def _roi_and_binning(msg: Any, what: str) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """((x_offset, y_offset, width, height) of the ROI in full-resolution pixels, (binning_x,
    binning_y)), with the ROS defaults: binning 0 is 1, an all-zero ROI the full image."""
    bx, by = (max(int(getattr(msg, key, 0)), 1) for key in ("binning_x", "binning_y"))
    roi = getattr(msg, "roi", None)
    x0, y0, width, height = (0, 0, 0, 0) if roi is None else (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
    if (x0, y0, width, height) == (0, 0, 0, 0):
        width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0 or x0 + width > msg.width or y0 + height > msg.height or width < bx or height < by:
        raise MessageError(
            f"{what}: roi {width}x{height} at ({x0}, {y0}) with binning {bx}x{by} does not fit the calibrated {msg.width}x{msg.height}"
        )
    return (x0, y0, width, height), (bx, by)


def distortion_coefficients(msg: Any) -> np.ndarray:
    """(N,) float64 distortion coefficients D of a CameraInfo (N = 0 when unset)."""
    return np.asarray(_field(msg, "d", "D"), dtype=np.float64)
