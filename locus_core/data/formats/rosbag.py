"""ROS bags (rosbag2 sqlite3/MCAP and ROS 1) read with ``rosbags``.

Colour: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) or ``CompressedImage``; depth:
``Image`` 16UC1/mono16 (millimetres) or 32FC1 (metres), or ``compressedDepth`` PNG (not RVL),
registered to the colour camera (e.g. RealSense ``aligned_depth_to_color``); intrinsics from
``CameraInfo`` (binning and ROI applied); all decoded as the node does (``ros_messages``);
camera poses from ``/tf`` + ``/tf_static``: the colour image's ``header.frame_id`` (its optical
frame) in the fixed frame (``map``, else ``world``, or as given), interpolated at the image stamp.
Topics are found from message types and encodings unless given (a raw topic rather than its
image_transport siblings, ``.../compressed``, ``.../compressedDepth``). A recording whose stamps
restart (a restarted simulator or driver) is split where they jump back (``TfSegments``): TF and
depth pairing stay within each run. One pass over the bag at open indexes stamps and TF; images are
read again when a frame is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.data.dataset import PosedDataset
from locus_core.data.errors import DataFileError, FormatError
from locus_core.data.formats.common import check_options, seconds_option
from locus_core.data.formats.ros_messages import (
    COLOR_ENCODINGS,
    DEPTH_ENCODINGS,
    depth_from_image,
    image_size_in_words,
    image_size_of_camera_info,
    intrinsics_from_camera_info,
    rgb_from_message,
)
from locus_core.data.formats.tf import TfSegments, stamp_of
from locus_core.data.frame import PosedFrame
from locus_core.data.poses import check_pose
from locus_core.data.selection import select

log = logging.getLogger(__name__)

BAG_SUFFIXES = (".bag", ".mcap", ".db3")
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF = "tf2_msgs/msg/TFMessage"
FIXED_FRAMES = ("map", "world")
TRANSPORTS = ("compressed", "compressedDepth")  # image_transport siblings of a raw image topic
OPTIONS = ("rgb_topic", "depth_topic", "camera_info_topic", "fixed_frame", "camera_frame", "max_dt")


def detect(path: Path) -> bool:
    if path.is_file():
        return path.suffix in BAG_SUFFIXES
    return path.is_dir() and (path / "metadata.yaml").is_file()


def transport_base(topic: str) -> str:
    """The raw image topic of an image_transport sibling (``/cam/image_raw/compressed`` ->
    ``/cam/image_raw``); any other topic as it is."""
    base, _, last = topic.rpartition("/")
    return base if base and last in TRANSPORTS else topic


def camera_info_topic(image_topic: str) -> str:
    """The CameraInfo topic a driver publishes next to ``image_topic`` (or next to its raw topic)."""
    return transport_base(image_topic).rsplit("/", 1)[0] + "/camera_info"


def prefer_raw(topics: list[str]) -> list[str]:
    """``topics`` less the image_transport siblings of others among them: the same frames, and
    the raw one is lossless."""
    return [t for t in topics if transport_base(t) == t or transport_base(t) not in topics]


@dataclass(frozen=True)
class _Stamped:
    stamp: float  # header stamp, s
    bag_time: int  # bag timestamp, ns (to find the message again)
    frame_id: str
    segment: int  # of TfSegments: the run of a recording whose stamps restart


def _choose(candidates: list[str], prefer: tuple[str, ...], what: str, option: str, path: Path, *, colour: bool) -> str:
    candidates = prefer_raw(candidates)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FormatError(f"{path}: no {what} topic found")
    # "color" is also in RealSense's aligned_depth_to_color topics: no colour camera topic names depth.
    eligible = [c for c in candidates if not (colour and "depth" in c)]
    for word in prefer:
        hits = [c for c in eligible if word in c]
        if len(hits) == 1:
            return hits[0]
    raise FormatError(f"{path}: several {what} topics ({', '.join(candidates)}); choose one with {option}=")


def _check_size(image: np.ndarray, size: tuple[int, int], info: Any, where: str, info_topic: str) -> None:
    """Refuse an (H, W, 3) ``image`` that is not of the ``size`` (H, W) its CameraInfo ``info`` describes."""
    if image.shape[:2] != size:
        raise FormatError(f"{where}: image is {image.shape[1]}x{image.shape[0]} but {info_topic} is for "
                          f"{image_size_in_words(info, size)}")


def bag_reader(path: Path) -> Any:
    """A ``rosbags.highlevel.AnyReader`` of ``path``, not yet opened, that also reads bags without
    message definitions: rosbag2 before Iron (sqlite3 bags of Foxy, Galactic, Humble) stores none,
    and the reader refuses those without a default. The message types read here are the same in
    every distro."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    return AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))


def records(reader: Any, path: Path, connections: list[Any], **window: Any) -> Iterator[tuple[Any, int, bytes]]:
    """``reader.messages(connections, **window)``; a record rosbags cannot read (a chunk whose checksum
    fails, a file cut short) is a DataFileError naming the bag, not rosbags' own error naming none."""
    iterator = iter(reader.messages(connections, **window))
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # rosbags raises assorted types for damaged data
            raise DataFileError(f"{path}: unreadable bag data ({type(exc).__name__}: {exc})") from None
        yield item


def decoded(reader: Any, connection: Any, raw: bytes, path: Path | None = None) -> Any:
    """The message of a record of ``connection`` (anything with ``topic`` and ``msgtype``).

    Raises:
        DataFileError: a corrupt record, naming its topic (and ``path`` when given); rosbags raises
            assorted types.
    """
    try:
        return reader.deserialize(raw, connection.msgtype)
    except Exception as exc:
        where = f"{path}: " if path is not None else ""
        raise DataFileError(f"{where}{connection.topic}: cannot deserialize ({type(exc).__name__}: {exc})") from None


def open(path: Path, frames: str | None = None, **options: Any) -> PosedDataset:
    """Options: ``rgb_topic``, ``depth_topic``, ``camera_info_topic``, ``fixed_frame``, ``camera_frame``
    (override the image's ``header.frame_id``), ``max_dt`` (s, rgb-depth stamp gap, default 0.03)."""
    check_options(options, OPTIONS, str(path))
    max_dt = seconds_option(options, "max_dt", 0.03, str(path))
    try:
        reader = bag_reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for unreadable bags
        raise DataFileError(f"{path}: cannot open bag ({exc})") from None
    try:
        return _index(reader, path, frames, options, max_dt)
    except BaseException:
        reader.close()
        raise


def _choose_topics(
    reader: Any, path: Path, by_topic: dict[str, list[Any]], options: dict[str, Any]
) -> tuple[str, str, str]:
    """(rgb, depth, camera_info) topics: those given in ``options``, else found by type and encoding
    (an image topic's first message tells colour from depth) and by name."""
    topics = ", ".join(f"{t} [{cs[0].msgtype}]" for t, cs in by_topic.items()) or "none"

    def first(topic: str) -> Any:
        for c, _, raw in records(reader, path, by_topic[topic]):
            return decoded(reader, c, raw, path)
        return None

    def kind(topic: str) -> str:
        msgtype = by_topic[topic][0].msgtype
        if msgtype not in (IMAGE, COMPRESSED):
            return ""
        msg = first(topic)
        if msg is None:
            return ""
        if msgtype == COMPRESSED:
            return "depth" if "compresseddepth" in msg.format.lower() else "rgb"
        return "depth" if msg.encoding in DEPTH_ENCODINGS else "rgb" if msg.encoding in COLOR_ENCODINGS else ""

    rgb_topic, depth_topic = options.get("rgb_topic"), options.get("depth_topic")
    for given in (rgb_topic, depth_topic, options.get("camera_info_topic")):
        if given is not None and given not in by_topic:
            raise FormatError(f"{path}: topic {given!r} not in the bag (topics: {topics})")
    if rgb_topic is None or depth_topic is None:
        kinds = {t: kind(t) for t in by_topic}
        if rgb_topic is None:
            candidates = [t for t, k in kinds.items() if k == "rgb"]
            if not candidates:
                raise FormatError(f"{path}: no colour image topic (topics: {topics})")
            rgb_topic = _choose(candidates, ("color", "rgb"), "colour image", "rgb_topic", path, colour=True)
        if depth_topic is None:
            candidates = [t for t, k in kinds.items() if k == "depth"]
            if not candidates:
                raise FormatError(f"{path}: no depth image topic (topics: {topics})")
            depth_topic = _choose(candidates, ("aligned", "registered", "depth"), "depth image", "depth_topic", path,
                                  colour=False)
    info_topic = options.get("camera_info_topic")
    if info_topic is None:
        infos = [t for t, cs in by_topic.items() if cs[0].msgtype == CAMERA_INFO]
        sibling = camera_info_topic(rgb_topic)
        info_topic = sibling if sibling in infos else _choose(infos, ("color", "rgb"), "CameraInfo", "camera_info_topic",
                                                              path, colour=True)
    return rgb_topic, depth_topic, info_topic


def _pair(
    rgbs: list[_Stamped], depths: dict[int, list[_Stamped]], segments: TfSegments, options: dict[str, Any], path: Path,
    max_dt: float,
) -> tuple[str | None, list[tuple[int, _Stamped, _Stamped, np.ndarray | None]]]:
    """The fixed frame of the poses (None: no poses), and each colour image (its position among
    ``rgbs``) with the nearest depth image of its segment within ``max_dt`` and its camera pose
    there; an image without either is left out."""
    for run in depths.values():
        run.sort(key=lambda d: d.stamp)
    depth_stamps = {segment: np.array([d.stamp for d in run]) for segment, run in depths.items()}

    def nearest_depth(rgb: _Stamped) -> _Stamped | None:
        stamps = depth_stamps.get(rgb.segment)
        if stamps is None:
            return None
        j = int(np.searchsorted(stamps, rgb.stamp))
        best = min((n for n in (j - 1, j) if 0 <= n < len(stamps)), key=lambda n: abs(stamps[n] - rgb.stamp))
        return depths[rgb.segment][best] if abs(stamps[best] - rgb.stamp) <= max_dt else None

    fixed = (options.get("fixed_frame") or "").lstrip("/")  # as the lookups strip it
    fixed = fixed or next((f for f in FIXED_FRAMES if f in segments.frames), None)
    if fixed is not None and fixed not in segments.frames:
        raise FormatError(f"{path}: fixed frame {fixed!r} not in TF (frames: {', '.join(sorted(segments.frames))})")
    if fixed is None:
        log.info("%s: no 'map' or 'world' frame in TF; frames have no poses", path)

    kept: list[tuple[int, _Stamped, _Stamped, np.ndarray | None]] = []
    for i, rgb in enumerate(rgbs):
        depth = nearest_depth(rgb)
        if depth is None:
            continue
        T = None
        if fixed is not None:
            T = segments.trees[rgb.segment].lookup(fixed, options.get("camera_frame") or rgb.frame_id, rgb.stamp)
            if T is None:
                continue
            T = check_pose(T, f"{path}: TF {fixed} <- {rgb.frame_id} at {rgb.stamp:.3f}")
        kept.append((i, rgb, depth, T))
    return fixed, kept


def _index(reader: Any, path: Path, frames: str | None, options: dict[str, Any], max_dt: float) -> PosedDataset:
    """One pass over the bag: choose topics, collect stamps and TF, pair depth and poses."""
    # ROS 1 bags hold one connection per publisher: a restarted driver (new callerid) adds another.
    by_topic: dict[str, list[Any]] = {}
    for c in reader.connections:
        by_topic.setdefault(c.topic, []).append(c)
    rgb_topic, depth_topic, info_topic = _choose_topics(reader, path, by_topic, options)

    segments = TfSegments()
    rgbs: list[_Stamped] = []
    depths: dict[int, list[_Stamped]] = {}  # segment -> its depth images
    info = None
    wanted = [c for c in reader.connections if c.topic in (rgb_topic, depth_topic, info_topic)
              or (c.msgtype == TF and c.topic in ("/tf", "/tf_static"))]
    for conn, bag_time, raw in records(reader, path, wanted):
        msg = decoded(reader, conn, raw, path)
        if conn.msgtype == TF:
            segments.add_tf(msg, static=conn.topic == "/tf_static")
            continue
        if conn.topic == info_topic:
            info = info if info is not None else msg
        stamp = stamp_of(msg)
        if conn.topic == rgb_topic:
            rgbs.append(_Stamped(stamp, bag_time, msg.header.frame_id, segments.observe(rgb_topic, stamp)))
        if conn.topic == depth_topic:
            segment = segments.observe(depth_topic, stamp)
            depths.setdefault(segment, []).append(_Stamped(stamp, bag_time, msg.header.frame_id, segment))
    if info is None:
        raise FormatError(f"{path}: no message on CameraInfo topic {info_topic}")
    # For the images' size: a driver's binning or ROI publishes smaller images than the calibration's.
    K = intrinsics_from_camera_info(info, what=f"{path}:{info_topic}")
    size = image_size_of_camera_info(info, what=f"{path}:{info_topic}")
    if not rgbs or not depths:
        raise FormatError(f"{path}: no messages on {rgb_topic if not rgbs else depth_topic}")
    if len(segments.trees) > 1:
        log.info("%s: stamps jump back %d times (a restarted recording): TF and depth paired per run",
                 path, len(segments.trees) - 1)

    fixed, kept = _pair(rgbs, depths, segments, options, path, max_dt)
    if len(kept) < len(rgbs):
        log.info("%s: %d of %d colour images lack depth within %.3f s or a TF pose; skipped",
                 path, len(rgbs) - len(kept), len(rgbs), max_dt)
    if not kept:
        raise FormatError(f"{path}: no colour image on {rgb_topic} has depth on {depth_topic} within "
                          f"{max_dt} s and a pose in {fixed!r}")
    positions = select([k[0] for k in kept], frames, source=str(path))
    chosen = [kept[p] for p in positions]
    # Depth is used as registered to the colour image (one K): depth stamped in another frame (the
    # depth camera's own, not aligned_depth_to_color) puts every 3D point off by the baseline.
    rgb_frame, depth_frame = (chosen[0][n].frame_id.lstrip("/") for n in (1, 2))
    if depth_frame and depth_frame != rgb_frame:
        log.warning("%s: depth on %s is in frame %r, colour on %s in %r: the depth must be registered to "
                    "the colour image (e.g. RealSense aligned_depth_to_color), else every 3D point is off",
                    path, depth_topic, depth_frame, rgb_topic, rgb_frame)
    rgb_conns, depth_conns = by_topic[rgb_topic], by_topic[depth_topic]

    def read(conns: list[Any], item: _Stamped) -> Any:
        for c, _, raw in records(reader, path, conns, start=item.bag_time, stop=item.bag_time + 1):
            msg = decoded(reader, c, raw, path)
            if abs(stamp_of(msg) - item.stamp) < 1e-9:
                return msg
        raise DataFileError(f"{path}: message at {item.bag_time} ns on {conns[0].topic} vanished")

    def color(rgb: _Stamped) -> np.ndarray:
        where = f"{path}:{rgb_topic}@{rgb.stamp:.6f}"
        image = rgb_from_message(read(rgb_conns, rgb), what=where)
        _check_size(image, size, info, where, info_topic)
        return image

    def load(k: int) -> PosedFrame:
        i, rgb, depth, T = chosen[k]
        return PosedFrame(
            rgb=color(rgb),
            depth=depth_from_image(read(depth_conns, depth), what=f"{path}:{depth_topic}@{depth.stamp:.6f}"),
            K=K, T_world_cam=T, frame_id=f"{path.stem}/{i:06d}", index=i, stamp=rgb.stamp,
        ).validate()

    # Read one frame now: a CameraInfo for another image size (wrong intrinsics) or a depth codec not
    # read (RVL) would fail every frame.
    load(0)
    poses = None if fixed is None else np.stack([c[3] for c in chosen])
    return PosedDataset(path=path, name=path.stem, format="rosbag", indices=[c[0] for c in chosen],
                        poses=poses, intrinsics=K, image_size=size, loader=load)
