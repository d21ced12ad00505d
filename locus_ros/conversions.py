"""Conversions between ROS messages and the arrays locus_core works on, at the node's edges.

Only message classes are used (no node, no ``rclpy.init``), so all of this is testable offline.
Reading camera messages is ROS-free: decoding lives in ``locus_core.data.formats.ros_messages``
(the bag reader uses it too), the node's checks and warnings in ``locus_core.pipeline.messages``
(bag replay uses them too; the ones the node calls are re-exported here). This module adds what
needs the message classes: building Image/CompressedImage/CameraInfo messages, poses and
transforms ↔ 4x4 float64 matrices (quaternions through ``scipy.spatial.transform.Rotation``, x, y,
z, w order as in ROS), and the node's outputs (pose, place matches, map markers) from the core's results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseWithCovarianceStamped, Quaternion, Transform, Vector3
from locus.msg import PlaceMatch, PlaceMatchArray
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from locus_core.data.formats.ros_messages import ENCODINGS
from locus_core.data.io import depth_to_mm
from locus_core.pipeline.errors import ConversionError
from locus_core.pipeline.messages import (  # noqa: F401  (re-exported: the node's edge in one module)
    distortion_warning,
    registration_warning,
    stamp_to_seconds,
)

if TYPE_CHECKING:  # the mapping code (torch, faiss) stays out of the player's and monitor's imports
    from locus_core.mapping.localizer import PlaceMatch as CorePlaceMatch


def seconds_to_stamp(seconds: float) -> Time:
    """Nearest nanosecond; negative times are clamped to 0 (ROS times are unsigned)."""
    total = max(0, round(seconds * 1e9))
    return Time(sec=total // 1_000_000_000, nanosec=total % 1_000_000_000)


def numpy_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An ``Image`` holding ``array`` (shape and dtype must fit ``encoding``)."""
    if encoding not in ENCODINGS:
        raise ConversionError(f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    dtype, channels = ENCODINGS[encoding]
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
    return numpy_to_image(depth_to_mm(depth_m), "16UC1", header)


def rgb_to_compressed(rgb: np.ndarray, header: Header | None = None, *, quality: int = 90) -> CompressedImage:
    """JPEG ``CompressedImage`` of an (H, W, 3) uint8 RGB image."""
    import cv2

    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ConversionError(f"JPEG encoding of an image of shape {rgb.shape} failed")
    msg = CompressedImage(header=header or Header(), format="rgb8; jpeg compressed bgr8")
    msg.data = encoded.tobytes()
    return msg


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


def pose_message(header: Header, T_map_cam: np.ndarray, covariance: np.ndarray | None) -> PoseWithCovarianceStamped:
    """The camera pose with its (6, 6) covariance (None: the message's zeros, "unknown")."""
    msg = PoseWithCovarianceStamped(header=header)
    msg.pose.pose = matrix_to_pose(T_map_cam)
    if covariance is not None:
        msg.pose.covariance = np.asarray(covariance, dtype=np.float64).reshape(36).tolist()
    return msg


def place_matches_message(header: Header, matches: list[CorePlaceMatch]) -> PlaceMatchArray:
    """The localizer's candidate keyframes, best first."""
    return PlaceMatchArray(header=header, matches=[
        PlaceMatch(
            keyframe_id=int(m.keyframe_id), score=float(m.score), inliers=int(m.inliers),
            keyframe_pose=matrix_to_pose(m.T_map_keyframe),
            # Unverified candidates carry no relative pose: the message's identity default stays.
            **({"relative_pose": matrix_to_pose(m.T_keyframe_query)} if m.T_keyframe_query is not None else {}),
        )
        for m in matches
    ])


def map_markers(header: Header, landmarks: np.ndarray, keyframes: np.ndarray) -> MarkerArray:
    """The map for RViz: landmark points (ns "landmarks", 1 cm, blue) and keyframe positions (ns
    "keyframes", 5 cm spheres, orange), each an (N, 3) array in the map frame."""

    def marker(ns: str, kind: int, xyz: np.ndarray, scale: float, color: tuple[float, float, float]) -> Marker:
        m = Marker(header=header, ns=ns, id=0, type=kind, action=Marker.ADD)
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = scale
        m.color = ColorRGBA(r=color[0], g=color[1], b=color[2], a=1.0)
        m.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in xyz]
        return m

    return MarkerArray(markers=[
        marker("landmarks", Marker.POINTS, landmarks, 0.01, (0.1, 0.6, 1.0)),
        marker("keyframes", Marker.SPHERE_LIST, keyframes, 0.05, (1.0, 0.5, 0.0)),
    ])
