"""Offline replay of a bag through the code the localizer node runs, with ground truth on the side.

The node's path is: rgb, depth and camera_info → ``locus_core.pipeline.ApproximateTimeSynchronizer``
(same policy and parameters) → ``frame_from_messages`` (same decoding and checks) →
``FrameProcessor.localize`` (the same model engine, map and ``Localizer``). Messages come from
``rosbags`` (rosbag2 sqlite3/MCAP, ROS 1), so no ROS runtime is needed. Unlike the live node nothing
is dropped for lack of time: every synchronised set is localized, or, with ``max_rate_hz``, at most
that many per second of bag time (a robot that relocalizes at a fixed rate; the rest are counted
as throttled and not even deserialised: image and camera_info messages stay serialised, synchronised
by the header stamp read from their first bytes, until a set is localized). Frames can be localized
in parallel (``locus_core.bags.workers.WorkerPool``): the localizer keeps no state between frames,
so the results are those of a serial replay, in the same order; a tracking localizer
(``locus_core.mapping.tracking``) gets windows of stream time, each tracked by one worker.

Ground truth (``gt_frame`` → the image's frame in TF, or a PoseStamped topic) is looked up after the
pass, per *segment* (``locus_core.data.formats.tf.TfSegments``): a stream whose stamp falls more than
``time_jump_s`` behind its newest moves on to a new segment (a looped or restarted recording) with a
fresh TF tree, as the node's TF buffer starts over; each synchronised set belongs to the segment of its
rgb message. Messages the node would skip are skipped here too and counted by reason, and only
those: every set the synchroniser emits is localized, one whose rgb stamp was seen before included.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.bags import topics as tp
from locus_core.bags.errors import BagError
from locus_core.data.errors import DataFileError
from locus_core.data.formats.rosbag import bag_reader, camera_info_topic, decoded, records
from locus_core.data.formats.tf import TfSegments, stamp_of
from locus_core.data.frame import PosedFrame
from locus_core.data.resize import resize_frame
from locus_core.errors import LocusError

log = logging.getLogger(__name__)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF_MSG = "tf2_msgs/msg/TFMessage"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POSE_COVARIANCE = "geometry_msgs/msg/PoseWithCovarianceStamped"  # amcl_pose
ODOMETRY = "nav_msgs/msg/Odometry"  # a simulator's or motion capture's ground-truth odometry
POSE_TYPES = (POSE_STAMPED, POSE_COVARIANCE, ODOMETRY)
GT_CHILD = "ground_truth_pose"  # the pose topic's samples enter the TF tree as this frame


@dataclass(frozen=True)
class ReplayConfig:
    """What to read and how to synchronise (the sync defaults are the node's parameter defaults).

    rgb_topic: "" = ``/camera/color/image_raw`` if present, else its ``/compressed``.
    info_topic: "" = the ``camera_info`` next to the rgb topic (``.../compressed`` stripped).
    gt_frame: fixed frame of the ground truth. gt_topic: a pose topic to take it from instead of TF
    (PoseStamped, PoseWithCovarianceStamped or Odometry, in ``gt_frame``). gt_body_frame: the frame
    whose pose that topic gives, when it is not the camera's (e.g. ``base_link``): the camera's
    ground truth is then that pose composed with TF's ``gt_body_frame`` → camera transform; an
    Odometry's own ``child_frame_id`` where empty, the camera's optical frame for the other types.
    camera_frame: overrides the images' ``header.frame_id`` for the TF lookup.
    odom_frame: the odometry frame in TF ("" = none): a tracking localizer moves the previous pose by
    ``odom_frame`` -> camera at each image's stamp where TF already holds it when the set is read,
    as the node does with its parameter ``odom_frame``.
    rectified: the images are rectified (image_proc's image_rect): intrinsics from camera_info P,
    as the node's parameter ``rectified`` (``frame_from_messages``).
    max_rate_hz: localize at most this many sets per second of bag time (0 = every set).
    """

    rgb_topic: str = ""
    depth_topic: str = tp.DEPTH
    info_topic: str = ""
    gt_frame: str = tp.MAP_FRAME
    gt_topic: str = ""
    gt_body_frame: str = ""
    camera_frame: str = ""
    odom_frame: str = tp.ODOM_FRAME
    rectified: bool = False
    max_rate_hz: float = 0.0
    sync_max_interval: float = 0.05
    sync_queue_size: int = 10
    time_jump_s: float = 1.0
    tf_max_gap_s: float = 0.5

    def __post_init__(self) -> None:
        if self.sync_max_interval <= 0 or self.sync_queue_size < 1 or self.time_jump_s <= 0 or self.tf_max_gap_s <= 0:
            raise ValueError("sync_max_interval, time_jump_s and tf_max_gap_s must be > 0 and sync_queue_size >= 1")
        if not self.max_rate_hz >= 0:
            raise ValueError(f"max_rate_hz must be >= 0 (0 = every set), got {self.max_rate_hz}")


@dataclass
class ReplayFrame:
    """One localized frame: its stamp, segment, the result, the ground truth (None when TF had no
    pose at that time) and ``locus_core.mapping.evaluate.camera_points(frame)`` (for co-visibility
    metrics: ~7 KB per frame instead of its images, so an hour of 30 Hz camera fits in memory)."""

    stamp: float
    segment: int
    camera_frame: str
    points_cam: np.ndarray  # (N, 3) float64
    localization: Any = None  # locus_core.mapping.Localization
    T_gt: np.ndarray | None = None


@dataclass
class ReplayResult:
    frames: list[ReplayFrame]
    topics: dict[str, str]  # role -> topic
    messages: dict[str, int]  # topic -> messages read
    skipped: dict[str, int]  # reason -> synchronised sets not localized
    unreadable: dict[str, int]  # topic -> records that could not be read (no header, corrupt): not sets
    throttled: int  # sets left out by max_rate_hz
    odometry: int  # localized sets given odometry (odom_frame -> camera in TF at their stamp)
    sync: dict[str, int]  # the synchroniser's counters
    segments: int
    bag_duration_s: float  # span of the synchronised image stamps, summed over segments
    wall_s: float
    notes: list[str] = field(default_factory=list)  # the first message of each skip reason and unreadable topic
    warnings: list[str] = field(default_factory=list)  # distorted images, depth not registered to colour

    @property
    def realtime_factor(self) -> float:
        return self.bag_duration_s / self.wall_s if self.wall_s > 0 else float("inf")


@dataclass(frozen=True)
class Serialized:
    """A message kept as the bag stored it until a localized frame needs it."""

    topic: str
    msgtype: str
    raw: bytes
    stamp: float
    segment: int  # of TfSegments, when the message was read


def header_stamp(raw: bytes, ros2: bool) -> float | None:
    """Stamp (s) of a serialised message whose first field is a std_msgs/Header, without
    deserialising it; None when ``raw`` is too short to hold one.

    rosbag2 (CDR): a 4-byte encapsulation header (its second byte odd for little endian), then the
    stamp's int32 sec and uint32 nanosec. ROS 1: uint32 seq, then uint32 secs and nsecs, little endian.
    """
    if len(raw) < 12:
        return None
    order = ("<" if raw[1] & 1 else ">") if ros2 else "<"
    sec, nsec = struct.unpack_from(order + ("iI" if ros2 else "II"), raw, 4)
    return sec + nsec * 1e-9


def open_bag(path: Path) -> Any:
    """An opened ``rosbags.highlevel.AnyReader`` (the caller closes it)."""
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    try:
        reader = bag_reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for unreadable bags
        raise BagError(f"{path}: cannot open bag ({type(exc).__name__}: {exc})") from None
    return reader


def resolve_topics(reader: Any, path: Path, config: ReplayConfig) -> dict[str, str]:
    """role (rgb, depth, info, gt) -> topic, checked against the bag's connections and types."""
    types: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for c in reader.connections:
        types[c.topic] = c.msgtype
        counts[c.topic] += c.msgcount
    listing = ", ".join(f"{t} [{m}]" for t, m in sorted(types.items())) or "none"
    rgb = config.rgb_topic or (tp.RGB if tp.RGB in types else tp.COMPRESSED if tp.COMPRESSED in types else tp.RGB)
    info = config.info_topic or camera_info_topic(rgb)
    wanted = {"rgb": (rgb, (IMAGE, COMPRESSED)), "depth": (config.depth_topic, (IMAGE, COMPRESSED)),
              "info": (info, (CAMERA_INFO,))}
    if config.gt_topic:
        wanted["gt"] = (config.gt_topic, POSE_TYPES)
    for role, (topic, allowed) in wanted.items():
        if topic not in types:
            what = "camera_info (intrinsics are required)" if role == "info" else f"{role} topic"
            raise BagError(f"{path}: {what} {topic} not in the bag (topics: {listing})")
        if types[topic] not in allowed:
            raise BagError(f"{path}: {topic} is {types[topic]}, expected {' or '.join(allowed)}")
        if counts[topic] == 0:
            raise BagError(f"{path}: no message on {topic}" + (" (camera_info is required)" if role == "info" else ""))
    return {role: topic for role, (topic, _) in wanted.items()}


@contextmanager
def _single_threaded() -> Iterator[None]:
    """torch and OpenCV on one thread in this process for the block."""
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def _submitter(
    processor: Any, thread: ThreadPoolExecutor
) -> tuple[Callable[[PosedFrame, np.ndarray | None], Future], int]:
    """(submit, most frames in flight): ``processor.submit`` where it localizes in parallel (a
    ``WorkerPool``, as many as it asks for), else its
    ``localize`` on ``thread`` (one thread: frames are localized in bag order, as a tracker needs,
    while the next set is read and decoded)."""
    if hasattr(processor, "submit"):
        return processor.submit, processor.max_in_flight
    return partial(thread.submit, processor.localize), 2


def replay(
    path: str | Path,
    processor: Any,
    config: ReplayConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay the bag at ``path`` through ``processor`` (a ``locus_core.pipeline.FrameProcessor``
    with a map loaded, or a ``locus_core.bags.workers.WorkerPool``; frames reach it at its
    ``input_size``) and attach ground truth to each localized frame.

    Raises:
        BagError: unreadable bag, missing topics (camera_info included), nothing to localize.
    """
    config = config or ReplayConfig()
    path = Path(path)
    thread = ThreadPoolExecutor(1, thread_name_prefix="localize")
    submit, max_in_flight = _submitter(processor, thread)
    reader = open_bag(path)
    # Frames localized in other processes: the cores are theirs, and the little that is done here
    # (ground-truth points, resizing) ran 3-10x slower on threads waking each other on busy cores.
    threads = _single_threaded() if hasattr(processor, "submit") else nullcontext()
    start = time.perf_counter()
    try:
        with threads:
            run = _Pass(path, reader, resolve_topics(reader, path, config), config, processor.input_size,
                        submit, max_in_flight, progress)
            run.read()
    finally:
        thread.shutdown(wait=True, cancel_futures=True)
        reader.close()
    wall = time.perf_counter() - start
    if not run.frames:
        reasons = "; ".join(run.notes.values()) or f"no rgb/depth/camera_info set within {config.sync_max_interval} s"
        raise BagError(f"{path}: nothing was localized ({reasons})")
    run.attach_ground_truth()
    return run.result(wall)


class _Pass:
    """One pass over a bag: each synchronised set decoded and submitted, the results collected in
    bag order; TF and ground-truth samples into the segments' trees; what was left out, and why."""

    def __init__(
        self, path: Path, reader: Any, topics: dict[str, str], config: ReplayConfig, input_size: tuple[int, int],
        submit: Callable[[PosedFrame, np.ndarray | None], Future], max_in_flight: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        from locus_core.pipeline import ApproximateTimeSynchronizer

        self.path, self.reader, self.topics, self.config, self.input_size = path, reader, topics, config, input_size
        self.submit, self.max_in_flight, self.progress = submit, max_in_flight, progress
        self.names = (topics["rgb"], topics["depth"], topics["info"])
        self.segments = TfSegments(config.time_jump_s, config.tf_max_gap_s)
        self.spans: dict[int, list[float]] = {}  # segment -> [first, last] synchronised image stamp
        self.in_flight: deque[tuple[ReplayFrame, Future]] = deque()  # submitted, in bag order
        self.frames: list[ReplayFrame] = []
        self.messages: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.unreadable: Counter[str] = Counter()
        self.notes: dict[str, str] = {}
        self.last_localized: dict[int, float] = {}  # segment -> stamp, for max_rate_hz
        self.throttled = 0
        self.with_odometry = 0
        self.gt_body = config.gt_body_frame  # the frame whose pose gt_topic gives ("": the camera's)
        self.warnings: list[str] = []  # what makes the results less trustworthy (the node logs the same)
        self.warned: set[str] = set()  # the kinds in warnings: each once, as the node
        self.sync = ApproximateTimeSynchronizer(3, config.sync_max_interval, config.sync_queue_size, self._on_synced)

    def read(self) -> None:
        """Every record: images and camera_info to the synchroniser (serialised), TF and ground truth
        into the trees; then the sets still waiting, and every result."""
        streams = {self.topics["rgb"]: 0, self.topics["depth"]: 1, self.topics["info"]: 2}
        wanted = [c for c in self.reader.connections
                  if c.topic in streams or c.topic == self.topics.get("gt")
                  or (c.msgtype == TF_MSG and c.topic in (tp.TF, tp.TF_STATIC))]
        for conn, _, raw in records(self.reader, self.path, wanted):
            self.messages[conn.topic] += 1
            if conn.topic in streams:
                stamp = header_stamp(raw, self.reader.is2)
                if stamp is None:
                    self._unread(conn.topic, f"{conn.topic}: a {len(raw)}-byte record holds no header")
                    continue
                segment = self.segments.observe(conn.topic, stamp)
                self.sync.add(streams[conn.topic], stamp, Serialized(conn.topic, conn.msgtype, raw, stamp, segment))
                continue
            try:
                msg = decoded(self.reader, conn, raw)
            except DataFileError as exc:
                self._unread(conn.topic, str(exc))
                continue
            if conn.msgtype == TF_MSG:
                self.segments.add_tf(msg, static=conn.topic == tp.TF_STATIC)
            else:
                self._add_ground_truth(conn.msgtype, msg)
        self.sync.flush()  # the bag has ended: sets still waiting for a later message get none
        self._collect(0)

    def _add_ground_truth(self, msgtype: str, msg: Any) -> None:
        stamp = stamp_of(msg)
        pose = msg.pose if msgtype == POSE_STAMPED else msg.pose.pose
        if msgtype == ODOMETRY and not self.gt_body:
            self.gt_body = msg.child_frame_id
        tq = np.array([pose.position.x, pose.position.y, pose.position.z, pose.orientation.x,
                       pose.orientation.y, pose.orientation.z, pose.orientation.w])
        segment = self.segments.observe(self.topics["gt"], stamp)
        self.segments.trees[segment].add(msg.header.frame_id, GT_CHILD, stamp, tq, static=False)

    def _skip(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        self.notes.setdefault(reason, message)

    def _unread(self, topic: str, message: str) -> None:
        # a record, not a set: it never reached the synchroniser (images) or TF (tf, gt)
        self.unreadable[topic] += 1
        self.notes.setdefault(f"unreadable {topic}", message)

    @contextmanager
    def _worker_failure(self, stamp: float) -> Iterator[None]:
        # a worker died (seen at a result, or at the next submit): its reason, and which bag it ended
        try:
            yield
        except BagError as exc:
            raise BagError(f"{self.path}: {exc} (at the frame stamped {stamp:.6f})") from None

    def _collect(self, limit: int) -> None:
        while len(self.in_flight) > limit:
            frame, future = self.in_flight.popleft()
            with self._worker_failure(frame.stamp):
                frame.localization = future.result()
            self.frames.append(frame)
            if self.progress is not None:
                self.progress(len(self.frames))

    def _on_synced(self, *messages: Serialized) -> None:
        from locus_core.mapping.evaluate import camera_points
        from locus_core.pipeline import UnsupportedEncoding, frame_from_messages
        from locus_core.pipeline.messages import distortion_warning, registration_warning

        config = self.config
        stamp, segment = messages[0].stamp, messages[0].segment
        span = self.spans.setdefault(segment, [stamp, stamp])
        span[0], span[1] = min(span[0], stamp), max(span[1], stamp)
        last = self.last_localized.get(segment)
        if config.max_rate_hz > 0 and last is not None and stamp - last < 1.0 / config.max_rate_hz - 1e-6:
            self.throttled += 1
            return
        try:
            rgb, depth, info = (decoded(self.reader, m, m.raw) for m in messages)
            frame, camera_frame = frame_from_messages(
                rgb, depth, info, topics=self.names, camera_frame=config.camera_frame, rectified=config.rectified
            )
        except UnsupportedEncoding as exc:
            self._skip("unknown_encoding", str(exc))
            return
        except LocusError as exc:
            self._skip("bad_message", str(exc))
            return
        # Rectified images are undistorted: their camera_info's D is the raw camera's (as the node).
        distortion = "" if config.rectified else distortion_warning(info)
        checks = {"distortion": f"{self.topics['info']}: {distortion}" if distortion else "",
                  "registration": registration_warning(rgb, depth, topics=self.names[:2])}
        for kind, warning in checks.items():
            if warning and kind not in self.warned:
                self.warned.add(kind)
                self.warnings.append(warning)
                log.warning("%s", warning)
        self.last_localized[segment] = stamp
        tree = self.segments.trees[segment]
        odometry = tree.lookup(config.odom_frame, camera_frame, stamp) if config.odom_frame else None
        self.with_odometry += odometry is not None
        points = camera_points(frame)  # at full size, as `locus map localize` samples its queries
        with self._worker_failure(frame.stamp):
            # shrunk to what the model reads here, as the localizer would: a quarter of the bytes to
            # send to a worker process, and off the localizing thread in one process
            future = self.submit(resize_frame(frame, self.input_size), odometry)
        self.in_flight.append((ReplayFrame(frame.stamp, segment, camera_frame, points), future))
        self._collect(self.max_in_flight - 1)

    def attach_ground_truth(self) -> None:
        """Each frame's ground truth from its segment's tree, now that the whole bag's TF is in."""
        config = self.config
        for f in self.frames:
            tree = self.segments.trees[f.segment]
            if not config.gt_topic:
                f.T_gt = tree.lookup(config.gt_frame, f.camera_frame, f.stamp)
            elif (T_gt_body := tree.lookup(config.gt_frame, GT_CHILD, f.stamp)) is not None:
                T_body_camera = tree.lookup(self.gt_body, f.camera_frame, f.stamp) if self.gt_body else np.eye(4)
                f.T_gt = None if T_body_camera is None else T_gt_body @ T_body_camera
        missing = sum(f.T_gt is None for f in self.frames)
        if missing:
            source = f"{config.gt_topic} ({self.gt_body or 'camera'})" if config.gt_topic else "image frame"
            log.warning("%s: %d of %d frames have no ground truth (%s -> %s) at their stamp", self.path, missing,
                        len(self.frames), config.gt_frame, source)

    def result(self, wall_s: float) -> ReplayResult:
        stats = self.sync.stats
        return ReplayResult(
            frames=self.frames, topics=self.topics, messages=dict(self.messages), skipped=dict(self.skipped),
            unreadable=dict(self.unreadable), throttled=self.throttled, odometry=self.with_odometry,
            sync={"emitted": stats.emitted, "dropped": stats.dropped, "time_jumps": stats.time_jumps},
            segments=len(self.segments.trees),
            bag_duration_s=float(sum(last - first for first, last in self.spans.values())),
            wall_s=wall_s, notes=list(self.notes.values()), warnings=self.warnings,
        )
