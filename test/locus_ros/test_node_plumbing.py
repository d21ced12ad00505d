"""The node over real DDS without a map: parameters, services, bad input, diagnostics, shutdown.

One node process for the module (starting one costs seconds); the tests run in file order and each
leaves the node as it found it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("locus.srv")

from locus.srv import LoadMap, SaveMap, SetMode  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from locus_ros import conversions as conv  # noqa: E402
from ros_harness import Client, NodeProcess, write_params  # noqa: E402

pytestmark = pytest.mark.ros
K = np.array([[60.0, 0, 40], [0, 60.0, 30], [0, 0, 1]])


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("plumbing")
    params = write_params(tmp / "params.yaml", model="backbone:test", map_path="", diagnostics_period=0.3, tf_timeout=0.0)
    node = NodeProcess(params, tmp / "node.log")
    client = Client()
    try:
        client.wait_connected()
        yield node, client
    finally:
        client.close()
        if node.alive():
            node.interrupt()


def _frame(h: int = 60, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8), np.full((h, w), 1.5, np.float32)


def test_diagnostics_and_status_are_published(running) -> None:
    node, client = running
    diag = client.wait_for(lambda: client.diagnostics(": localization"), 30, "/diagnostics")
    assert diag["mode"] == "localization" and diag["tf_backend"] == "locus_core TransformBuffer"
    inputs = client.wait_for(lambda: client.diagnostics(": inputs"), 60, "input diagnostics")
    assert "no messages" in inputs["message"] and "/rgb/camera_info" in inputs["message"]
    status = client.wait_for(lambda: client.messages("/locus_localizer/status"), 60, "~/status")[-1]
    assert status.mode == "localization" and not status.localized and status.message


def test_missing_camera_info_is_reported(running) -> None:
    """A driver that never publishes camera_info: rgb and depth arrive, nothing is processed."""
    node, client = running
    rgb, depth = _frame()
    # Published until diagnostics count the images (at least 12 of them, 1.2 s): the latest diagnostics
    # right after 1.2 s may, on a loaded machine, predate the images' arrival (rate 0).
    deadline = time.monotonic() + 120
    i = 0
    while True:
        client.publish_frame(rgb, depth, K, 200.0 + i / 10, camera_frame="cam", info=False)
        i += 1
        time.sleep(0.1)
        diag = client.diagnostics(": inputs")
        if i >= 12 and diag is not None and float(diag["rate_hz /rgb/image"]) > 0:
            break
        assert time.monotonic() < deadline, f"no diagnostics counting the images after {i} frames: {diag}"
    assert diag["level"] == b"\x01" and "/rgb/camera_info" in diag["message"]
    assert float(diag["rate_hz /rgb/image"]) > 0 and float(diag["rate_hz /rgb/camera_info"]) == 0
    assert client.diagnostics(": localization")["frames_received"] == "0"
    assert node.alive()


def test_bad_parameters_are_rejected_with_the_reason(running) -> None:
    _, client = running
    result = client.set_parameter("mode", "flying")
    assert not result.successful and "mode must be one of localization, mapping; got 'flying'" in result.reason
    result = client.set_parameter("transform_tolerance", -1.0)
    assert not result.successful and "transform_tolerance must be >= 0.0" in result.reason
    result = client.set_parameter("max_matches", "three")
    assert not result.successful
    result = client.set_parameter("tf_timeout", float("inf"))  # would block the worker for good
    assert not result.successful and "tf_timeout must be finite; got inf" in result.reason
    result = client.set_parameter("odom_frame", "/odom")
    assert not result.successful and "without a leading '/'" in result.reason
    result = client.set_parameter("odom_frame", "map")
    assert not result.successful and "odom_frame must differ from map_frame (both 'map')" in result.reason
    result = client.set_parameter("sync_queue_size", 3)  # read-only: shapes the graph
    assert not result.successful and "read-only" in result.reason
    assert client.set_parameter("max_matches", 3).successful
    assert client.set_parameter("max_matches", 5).successful


def test_services_answer_without_a_map(running, tmp_path: Path) -> None:
    _, client = running
    missing = tmp_path / "no_such_map"
    response = client.call(LoadMap, "/locus_localizer/load_map", LoadMap.Request(path=str(missing)))
    assert not response.success and f"map {missing} not loaded" in response.message
    result = client.set_parameter("map_path", str(missing))  # loads, as ~/load_map does: refused alike
    assert not result.successful and f"map {missing} not loaded" in result.reason
    assert client.diagnostics(": localization")["map_path"] == ""
    response = client.call(SaveMap, "/locus_localizer/save_map", SaveMap.Request(path=str(tmp_path / "out")))
    assert not response.success and response.message
    response = client.call(SetMode, "/locus_localizer/set_mode", SetMode.Request(mode="dancing"))
    assert not response.success and "dancing" in response.message
    response = client.call(Trigger, "/locus_localizer/reset", Trigger.Request())
    assert response.success and "map kept" in response.message


def _skipped(client: Client, kind: str) -> int:
    diag = client.diagnostics(": inputs") or {}
    return int(diag.get(f"skipped_{kind}", 0))


def test_bad_messages_are_reported_and_the_node_keeps_running(running) -> None:
    node, client = running
    rgb, depth = _frame()
    stamp = 100.0
    # Wrong encoding.
    header = Header(stamp=conv.seconds_to_stamp(stamp), frame_id="cam")
    bad = conv.numpy_to_image(rgb, "rgb8", header)
    bad.encoding = "yuv422"
    client.pub_rgb.publish(bad)
    client.pub_depth.publish(conv.depth_to_image(depth, header))
    client.pub_info.publish(conv.camera_info_from_intrinsics(K, 80, 60, header))
    client.wait_for(lambda: "yuv422" in (client.diagnostics(": inputs") or {}).get("last_error", ""), 20, "the bad encoding to be reported")
    # Depth of another size than colour.
    stamp += 1.0
    client.publish_frame(rgb, np.ones((30, 40), np.float32), K, stamp, camera_frame="cam")
    client.wait_for(lambda: "size mismatch" in (client.diagnostics(": inputs") or {}).get("last_error", ""), 20, "the size mismatch")
    # camera_info of another size; an uncalibrated camera (K = 0); an rgb image without frame_id.
    stamp += 1.0
    header = Header(stamp=conv.seconds_to_stamp(stamp), frame_id="cam")
    client.pub_rgb.publish(conv.numpy_to_image(rgb, "rgb8", header))
    client.pub_depth.publish(conv.depth_to_image(depth, header))
    client.pub_info.publish(CameraInfo(header=header, width=80, height=60))
    client.wait_for(lambda: "not a calibrated pinhole" in (client.diagnostics(": inputs") or {}).get("last_error", ""), 20, "the uncalibrated camera_info")
    stamp += 1.0
    client.publish_frame(rgb, depth, K, stamp, camera_frame="")
    client.wait_for(lambda: "empty header.frame_id" in (client.diagnostics(": inputs") or {}).get("last_error", ""), 20, "the missing frame_id")
    assert _skipped(client, "bad_message") >= 3 and _skipped(client, "unknown_encoding") >= 1  # a configuration problem
    # All-NaN depth (32FC1) and time going backwards are accepted input: the frame reaches the core.
    processed = client.diagnostics(": localization")["frames_processed"]
    nan_depth = conv.numpy_to_image(np.full((60, 80), np.nan, np.float32), "32FC1", Header(stamp=conv.seconds_to_stamp(50.0), frame_id="cam"))
    client.pub_rgb.publish(conv.numpy_to_image(rgb, "rgb8", nan_depth.header))
    client.pub_depth.publish(nan_depth)
    client.pub_info.publish(conv.camera_info_from_intrinsics(K, 80, 60, nan_depth.header))
    client.wait_for(lambda: client.diagnostics(": localization")["frames_processed"] != processed, 20, "the NaN-depth frame to be processed")
    client.wait_for(lambda: int(client.diagnostics(": inputs").get("sync_time_jumps", 0)) >= 1, 20, "the time jump to be counted")
    assert node.alive()


def test_sigint_shuts_down_cleanly(running) -> None:
    node, _ = running
    assert node.interrupt() == 0
    assert "Traceback" not in node.log()


def test_a_bad_parameters_file_stops_the_node_with_the_reason(tmp_path: Path) -> None:
    params = write_params(tmp_path / "params.yaml", mode="flying", sync_queue_size=0)
    node = NodeProcess(params, tmp_path / "node.log")
    assert node.proc.wait(timeout=60) == 2
    log = node.log()
    assert "mode must be one of localization, mapping; got 'flying'" in log and "sync_queue_size must be >= 1" in log


def test_compressed_rgb_transport(tmp_path: Path) -> None:
    """rgb_transport: compressed subscribes rgb/image/compressed (JPEG) instead of rgb/image."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    params = write_params(tmp_path / "params.yaml", model="backbone:test", map_path="", rgb_transport="compressed",
                          image_qos="reliable", camera_info_qos="reliable", diagnostics_period=0.3)
    node = NodeProcess(params, tmp_path / "node.log")
    client = Client("locus_compressed_client")
    try:
        jpeg = client.node.create_publisher(CompressedImage, "/rgb/image/compressed", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        client.wait_for(lambda: jpeg.get_subscription_count() > 0 and client.pub_depth.get_subscription_count() > 0, 60,
                        "the node to subscribe to rgb/image/compressed")
        assert node.wait_log("/rgb/image/compressed", 30), node.log()  # logged just after the subscriptions exist
        # Wait until the model is loaded: before that a frame is reported as "loading the model".
        client.wait_for(lambda: any("no map" in s.message for s in client.messages("/locus_localizer/status")), 60, "the model")
        rgb, depth = _frame()
        header = Header(stamp=conv.seconds_to_stamp(7.0), frame_id="cam")
        jpeg.publish(conv.rgb_to_compressed(rgb, header))
        client.pub_depth.publish(conv.depth_to_image(depth, header))
        client.pub_info.publish(conv.camera_info_from_intrinsics(K, 80, 60, header))
        status = client.wait_for(
            lambda: next((s for s in client.messages("/locus_localizer/status") if s.header.stamp == header.stamp), None),
            30, "the status of the compressed frame",
        )
        # Decoded and converted: the frame reached the core, which has no map to localize against.
        assert status.frames_processed >= 1 and "no map loaded" in status.message, status
        assert _skipped(client, "bad_message") == 0
    finally:
        client.close()
        assert node.interrupt() == 0, node.log()
