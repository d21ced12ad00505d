"""Conversions between ROS messages and the arrays locus_core works on, at the node's edges.

Only message classes are used (no node, no ``rclpy.init``), so all of this is testable offline.
Supported image encodings: rgb8, bgr8, rgba8, bgra8, mono8 (colour); 16UC1/mono16 (millimetres) and
32FC1 (metres) for depth. Poses and transforms map to 4x4 float64 matrices; quaternions go through
``scipy.spatial.transform.Rotation`` (x, y, z, w order, as in ROS).
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, Vector3
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from locus_ros.errors import ConversionError

# encoding -> (numpy dtype, channels)
_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
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
# A camera driver that publishes unrectified images with this much distortion breaks the pinhole
# model the localizer assumes; smaller coefficients are calibration noise.
DISTORTION_TOLERANCE = 1e-3


def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    """Nearest nanosecond; negative times are clamped to 0 (ROS times are unsigned)."""
    total = max(0, round(seconds * 1e9))
    return Time(sec=total // 1_000_000_000, nanosec=total % 1_000_000_000)


def image_to_numpy(msg: Image, *, what: str = "image") -> np.ndarray:
    """The pixels of ``msg`` as (H, W) or (H, W, C) in the message's own dtype (a copy).

    Row padding (``step`` > width * pixel size) and big-endian data are handled.

    Raises:
        ConversionError: unsupported encoding, or ``data``/``step`` inconsistent with the size;
            the message names ``what`` (the topic) and the offending values.
    """
    if msg.encoding not in _ENCODINGS:
        raise ConversionError(
            f"{what}: unsupported encoding {msg.encoding!r}; supported: {', '.join(_ENCODINGS)}"
        )
    dtype, channels = _ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if height <= 0 or width <= 0:
        raise ConversionError(f"{what}: empty image ({width}x{height})")
    if step < row_bytes:
        raise ConversionError(f"{what}: step {step} is smaller than a row ({width} px x {channels * dtype.itemsize} B)")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise ConversionError(
            f"{what}: {data.size} bytes of data for {width}x{height} {msg.encoding} with step {step} "
            f"(expected {step * height})"
        )
    rows = data.reshape(height, step)[:, :row_bytes]
    byte_order = ">" if msg.is_bigendian else "<"
    pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder(byte_order)).astype(dtype, copy=True)
    return pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)


def rgb_from_image(msg: Image, *, what: str = "rgb") -> np.ndarray:
    """(H, W, 3) uint8 RGB from any colour encoding (mono8 is replicated to three channels)."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise ConversionError(f"{what}: encoding {msg.encoding!r} is not a colour encoding ({', '.join(COLOR_ENCODINGS)})")
    pixels = image_to_numpy(msg, what=what)
    if msg.encoding == "mono8":
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def depth_from_image(msg: Image, *, what: str = "depth") -> np.ndarray:
    """(H, W) float32 metres, NaN where invalid (0 mm; non-finite or non-positive metres)."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ConversionError(f"{what}: encoding {msg.encoding!r} is not a depth encoding ({', '.join(DEPTH_ENCODINGS)})")
    raw = image_to_numpy(msg, what=what)
    if raw.dtype == np.uint16:
        depth = raw.astype(np.float32) * np.float32(1e-3)
        depth[raw == 0] = np.nan
        return depth
    depth = raw.astype(np.float32, copy=False)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def numpy_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An ``Image`` holding ``array`` (shape and dtype must fit ``encoding``)."""
    if encoding not in _ENCODINGS:
        raise ConversionError(f"unsupported encoding {encoding!r}; supported: {', '.join(_ENCODINGS)}")
    dtype, channels = _ENCODINGS[encoding]
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels) or array.dtype != dtype:
        raise ConversionError(
            f"array of shape {array.shape} and dtype {array.dtype} does not fit {encoding} "
            f"({channels} channel(s) of {dtype})"
        )
    array = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<"))
    msg = Image(header=header or Header(), height=array.shape[0], width=array.shape[1], encoding=encoding)
    msg.is_bigendian = 0
    msg.step = array.shape[1] * channels * dtype.itemsize
    msg.data = array.tobytes()
    return msg


def depth_to_image(depth_m: np.ndarray, header: Header | None = None) -> Image:
    """(H, W) float metres, NaN = invalid → 16UC1 millimetres (0 = invalid), as RGB-D drivers publish."""
    mm = np.where(np.isfinite(depth_m), np.round(depth_m * 1000.0), 0.0)
    return numpy_to_image(np.clip(mm, 0, 65535).astype(np.uint16), "16UC1", header)


def rgb_from_compressed(msg: CompressedImage, *, what: str = "rgb/compressed") -> np.ndarray:
    """(H, W, 3) uint8 RGB decoded from a JPEG/PNG ``CompressedImage``."""
    import cv2

    data = np.frombuffer(msg.data, dtype=np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if decoded is None:
        raise ConversionError(f"{what}: cannot decode {data.size} bytes of format {msg.format!r} as an image")
    return np.ascontiguousarray(decoded[:, :, ::-1])


def rgb_to_compressed(rgb: np.ndarray, header: Header | None = None, *, quality: int = 90) -> CompressedImage:
    """JPEG ``CompressedImage`` of an (H, W, 3) uint8 RGB image."""
    import cv2

    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ConversionError(f"JPEG encoding of an image of shape {rgb.shape} failed")
    msg = CompressedImage(header=header or Header(), format="rgb8; jpeg compressed bgr8")
    msg.data = encoded.tobytes()
    return msg


def intrinsics_from_camera_info(msg: CameraInfo, *, what: str = "camera_info") -> np.ndarray:
    """(3, 3) float64 K of a calibrated camera.

    Raises:
        ConversionError: K unset (an uncalibrated camera publishes zeros) or not a pinhole matrix.
    """
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    fx, fy = K[0, 0], K[1, 1]
    if not (np.isfinite(K).all() and fx > 0 and fy > 0 and K[2, 2] == 1.0):
        raise ConversionError(f"{what}: K = {K.ravel().tolist()} is not a calibrated pinhole matrix")
    if msg.width <= 0 or msg.height <= 0:
        raise ConversionError(f"{what}: image size {msg.width}x{msg.height} is not set")
    return K


def distortion_warning(msg: CameraInfo) -> str:
    """Empty when the images can be treated as rectified; otherwise what is wrong, in words."""
    coefficients = np.asarray(msg.d, dtype=np.float64)
    if coefficients.size and np.abs(coefficients).max() > DISTORTION_TOLERANCE:
        return (
            f"camera_info has {msg.distortion_model or 'unknown'} distortion {coefficients.round(4).tolist()}: "
            "subscribe to rectified images (image_proc) for accurate poses"
        )
    return ""


def camera_info_from_intrinsics(K: np.ndarray, width: int, height: int, header: Header | None = None) -> CameraInfo:
    """``CameraInfo`` of an undistorted pinhole camera (plumb_bob with zero coefficients)."""
    K = np.asarray(K, dtype=np.float64)
    msg = CameraInfo(header=header or Header(), width=int(width), height=int(height), distortion_model="plumb_bob")
    msg.k = K.ravel().tolist()
    msg.d = [0.0] * 5
    msg.r = np.eye(3).ravel().tolist()
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = P.ravel().tolist()
    return msg


def _matrix(translation: np.ndarray, quaternion_xyzw: np.ndarray, what: str) -> np.ndarray:
    norm = float(np.linalg.norm(quaternion_xyzw))
    if not (np.isfinite(norm) and norm > 1e-6 and np.isfinite(translation).all()):
        raise ConversionError(f"{what}: invalid rotation {quaternion_xyzw.tolist()} or translation {translation.tolist()}")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(quaternion_xyzw / norm).as_matrix()
    T[:3, 3] = translation
    return T


def _check_se3(T: np.ndarray) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise ConversionError(f"expected a finite (4, 4) rigid transform, got shape {T.shape}")
    return T


def _quaternion(T: np.ndarray) -> Quaternion:
    x, y, z, w = Rotation.from_matrix(T[:3, :3]).as_quat()
    return Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))


def pose_to_matrix(pose: Pose, *, what: str = "pose") -> np.ndarray:
    p, q = pose.position, pose.orientation
    return _matrix(np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w]), what)


def matrix_to_pose(T: np.ndarray) -> Pose:
    T = _check_se3(T)
    return Pose(position=Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])), orientation=_quaternion(T))


def transform_to_matrix(transform: Transform, *, what: str = "transform") -> np.ndarray:
    t, q = transform.translation, transform.rotation
    return _matrix(np.array([t.x, t.y, t.z]), np.array([q.x, q.y, q.z, q.w]), what)


def matrix_to_transform(T: np.ndarray) -> Transform:
    T = _check_se3(T)
    return Transform(
        translation=Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])), rotation=_quaternion(T)
    )
