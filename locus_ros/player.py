"""`locus_player DATA`: publishes a posed RGB-D recording into a live ROS 2 graph, as a camera
driver plus a localization ground truth would, at its recorded rate (or ``--rate`` times it).

DATA is anything ``locus_core.data.open_dataset`` reads (dataset folders and rosbag2/ROS 1 bags).
Published: /clock (for ``use_sim_time``), colour (rgb8), depth (16UC1 millimetres, 0 = invalid) and
camera_info with one stamp per frame, TF, and the ground-truth camera pose on /ground_truth/pose.
TF (``--tf``): ``map`` publishes map→camera (what mapping mode consumes); ``odom`` publishes the
ground truth as odometry, odom→base_link, plus a static base_link→camera (what localization mode
uses to publish map→odom); ``none`` publishes no TF. Time: recorded stamps (TUM, bags) as they
are, frames of formats without stamps (7-Scenes and its variants, ScanNet, slambook, Matterport)
at ``--fps``; shifted so that none is before 1 s (time 0 is "latest" to tf2, and sim time 0 "not
started" to rclcpp), as ``locus bag convert`` does. With ``--loop`` time keeps increasing across
repetitions, so consumers never see it jump back.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped, TransformStamped
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from locus_core.bags.convert import FIRST_STAMP_S
from locus_core.bags.play import TF_MODES
from locus_core.data.dataset import PosedDataset
from locus_core.data.frame import PosedFrame
from locus_ros import conversions as conv

# Formats whose stamps number the frames (index / 30 Hz, or the index in seconds) rather than
# record when they were taken: played at --fps instead.
UNSTAMPED_FORMATS = ("7scenes", "labelfusion", "synthetic", "scannet", "slambook", "matterport")
# Longest sleep between looks at the stop flag, so Ctrl-C is not held up by a long gap in the data.
SLEEP_SLICE_S = 0.1
# After the camera topics: up to this long for /tf's subscriber, discovered alongside them or soon
# after (a consumer that does not listen to TF is played to once it has passed).
TF_DISCOVERY_S = 2.0


@dataclass(frozen=True)
class PlayerConfig:
    rate: float = 1.0  # playback speed relative to the recording
    loop: bool = False
    tf: str = "map"
    rgb_topic: str = "/camera/color/image_raw"
    depth_topic: str = "/camera/aligned_depth_to_color/image_raw"
    camera_info_topic: str = "/camera/color/camera_info"
    camera_frame: str = "camera_color_optical_frame"
    map_frame: str = "map"
    odom_frame: str = "odom"
    base_frame: str = "base_link"
    compressed: bool = False  # also publish JPEG on <rgb_topic>/compressed
    fps: float = 30.0  # frame rate of formats without stamps; spacing of stamps that do not increase

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if self.tf not in TF_MODES:
            raise ValueError(f"tf must be one of {', '.join(TF_MODES)}, got {self.tf!r}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")


@dataclass
class PlayStats:
    published: int = 0
    late: int = 0  # frames published more than one frame period behind schedule
    loops: int = 0


class Player:
    """Publishes ``dataset`` through ``node``'s publishers; ``play`` blocks until done (or stopped).
    Frames of a ``PosedDataset`` of an UNSTAMPED_FORMATS format are timed by index at ``fps``; any
    other frames by their stamps."""

    def __init__(self, node: Node, dataset: Sequence[PosedFrame], config: PlayerConfig) -> None:
        if len(dataset) == 0:
            raise ValueError("nothing to play: the data set has no frames")
        self.node, self.dataset, self.config = node, dataset, config
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._clock = node.create_publisher(Clock, "/clock", reliable)
        self._rgb = node.create_publisher(Image, config.rgb_topic, reliable)
        self._rgb_jpeg = node.create_publisher(CompressedImage, config.rgb_topic + "/compressed", reliable) if config.compressed else None
        self._depth = node.create_publisher(Image, config.depth_topic, reliable)
        self._info = node.create_publisher(CameraInfo, config.camera_info_topic, reliable)
        self._tf = node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self._tf_static = node.create_publisher(TFMessage, "/tf_static", latched)
        self._truth = node.create_publisher(PoseStamped, "/ground_truth/pose", reliable)
        self.stats = PlayStats()
        self._stopped = False
        self._unstamped = isinstance(dataset, PosedDataset) and dataset.format in UNSTAMPED_FORMATS

    def stop(self) -> None:
        self._stopped = True

    def _transform(self, parent: str, child: str, T: np.ndarray, stamp: float) -> TransformStamped:
        t = TransformStamped(header=Header(stamp=conv.seconds_to_stamp(stamp), frame_id=parent), child_frame_id=child)
        t.transform = conv.matrix_to_transform(T)
        return t

    def _publish(self, frame: PosedFrame, stamp: float) -> None:
        c = self.config
        ros_stamp = conv.seconds_to_stamp(stamp)
        self._clock.publish(Clock(clock=ros_stamp))
        if frame.T_world_cam is not None:
            if c.tf == "map":
                self._tf.publish(TFMessage(transforms=[self._transform(c.map_frame, c.camera_frame, frame.T_world_cam, stamp)]))
            elif c.tf == "odom":  # ground truth as odometry; the camera sits at base_link
                self._tf.publish(TFMessage(transforms=[self._transform(c.odom_frame, c.base_frame, frame.T_world_cam, stamp)]))
            self._truth.publish(PoseStamped(header=Header(stamp=ros_stamp, frame_id=c.map_frame), pose=conv.matrix_to_pose(frame.T_world_cam)))
        header = Header(stamp=ros_stamp, frame_id=c.camera_frame)
        self._rgb.publish(conv.numpy_to_image(frame.rgb, "rgb8", header))
        if self._rgb_jpeg is not None:
            self._rgb_jpeg.publish(conv.rgb_to_compressed(frame.rgb, header))
        if frame.depth is not None:
            self._depth.publish(conv.depth_to_image(frame.depth, header))
        self._info.publish(conv.camera_info_from_intrinsics(frame.K, frame.width, frame.height, header))

    def _camera_publishers(self) -> list:
        # The JPEG one too: a node on rgb_transport: compressed takes colour from it alone.
        return [p for p in (self._rgb, self._rgb_jpeg, self._depth, self._info) if p is not None]

    def wait_for_subscribers(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` s) until colour, depth and camera_info all have a subscriber (each
        topic is matched separately), so the first frames are not published into the void, then
        0.5 s, and while ``tf`` publishes, until /tf has one too (up to ``TF_DISCOVERY_S``). With
        ``compressed``, colour is either topic (a node with rgb_transport: compressed takes only
        the JPEG one)."""
        deadline = time.monotonic() + timeout
        colour = [p for p in (self._rgb, self._rgb_jpeg) if p is not None]
        while time.monotonic() < deadline and not self._stopped:
            if any(p.get_subscription_count() > 0 for p in colour) and all(
                p.get_subscription_count() > 0 for p in (self._depth, self._info)
            ):
                # The subscriber's other endpoints (/clock, ground truth) are discovered alongside; TF
                # published before /tf is matched never reaches it (reliable, volatile): the first
                # frames' odometry would be lost.
                settled = time.monotonic() + 0.5
                tf_deadline = min(deadline, time.monotonic() + TF_DISCOVERY_S)
                while not self._stopped and (time.monotonic() < settled or (
                        self.config.tf != "none" and self._tf.get_subscription_count() == 0 and time.monotonic() < tf_deadline)):
                    time.sleep(0.05)
                return True
            time.sleep(0.05)
        return False

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until reliable subscribers acknowledged everything (before the process exits), up to
        ``timeout`` s in all."""
        # One deadline, not one per publisher: a subscriber that died (a crashed node whose DDS lease
        # has not run out) never acknowledges, and held each topic in turn for the whole timeout.
        deadline = time.monotonic() + timeout
        for publisher in [*self._camera_publishers(), self._clock, self._tf, self._truth]:
            publisher.wait_for_all_acked(Duration(seconds=max(0.0, deadline - time.monotonic())))

    def source_time(self, frame: PosedFrame) -> float:
        """The frame's time in the recording (s): its stamp, or its index at ``fps`` for formats
        whose stamps only number the frames."""
        return frame.index / self.config.fps if self._unstamped else frame.stamp

    def _sleep_until(self, deadline: float) -> None:
        while not self._stopped and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, SLEEP_SLICE_S))

    def play(self) -> PlayStats:
        c = self.config
        if c.tf == "odom":
            static = self._transform(c.base_frame, c.camera_frame, np.eye(4), 0.0)
            self._tf_static.publish(TFMessage(transforms=[static]))
        period = 1.0 / c.fps
        start_wall = time.monotonic()
        start_stamp: float | None = None
        last = -np.inf  # last published stamp: stamps are forced to increase (no stamps, loops)
        while not self._stopped:
            loop_start = None
            for i in range(len(self.dataset)):
                if self._stopped:
                    break
                frame = self.dataset[i]
                t = self.source_time(frame)
                if loop_start is None:  # the first repetition from FIRST_STAMP_S on, the others a period after the last
                    loop_start = max(0.0, FIRST_STAMP_S - t) if start_stamp is None else last + period - t
                stamp = t + loop_start
                stamp = stamp if stamp > last else last + period
                if start_stamp is None:
                    start_stamp = stamp
                due = start_wall + (stamp - start_stamp) / c.rate
                if due - time.monotonic() < -period / c.rate:
                    self.stats.late += 1
                self._sleep_until(due)
                if self._stopped:
                    break
                self._publish(frame, stamp)
                self.stats.published += 1
                last = stamp
            if not c.loop:
                break
            self.stats.loops += 1
        return self.stats


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = PlayerConfig()
    parser = argparse.ArgumentParser(prog="locus_player", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="data set folder or bag (anything `locus data info` reads)")
    parser.add_argument("--frames", help="START:STOP[:STEP] by source frame index")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="playback speed (1 = recorded rate)")
    parser.add_argument("--loop", action="store_true", help="repeat forever (time keeps increasing)")
    parser.add_argument("--tf", choices=TF_MODES, default=defaults.tf, help="map: map→camera; odom: odom→base_link + static base_link→camera")
    parser.add_argument("--compressed", action="store_true", help="also publish JPEG on <rgb topic>/compressed")
    parser.add_argument("--wait", type=float, default=10.0, help="s to wait for a subscriber before playing")
    parser.add_argument("--fps", type=float, default=defaults.fps,
                        help="frame rate of data sets without stamps (7-Scenes, ScanNet, slambook, Matterport, synthetic)")
    for name in ("rgb_topic", "depth_topic", "camera_info_topic", "camera_frame", "map_frame", "odom_frame", "base_frame"):
        parser.add_argument("--" + name.replace("_", "-"), default=getattr(defaults, name))
    return parser.parse_args(argv)


def main(args: list[str] | None = None) -> int:
    from rclpy.utilities import remove_ros_args

    from locus_core.data import open_dataset
    from locus_core.errors import LocusError

    # Our own SIGINT/SIGTERM handling: rclpy's would invalidate the context at once, and a publish
    # already under way would then fail; stopping the player ends the loop between frames.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        options = parse_args(remove_ros_args(args if args is not None else sys.argv)[1:])
        config = PlayerConfig(**{k: v for k, v in vars(options).items() if k not in ("data", "frames", "wait")})
        dataset = open_dataset(options.data, frames=options.frames)
        node = rclpy.create_node("locus_player")
        player = Player(node, dataset, config)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: player.stop())
        if not player.wait_for_subscribers(options.wait):
            node.get_logger().warning(f"nobody subscribes to {config.rgb_topic} after {options.wait} s; playing anyway")
        node.get_logger().info(f"playing {len(dataset)} frames of {dataset.name} ({dataset.format}) at {config.rate}x")
        stats = player.play()
        player.flush()
        node.get_logger().info(f"published {stats.published} frames ({stats.late} late, {stats.loops} loops)")
        node.destroy_node()
    except KeyboardInterrupt:
        pass
    except (LocusError, ValueError) as exc:
        print(f"locus_player: error: {exc}", file=sys.stderr)
        return 2
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
