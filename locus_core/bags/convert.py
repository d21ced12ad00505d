"""A posed RGB-D data set written as the rosbag2 an RGB-D camera on a robot would record.

Per frame, at one stamp: ``/camera/color/image_raw`` (rgb8), ``/camera/aligned_depth_to_color/
image_raw`` (16UC1 mm, 0 = invalid), ``/camera/color/camera_info`` (plumb_bob, zero distortion),
``/tf`` and ``/ground_truth/pose`` (PoseStamped of the optical frame in ``map``), optionally a JPEG
``CompressedImage``. Once, first: ``/tf_static`` (transient local, as drivers latch it). The ground
truth in TF is ``map -> camera_link`` (+ static ``camera_link -> camera_color_optical_frame``), or
with ``odom_chain`` ``map -> odom -> base_link`` (+ static ``base_link -> camera_link -> optical``).
Stamps are the data set's while they increase, else +1/30 s; none is before 1 s, since time 0
means "latest" to tf2. Written with ``rosbags`` (no ROS runtime) into a temporary directory
renamed into place when complete, so an interrupted run leaves no half bag at ``out``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.bags import topics as tp
from locus_core.bags.errors import BagError
from locus_core.data.frame import PosedFrame
from locus_core.data.io import depth_to_mm

STORAGES = ("mcap", "sqlite3")
NOMINAL_RATE_HZ = 30.0
FIRST_STAMP_S = 1.0


@dataclass(frozen=True)
class ConvertSummary:
    path: Path
    frames: int
    duration_s: float
    topics: dict[str, int]  # messages per topic


class _Clock:
    """Stamps in one pass: the frame's own while they increase, else the previous one + 1/30 s;
    all shifted by one offset so that the first is at least ``FIRST_STAMP_S``."""

    def __init__(self) -> None:
        self.offset: float | None = None
        self.last: float | None = None

    def __call__(self, frame_stamp: float) -> float:
        if self.offset is None:
            self.offset = max(0.0, FIRST_STAMP_S - frame_stamp)
        stamp = frame_stamp + self.offset
        if self.last is not None and stamp <= self.last:
            stamp = self.last + 1.0 / NOMINAL_RATE_HZ
        self.last = stamp
        return stamp


class Messages:
    """Builders of the ROS 2 messages from arrays, on a rosbags typestore."""

    def __init__(self) -> None:
        from rosbags.typesys import Stores, get_typestore

        self.store = get_typestore(Stores.ROS2_KILTED)
        self.T = self.store.types

    def serialize(self, msg: Any) -> bytes:
        return self.store.serialize_cdr(msg, msg.__msgtype__)

    def header(self, stamp: float, frame: str) -> Any:
        ns = int(round(stamp * 1e9))
        return self.T["std_msgs/msg/Header"](
            stamp=self.T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id=frame
        )

    def _pose_parts(self, T: np.ndarray) -> tuple[Any, Any]:
        from scipy.spatial.transform import Rotation

        x, y, z, w = Rotation.from_matrix(T[:3, :3]).as_quat()
        return T[:3, 3], self.T["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w))

    def transform(self, stamp: float, parent: str, child: str, T: np.ndarray) -> Any:
        t, q = self._pose_parts(T)
        vector = self.T["geometry_msgs/msg/Vector3"](x=float(t[0]), y=float(t[1]), z=float(t[2]))
        return self.T["geometry_msgs/msg/TransformStamped"](
            header=self.header(stamp, parent), child_frame_id=child,
            transform=self.T["geometry_msgs/msg/Transform"](translation=vector, rotation=q),
        )

    def tf(self, transforms: list[Any]) -> Any:
        return self.T["tf2_msgs/msg/TFMessage"](transforms=transforms)

    def pose(self, stamp: float, frame: str, T: np.ndarray) -> Any:
        t, q = self._pose_parts(T)
        point = self.T["geometry_msgs/msg/Point"](x=float(t[0]), y=float(t[1]), z=float(t[2]))
        return self.T["geometry_msgs/msg/PoseStamped"](
            header=self.header(stamp, frame), pose=self.T["geometry_msgs/msg/Pose"](position=point, orientation=q)
        )

    def image(self, stamp: float, frame: str, pixels: np.ndarray, encoding: str) -> Any:
        pixels = np.ascontiguousarray(pixels)
        height, width = pixels.shape[:2]
        return self.T["sensor_msgs/msg/Image"](
            header=self.header(stamp, frame), height=height, width=width, encoding=encoding, is_bigendian=0,
            step=pixels.strides[0], data=pixels.view(np.uint8).reshape(-1),
        )

    def compressed(self, stamp: float, frame: str, rgb: np.ndarray, quality: int) -> Any:
        import cv2

        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise BagError(f"JPEG encoding of a {rgb.shape} image failed")
        return self.T["sensor_msgs/msg/CompressedImage"](
            header=self.header(stamp, frame), format="rgb8; jpeg compressed bgr8", data=encoded.reshape(-1)
        )

    def camera_info(self, stamp: float, frame: str, K: np.ndarray, height: int, width: int) -> Any:
        P = np.zeros((3, 4))
        P[:, :3] = K
        return self.T["sensor_msgs/msg/CameraInfo"](
            header=self.header(stamp, frame), height=height, width=width, distortion_model="plumb_bob",
            d=np.zeros(5), k=np.asarray(K, np.float64).reshape(9), r=np.eye(3).reshape(9), p=P.reshape(12),
            binning_x=0, binning_y=0,
            roi=self.T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )


def _latched_qos() -> list[Any]:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(sec=0, nsec=0)
    return [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, never, never,
                QosLiveliness.AUTOMATIC, never, False)]


@dataclass(frozen=True)
class BagMessage:
    """One record to write: topic, bag time (s; the header stamp for what ``frame_messages`` makes),
    a rosbags message, and the QoS offered (transient local for latched topics)."""

    topic: str
    time: float
    msg: Any
    latched: bool = False


def frame_messages(
    frames: Sequence[PosedFrame],
    msgs: Messages,
    *,
    compressed: bool = False,
    jpeg_quality: int = 90,
    odom_chain: bool = False,
    size: tuple[int, int] | None = None,
) -> Iterator[BagMessage]:
    """The camera driver's and TF's messages for each frame, in recording order (see the module doc).

    Raises:
        BagError: a frame without a pose.
    """
    from locus_core.data.resize import resize_frame

    clock = _Clock()
    T_optical_link = np.linalg.inv(tp.T_LINK_OPTICAL)
    for k in range(len(frames)):
        frame = frames[k]
        if frame.T_world_cam is None:
            raise BagError(f"frame {frame.frame_id!r} has no pose; the bag needs ground truth")
        if size is not None and (frame.height, frame.width) != tuple(size):
            frame = resize_frame(frame, tuple(size))
        t = clock(frame.stamp)
        if k == 0:
            statics = [msgs.transform(t, tp.CAMERA_LINK, tp.OPTICAL_FRAME, tp.T_LINK_OPTICAL)]
            if odom_chain:
                statics.append(msgs.transform(t, tp.BASE_FRAME, tp.CAMERA_LINK, tp.T_BASE_LINK))
            yield BagMessage(tp.TF_STATIC, t, msgs.tf(statics), latched=True)
        T_map_link = frame.T_world_cam @ T_optical_link
        if odom_chain:
            # A drift-free odometry: map -> odom stays the identity, odom -> base_link carries the motion.
            T_odom_base = T_map_link @ np.linalg.inv(tp.T_BASE_LINK)
            transforms = [msgs.transform(t, tp.MAP_FRAME, tp.ODOM_FRAME, np.eye(4)),
                          msgs.transform(t, tp.ODOM_FRAME, tp.BASE_FRAME, T_odom_base)]
        else:
            transforms = [msgs.transform(t, tp.MAP_FRAME, tp.CAMERA_LINK, T_map_link)]
        yield BagMessage(tp.TF, t, msgs.tf(transforms))
        yield BagMessage(tp.CAMERA_INFO, t, msgs.camera_info(t, tp.OPTICAL_FRAME, frame.K, frame.height, frame.width))
        yield BagMessage(tp.RGB, t, msgs.image(t, tp.OPTICAL_FRAME, frame.rgb, "rgb8"))
        if compressed:
            yield BagMessage(tp.COMPRESSED, t, msgs.compressed(t, tp.OPTICAL_FRAME, frame.rgb, jpeg_quality))
        depth = np.zeros((frame.height, frame.width), np.uint16) if frame.depth is None else depth_to_mm(frame.depth)
        yield BagMessage(tp.DEPTH, t, msgs.image(t, tp.OPTICAL_FRAME, depth, "16UC1"))
        yield BagMessage(tp.GROUND_TRUTH, t, msgs.pose(t, tp.MAP_FRAME, frame.T_world_cam))


def write_messages(out: str | Path, messages: Iterable[BagMessage], msgs: Messages, *, storage: str = "mcap") -> dict[str, int]:
    """Write ``messages`` to the new rosbag2 directory ``out``: into a temporary sibling first, renamed
    into place when complete. Returns messages per topic.

    Raises:
        BagError: ``out`` exists, unknown storage, nothing to write, a write failure.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    out = Path(out)
    if storage not in STORAGES:
        raise BagError(f"storage {storage!r} not supported ({', '.join(STORAGES)})")
    if out.exists():
        raise BagError(f"{out} already exists: remove it or choose another --out")
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    counts: dict[str, int] = {}
    try:
        staging.mkdir(parents=True)  # in the try: an --out under a file or a read-only folder is a one-line error
        writer = Writer(staging / out.name, version=8,
                        storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
        with writer:
            connections: dict[str, Any] = {}
            for m in messages:
                if m.topic not in connections:
                    connections[m.topic] = writer.add_connection(
                        m.topic, m.msg.__msgtype__, typestore=msgs.store, offered_qos_profiles=_latched_qos() if m.latched else ())
                writer.write(connections[m.topic], int(round(m.time * 1e9)), msgs.serialize(m.msg))
                counts[m.topic] = counts.get(m.topic, 0) + 1
        if not counts:
            raise BagError(f"{out}: no messages to write")
        os.replace(staging / out.name, out)
    except (OSError, sqlite3.Error) as exc:  # sqlite3 storage reports a full disk as sqlite3.OperationalError
        raise BagError(f"{out}: writing the bag failed ({exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def write_bag(
    frames: Sequence[PosedFrame],
    out: str | Path,
    *,
    storage: str = "mcap",
    compressed: bool = False,
    jpeg_quality: int = 90,
    odom_chain: bool = False,
    size: tuple[int, int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConvertSummary:
    """Write ``frames`` (posed, with depth) to the rosbag2 directory ``out`` (must not exist).

    Args:
        frames: a ``PosedDataset`` or any sequence of frames with ``T_world_cam`` (camera-to-map).
        storage: "mcap" or "sqlite3".
        compressed: also write a JPEG ``CompressedImage`` of the colour image.
        odom_chain: ground truth as ``map -> odom -> base_link -> camera_link`` instead of ``map -> camera_link``.
        size: (H, W) to resize the frames to (``resize_frame``: K scaled, depth nearest).
        progress: called with the number of frames written so far.

    Raises:
        BagError: ``out`` exists, unknown storage, no frames, a size not positive, a frame without a pose,
            a write failure.
    """
    out = Path(out)
    if len(frames) == 0:
        raise BagError(f"{out}: no frames to write")
    if size is not None and not (size[0] > 0 and size[1] > 0):  # else resize_frame's ValueError, a traceback
        raise BagError(f"--size must be positive (H W), got {size[0]} {size[1]}")
    msgs = Messages()
    span: list[float] = []

    def watched() -> Iterator[BagMessage]:
        for m in frame_messages(frames, msgs, compressed=compressed, jpeg_quality=jpeg_quality,
                                odom_chain=odom_chain, size=size):
            if m.topic == tp.RGB:
                span.append(m.time)
                if progress is not None:
                    progress(len(span))
            yield m

    counts = write_messages(out, watched(), msgs, storage=storage)
    return ConvertSummary(path=out, frames=len(span), duration_s=span[-1] - span[0], topics=counts)
