"""A synchronised set of camera messages → ``PosedFrame``, and warnings about how a camera is
published; reading message fields only (no ROS runtime).

The messages are decoded by ``locus_core.data.formats.ros_messages`` (shared with the bag reader:
rclpy and ``rosbags`` messages, ROS 2 and ROS 1 field names, the encodings it lists); its errors are
raised here as the pipeline's ``UnsupportedEncoding`` and ``ConversionError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from locus_core.data.errors import MessageError, UnsupportedMessage
from locus_core.data.formats.ros_messages import (
    depth_from_image,
    distortion_coefficients,
    image_size_in_words,
    image_size_of_camera_info,
    intrinsics_from_camera_info,
    rgb_from_message,
)
from locus_core.data.frame import PosedFrame
from locus_core.pipeline.errors import ConversionError, UnsupportedEncoding

# A camera driver that publishes unrectified images with this much distortion breaks the pinhole
# model the localizer assumes; smaller coefficients are calibration noise.
DISTORTION_TOLERANCE = 1e-3


def stamp_to_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time (``sec``, ``nanosec``) → seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


@contextmanager
def _pipeline_errors() -> Iterator[None]:
    """The decoder's data-layer errors as the pipeline's, same words: the node and bag replay count
    ``UnsupportedEncoding`` (a configuration problem) apart from other bad messages."""
    try:
        yield
    except UnsupportedMessage as exc:
        raise UnsupportedEncoding(str(exc)) from None
    except MessageError as exc:
        raise ConversionError(str(exc)) from None


def distortion_warning(msg: Any) -> str:
    """Empty when images read with K can be treated as undistorted; otherwise what is wrong, in words."""
    coefficients = distortion_coefficients(msg)
    if coefficients.size and np.abs(coefficients).max() > DISTORTION_TOLERANCE:
        return (
            f"camera_info has {msg.distortion_model or 'unknown'} distortion {coefficients.round(4).tolist()} and the images "
            "are read as undistorted with K: for accurate poses subscribe to rectified images (image_proc's image_rect) "
            "and set the node's parameter rectified: true (intrinsics from P)"
        )
    return ""


def registration_warning(rgb: Any, depth: Any, *, topics: tuple[str, str] = ("rgb", "depth")) -> str:
    """Empty when depth carries the colour image's frame_id; otherwise both frames and topics, in
    words. A warning, not an error: some drivers label depth registered to colour with the depth
    camera's frame."""
    rgb_frame, depth_frame = (m.header.frame_id.lstrip("/") for m in (rgb, depth))
    if depth_frame == rgb_frame:
        return ""
    return (
        f"{topics[1]} is in frame {depth_frame!r} and {topics[0]} in {rgb_frame!r}: depth must be registered to the colour "
        "camera (e.g. aligned_depth_to_color); it is used as if it were"
    )


def frame_from_messages(
    rgb: Any, depth: Any, info: Any, *, topics: tuple[str, str, str] = ("rgb", "depth", "camera_info"), camera_frame: str = "",
    rectified: bool = False,
) -> tuple[PosedFrame, str]:
    """A synchronised rgb (Image or CompressedImage), depth (Image or compressedDepth) and CameraInfo → an unposed
    ``PosedFrame`` stamped with the rgb stamp, and the camera's TF frame (``camera_frame`` when
    given, else the rgb header's ``frame_id``). ``topics`` name the inputs in error messages;
    ``rectified``: see ``intrinsics_from_camera_info``.

    Raises:
        UnsupportedEncoding: an encoding that is not read. ConversionError: anything else that makes
            the set unusable (sizes disagree, no frame id, uncalibrated camera, corrupt data).
    """
    frame_id = camera_frame or rgb.header.frame_id.lstrip("/")
    if not frame_id:
        raise ConversionError(f"{topics[0]}: empty header.frame_id, cannot place the camera in TF")
    stamp = stamp_to_seconds(rgb.header.stamp)
    with _pipeline_errors():
        image = rgb_from_message(rgb, what=topics[0])
        depth_m = depth_from_image(depth, what=topics[1])
        K = intrinsics_from_camera_info(info, what=topics[2], rectified=rectified)
        size = image_size_of_camera_info(info, what=topics[2])
    # Named by topic: remapped, "rgb" and "depth" do not say which driver output is at fault.
    rgb_size = f"{topics[0]} {image.shape[1]}x{image.shape[0]}"
    if depth_m.shape != image.shape[:2]:
        raise ConversionError(
            f"size mismatch: {rgb_size}, {topics[1]} {depth_m.shape[1]}x{depth_m.shape[0]} (register depth to colour)"
        )
    if size != image.shape[:2]:
        raise ConversionError(f"size mismatch: {rgb_size}, {topics[2]} {image_size_in_words(info, size)}")
    frame = PosedFrame(rgb=image, depth=depth_m, K=K, T_world_cam=None, frame_id=f"{frame_id}@{stamp:.6f}", stamp=stamp)
    return frame, frame_id
