"""Test harness for the node over real DDS: the node as a subprocess, and a client node in the
test process that publishes camera data and TF and records everything the node publishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import rclpy
import yaml
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped, TransformStamped
from locus.msg import LocalizerStatus, PlaceMatchArray
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from locus_ros import conversions as conv

ROOT = Path(__file__).resolve().parents[2]
NODE = "/locus_localizer"
# A stamp whose float seconds are off by hundreds of ns: rclpy.time.Time(seconds=...) of it was not it.
EXACT_STAMP = Time(sec=1_700_000_000, nanosec=123_456_789)


def odom_to_cam(stamp: Time) -> TransformStamped:
    """odom -> cam at ``stamp``: 1 m along x."""
    t = TransformStamped(header=Header(stamp=stamp, frame_id="odom"), child_frame_id="cam")
    t.transform.translation.x = 1.0
    t.transform.rotation.w = 1.0
    return t


def write_params(path: Path, **overrides: Any) -> Path:
    base = yaml.safe_load((ROOT / "config" / "localize.yaml").read_text())
    base["/**/locus_localizer"]["ros__parameters"].update(overrides)
    path.write_text(yaml.safe_dump(base))
    return path


class NodeProcess:
    """``python -m locus_ros.localizer_node --ros-args --params-file PARAMS`` with its log in a file."""

    def __init__(self, params_file: Path, log_file: Path, *extra: str) -> None:
        self.log_file = log_file
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0", OMP_NUM_THREADS="2")
        self._log = log_file.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "locus_ros.localizer_node", "--ros-args", "--params-file", str(params_file), *extra],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_log(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            if text in self.log():
                return True
            time.sleep(0.1)
        return text in self.log()

    def interrupt(self, timeout: float = 60.0) -> int:
        """SIGINT, as Ctrl-C in a terminal; returns the exit code (kills after ``timeout``)."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._log.close()


class Client:
    """A node in the test process: publishes inputs, records the node's outputs, calls services."""

    def __init__(self, name: str = "locus_test_client") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.received: dict[str, list] = defaultdict(list)
        self._clients: dict[tuple[Any, str], Any] = {}
        self._lock = threading.Lock()
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_rgb = self.node.create_publisher(Image, "/rgb/image", reliable)
        self.pub_depth = self.node.create_publisher(Image, "/depth/image", reliable)
        self.pub_info = self.node.create_publisher(CameraInfo, "/rgb/camera_info", reliable)
        self.pub_tf = self.node.create_publisher(TFMessage, "/tf", reliable)
        self.pub_tf_static = self.node.create_publisher(TFMessage, "/tf_static", latched)
        for topic, msg_type, qos in [
            (f"{NODE}/place_matches", PlaceMatchArray, reliable),
            (f"{NODE}/pose", PoseWithCovarianceStamped, reliable),
            (f"{NODE}/status", LocalizerStatus, reliable),
            (f"{NODE}/landmarks", MarkerArray, latched),
            ("/diagnostics", DiagnosticArray, reliable),
            ("/tf", TFMessage, reliable),
        ]:
            self.node.create_subscription(msg_type, topic, self._recorder(topic), qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while not self._stop.is_set() and self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001  the context was shut down under us: the test is over
            pass

    def _recorder(self, topic: str) -> Callable[[Any], None]:
        def record(msg: Any) -> None:
            with self._lock:
                self.received[topic].append(msg)

        return record

    def subscribe(self, topic: str, msg_type: Any, qos: QoSProfile | None = None) -> None:
        """Record ``topic`` too (reliable, depth 100 unless ``qos`` is given)."""
        qos = qos or QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(msg_type, topic, self._recorder(topic), qos)

    def messages(self, topic: str) -> list:
        with self._lock:
            return list(self.received[topic])

    def clear(self) -> None:
        with self._lock:
            self.received.clear()

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def wait_connected(self, timeout: float = 30.0) -> None:
        self.wait_for(
            lambda: all(p.get_subscription_count() > 0 for p in (self.pub_rgb, self.pub_depth, self.pub_info)),
            timeout, "the node to subscribe to rgb, depth and camera_info",
        )

    # ------------------------------------------------------------ inputs
    def publish_frame(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, stamp: float, *,
                      camera_frame: str = "camera_color_optical_frame", info: bool = True) -> None:
        header = Header(stamp=conv.seconds_to_stamp(stamp), frame_id=camera_frame)
        self.pub_rgb.publish(conv.numpy_to_image(np.ascontiguousarray(rgb), "rgb8", header))
        self.pub_depth.publish(conv.depth_to_image(depth_m, header))
        if info:
            self.pub_info.publish(conv.camera_info_from_intrinsics(K, rgb.shape[1], rgb.shape[0], header))

    def publish_tf(self, parent: str, child: str, T: np.ndarray, stamp: float, *, static: bool = False) -> None:
        t = TransformStamped(header=Header(stamp=conv.seconds_to_stamp(stamp), frame_id=parent), child_frame_id=child)
        t.transform = conv.matrix_to_transform(T)
        (self.pub_tf_static if static else self.pub_tf).publish(TFMessage(transforms=[t]))

    # ------------------------------------------------------------ services and parameters
    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 60.0) -> Any:
        # Clients are kept until close(): destroying one while the spinning thread waits on it can hang.
        client = self._clients.get((srv_type, name))
        if client is None:
            client = self._clients[(srv_type, name)] = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise AssertionError(f"service {name} not available after {timeout} s")
        future = client.call_async(request)
        self.wait_for(future.done, timeout, f"the response of {name}")
        return future.result()

    def set_parameter(self, name: str, value: Any) -> Any:
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.call(SetParameters, f"{NODE}/set_parameters", request).results[0]

    def diagnostics(self, name_suffix: str) -> dict[str, Any] | None:
        """The latest status whose name ends with ``name_suffix``: level, message and values."""
        for array in reversed(self.messages("/diagnostics")):
            for status in array.status:
                if status.name.endswith(name_suffix):
                    values = {kv.key: kv.value for kv in status.values}
                    return {"level": status.level, "message": status.message, **values}
        return None

    def close(self) -> None:
        # Stop spinning before destroying anything: destroying a node (or an executor) that another
        # thread is waiting on can block or abort inside rclpy.
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.executor.shutdown(timeout_sec=5)
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.context)
