"""The camera side of ``locus bench node``: publishes RGB-D frames at a fixed rate, stamped with the
wall clock, into a running localizer, and records when each answer comes back.

Frames are converted to messages once (a real driver does not decode PNGs either); each
publication re-stamps them. Published per frame: rgb8, 16UC1 depth and camera_info with one stamp,
and odom→camera on /tf (ground truth as odometry, so the node also computes map→odom). Answers:
the node's ``~/pose`` and ``~/place_matches`` (one per processed frame), matched by stamp; latency
= receipt time − stamp, on the same clock. The result is a JSON file (read by
``locus_core.bench.node``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PoseWithCovarianceStamped, TransformStamped
from locus.msg import LocalizerStatus, PlaceMatchArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from locus_ros import conversions as conv
from locus_ros.diagnostics import STARTING

CAMERA_FRAME = "camera_color_optical_frame"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="locus_bench_driver", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="data set folder or bag")
    parser.add_argument("--frames", help="START:STOP[:STEP] of the frames to publish (cycled)")
    parser.add_argument("--preload", type=int, default=60, help="frames kept in memory (evenly spaced over the selection)")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second")
    parser.add_argument("--warmup", type=float, default=10.0, help="s published before the measurement")
    parser.add_argument("--duration", type=float, default=60.0, help="s measured")
    parser.add_argument("--node", default="/locus_localizer", help="the localizer's name")
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="s to wait for the node's model and map")
    parser.add_argument("--out", type=Path, required=True, help="JSON result")
    options = parser.parse_args(argv)
    if options.rate <= 0 or options.duration <= 0 or options.warmup < 0 or options.preload < 1:
        parser.error("--rate and --duration must be > 0, --warmup >= 0, --preload >= 1")
    return options


class Driver:
    def __init__(self, node: rclpy.node.Node, node_name: str) -> None:
        self.node = node
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_rgb = node.create_publisher(Image, "/rgb/image", reliable)
        self.pub_depth = node.create_publisher(Image, "/depth/image", reliable)
        self.pub_info = node.create_publisher(CameraInfo, "/rgb/camera_info", reliable)
        self.pub_tf = node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.answers: dict[str, dict[int, float]] = {"pose": {}, "place_matches": {}}
        self.status: LocalizerStatus | None = None
        self._lock = threading.Lock()
        answers = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(PoseWithCovarianceStamped, f"{node_name}/pose", self._recorder("pose"), answers)
        node.create_subscription(PlaceMatchArray, f"{node_name}/place_matches", self._recorder("place_matches"), answers)
        node.create_subscription(LocalizerStatus, f"{node_name}/status", self._on_status, answers)

    def _recorder(self, kind: str):
        def record(msg) -> None:  # noqa: ANN001
            now = time.time()
            with self._lock:
                self.answers[kind][_key(msg.header.stamp)] = now

        return record

    def _on_status(self, msg: LocalizerStatus) -> None:
        with self._lock:
            self.status = msg

    def snapshot(self) -> tuple[dict[str, dict[int, float]], LocalizerStatus | None]:
        """Receipt times (wall clock) per answer kind and stamp, and the latest status."""
        with self._lock:
            return {kind: dict(values) for kind, values in self.answers.items()}, self.status

    def ready(self) -> bool:
        with self._lock:
            status = self.status
        subscribed = all(p.get_subscription_count() > 0 for p in (self.pub_rgb, self.pub_depth, self.pub_info, self.pub_tf))
        return subscribed and status is not None and STARTING not in status.message

    def publish(self, messages: tuple[Image, Image, CameraInfo, TransformStamped], stamp: float) -> None:
        rgb, depth, info, odom = messages
        ros_stamp = conv.seconds_to_stamp(stamp)
        for msg in (rgb, depth, info, odom):
            msg.header.stamp = ros_stamp
        self.pub_tf.publish(TFMessage(transforms=[odom]))
        self.pub_rgb.publish(rgb)
        self.pub_depth.publish(depth)
        self.pub_info.publish(info)


def _key(stamp) -> int:  # noqa: ANN001
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _messages(frame) -> tuple[Image, Image, CameraInfo, TransformStamped]:  # noqa: ANN001
    header = Header(frame_id=CAMERA_FRAME)
    odom = TransformStamped(header=Header(frame_id="odom"), child_frame_id=CAMERA_FRAME)
    odom.transform = conv.matrix_to_transform(frame.T_world_cam if frame.T_world_cam is not None else np.eye(4))
    return (conv.numpy_to_image(frame.rgb, "rgb8", header), conv.depth_to_image(frame.depth, header),
            conv.camera_info_from_intrinsics(frame.K, frame.width, frame.height, header), odom)


def main(args: list[str] | None = None) -> int:
    from rclpy.utilities import remove_ros_args

    from locus_core.data import open_dataset

    argv = list(args if args is not None else sys.argv)
    options = parse_args(remove_ros_args(argv)[1:])
    dataset = open_dataset(options.data, frames=options.frames)
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(options.preload, len(dataset))).round().astype(int))
    frames = [_messages(dataset[int(i)]) for i in picks]
    rclpy.init(args=argv)
    node = rclpy.create_node("locus_bench_driver")
    driver = Driver(node, options.node)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + options.ready_timeout
        while not driver.ready():
            if time.monotonic() > deadline:
                print(f"locus_bench_driver: error: {options.node} not ready after {options.ready_timeout} s", file=sys.stderr)
                return 1
            time.sleep(0.1)
        period = 1.0 / options.rate
        start = time.time()
        measure_from = start + options.warmup
        end = measure_from + options.duration
        published: list[float] = []
        late = 0
        i = 0
        while True:
            due = start + i * period
            if due >= end:
                break
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            elif -delay > period:
                late += 1
            stamp = time.time()
            driver.publish(frames[i % len(frames)], stamp)
            published.append(stamp)
            i += 1
        time.sleep(1.0 + 5 * period)  # answers to the last frames (a later one only shortens the counts)
        answers, status = driver.snapshot()
        measured = [(s, _key(conv.seconds_to_stamp(s))) for s in published if s >= measure_from]
        result = {
            "rate_hz": options.rate, "start_time": start, "warmup_s": options.warmup, "duration_s": options.duration,
            "published": len(measured), "late": late, "preloaded": len(frames),
            "size": [int(dataset[0].height), int(dataset[0].width)],
            "latency_s": {kind: [values[k] - s for s, k in measured if k in values] for kind, values in answers.items()},
            "node_status": None if status is None else {
                "frames_received": status.frames_received, "frames_processed": status.frames_processed,
                "frames_dropped": status.frames_dropped, "message": status.message,
            },
        }
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(result))
    finally:
        stop.set()
        spinner.join(timeout=5.0)  # rclpy aborts the process if its executor dies while spinning
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
