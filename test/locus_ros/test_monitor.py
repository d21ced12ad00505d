"""The live monitor over real DDS: a stand-in for the node publishes answers and ground truth, the
monitor (a subprocess, as in the demo) prints a line per frame and writes the summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("locus.msg")

from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped  # noqa: E402
from locus.msg import LocalizerStatus, PlaceMatch, PlaceMatchArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from locus_ros import conversions as conv  # noqa: E402
from ros_harness import ROOT, Client  # noqa: E402

pytestmark = pytest.mark.ros


def _pose(x: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = [x, 1.0, 0.5]
    return T


@contextmanager
def _monitored(tmp_path: Path, tag: str, frames: int) -> Iterator[tuple[subprocess.Popen, dict, Path]]:
    """A monitor subprocess scoring ``frames`` frames of a stand-in localizer, and the stand-in's
    publishers once the monitor subscribes to them: (monitor, publishers, summary file)."""
    summary_file = tmp_path / "summary.json"
    # Names of our own: a real localizer of another test in the same DDS domain must not be scored.
    node_name, truth_topic = f"/stand_in_localizer_{tag}{os.getpid()}", f"/stand_in_truth_{tag}{os.getpid()}"
    monitor = subprocess.Popen(
        [sys.executable, "-m", "locus_ros.monitor", "--node", node_name, "--ground-truth", truth_topic,
         "--frames", str(frames), "--idle-timeout", "60",
         # a loaded machine may match the monitor's readers late; complete answers are scored at once
         "--grace", "60", "--out", str(summary_file)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    client = Client(f"locus_monitor_test{tag}")
    try:
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        node = client.node
        pubs = {
            "truth": node.create_publisher(PoseStamped, truth_topic, qos),
            "pose": node.create_publisher(PoseWithCovarianceStamped, f"{node_name}/pose", qos),
            "matches": node.create_publisher(PlaceMatchArray, f"{node_name}/place_matches", qos),
            "status": node.create_publisher(LocalizerStatus, f"{node_name}/status", qos),
        }
        client.wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()) or monitor.poll() is not None,
                        60, "the monitor to subscribe")
        assert monitor.poll() is None, monitor.communicate()[0]
        yield monitor, pubs, summary_file
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.communicate()
        client.close()


def test_scores_answers_against_ground_truth(tmp_path: Path) -> None:
    with _monitored(tmp_path, "", frames=3) as (monitor, pubs, summary_file):
        # Frame 1: 50 cm off (localized but wrong); frame 2: exact, its status before its matches (topics
        # are not ordered across each other); frame 3: not localized, with the reason.
        frames = [(10.0, 0.5, True), (10.1, 0.0, True), (10.2, None, False)]
        for i, (t, error, localized) in enumerate(frames):
            header = Header(stamp=conv.seconds_to_stamp(t), frame_id="map")
            truth = _pose(float(i))
            pubs["truth"].publish(PoseStamped(header=header, pose=conv.matrix_to_pose(truth)))
            status = LocalizerStatus(header=header, mode="localization", localized=localized, inliers=40 if localized else 0,
                                     frames_processed=i + 1,
                                     latency_ms=50.0 + i, message="" if localized else "blank frame (intensity std 0.00 < 2.0)")
            match = PlaceMatch(keyframe_id=7 + i, score=3.5, inliers=40, keyframe_pose=conv.matrix_to_pose(truth))
            if i == 1:
                pubs["status"].publish(status)
            if localized:
                estimate = PoseWithCovarianceStamped(header=header)
                estimate.pose.pose = conv.matrix_to_pose(_pose(i + error))
                estimate.pose.covariance = (np.eye(6) * 1e-4).ravel().tolist()
                pubs["pose"].publish(estimate)
            pubs["matches"].publish(PlaceMatchArray(header=header, matches=[match] if localized else []))
            if i != 1:
                pubs["status"].publish(status)
        out, _ = monitor.communicate(timeout=60)
    assert monitor.returncode == 0, out
    # in stamp order: a frame is printed once complete, and a busy machine may complete them out of order
    lines = sorted(line for line in out.splitlines() if line.startswith("[monitor] t="))
    assert len(lines) == 3, out
    assert "keyframe     7" in lines[0] and "error   50.0 cm   0.0 deg" in lines[0] and "50.0 ms" in lines[0]
    assert "error    0.0 cm" in lines[1] and "51.0 ms" in lines[1]
    assert "no place match" in lines[2] and "not localized: blank frame" in lines[2]
    summary = json.loads(summary_file.read_text())
    assert summary["queries"] == summary["frames_answered"] == 3 and summary["frames_scored"] == 2
    assert summary["localized_rate"] == pytest.approx(2 / 3)
    assert summary["precision"] == pytest.approx(0.5)  # 50 cm is beyond the 25 cm of a correct pose
    assert summary["pose"]["median_trans_m"] == pytest.approx(0.25)
    assert summary["latency_ms"]["p50"] == pytest.approx(51.0)


def test_bad_arguments_are_refused() -> None:
    result = subprocess.run([sys.executable, "-m", "locus_ros.monitor", "--idle-timeout", "0"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--idle-timeout and --grace must be > 0" in result.stderr


def test_a_long_run_keeps_only_what_the_summary_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Printed answers leave the working set, and so does ground truth of frames never answered
    (dropped by the node): hours of live frames must not grow it."""
    import time

    from locus_ros import monitor

    monkeypatch.setattr(monitor, "TRUTH_KEPT_S", 0.0)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = monitor.Monitor(f"/stand_in_localizer_{os.getpid()}", f"/stand_in_truth_{os.getpid()}", echo=False, context=context)
    try:
        for i, t in enumerate((10.0, 10.1, 10.2)):  # 10.2: dropped by the node, never answered
            header = Header(stamp=conv.seconds_to_stamp(t), frame_id="map")
            node._on_truth(PoseStamped(header=header, pose=conv.matrix_to_pose(_pose(float(i)))))
            if t == 10.2:
                continue
            estimate = PoseWithCovarianceStamped(header=header)
            estimate.pose.pose = conv.matrix_to_pose(_pose(float(i)))
            node._on_pose(estimate)
            node._on_status(LocalizerStatus(header=header, localized=True, frames_processed=i + 1, latency_ms=50.0))
            node._on_matches(PlaceMatchArray(header=header))
        time.sleep(0.01)
        node.poll()
        assert not node.answers and not node.truth and len(node.scored) == 2
        summary = node.summary()
        assert (summary["frames_answered"], summary["frames_with_ground_truth"], summary["frames_scored"]) == (2, 3, 2)
        assert summary["precision"] == 1.0
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _in_process_monitor():
    from locus_ros import monitor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = monitor.Monitor(f"/stand_in_localizer_{os.getpid()}", f"/stand_in_truth_{os.getpid()}", echo=False, context=context)
    return node, context


def test_a_frame_without_status_leaves_the_latency_of_the_others() -> None:
    """A frame flushed before its status came (Ctrl-C, the demo's watchdog) has no latency: it made
    the summary's p50 and p95 null, those of every other frame lost with it."""
    node, context = _in_process_monitor()
    try:
        for i, t in enumerate((10.0, 10.1)):
            header = Header(stamp=conv.seconds_to_stamp(t), frame_id="map")
            node._on_truth(PoseStamped(header=header, pose=conv.matrix_to_pose(_pose(float(i)))))
            estimate = PoseWithCovarianceStamped(header=header)
            estimate.pose.pose = conv.matrix_to_pose(_pose(float(i)))
            node._on_pose(estimate)
            if i == 0:
                node._on_status(LocalizerStatus(header=header, localized=True, frames_processed=1, latency_ms=50.0))
            node._on_matches(PlaceMatchArray(header=header))
        node.poll(flush=True)
        summary = node.summary()
        assert summary["queries"] == 2 and summary["localized_rate"] == 1.0
        assert summary["latency_ms"]["p50"] == pytest.approx(50.0) and summary["latency_ms"]["p95"] == pytest.approx(50.0)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_a_run_without_answers_has_the_summary_of_any_run() -> None:
    """A node that never answered (no map, a dead camera): the summary held only "queries", so a
    script reading its localized_rate failed with a KeyError exactly when it should report the
    failure; now every metric is there, null where undefined, and the JSON is valid."""
    node, context = _in_process_monitor()
    try:
        header = Header(stamp=conv.seconds_to_stamp(10.0), frame_id="map")
        node._on_truth(PoseStamped(header=header, pose=conv.matrix_to_pose(_pose(0.0))))
        node.poll(flush=True)
        summary = json.loads(json.dumps(node.summary(), allow_nan=False))
        assert (summary["queries"], summary["frames_answered"], summary["frames_with_ground_truth"]) == (0, 0, 1)
        assert summary["localized_rate"] is None and summary["precision"] is None
        assert summary["latency_ms"]["p50"] is None and summary["pose"]["median_trans_m"] is None
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_frames_stops_at_the_frames_scored(tmp_path: Path) -> None:
    """--frames 2 with a third frame under way (its matches in, its pose and status not yet): the final
    flush scored it too, as not localized with no latency, so the summary counted 3 frames and a
    localized rate the node never had."""
    with _monitored(tmp_path, "f", frames=2) as (monitor, pubs, summary_file):
        headers = [Header(stamp=conv.seconds_to_stamp(t), frame_id="map") for t in (10.0, 10.1, 10.2)]
        for i, header in enumerate(headers):
            pubs["truth"].publish(PoseStamped(header=header, pose=conv.matrix_to_pose(_pose(float(i)))))
        for i in (0, 2, 1):  # the third frame's matches before the second frame's answer is complete
            estimate = PoseWithCovarianceStamped(header=headers[i])
            estimate.pose.pose = conv.matrix_to_pose(_pose(float(i)))
            if i != 2:
                pubs["pose"].publish(estimate)
            pubs["matches"].publish(PlaceMatchArray(header=headers[i]))
            if i != 2:
                pubs["status"].publish(LocalizerStatus(header=headers[i], localized=True, frames_processed=i + 1, latency_ms=50.0))
        out, _ = monitor.communicate(timeout=60)
    assert monitor.returncode == 0, out
    assert len([line for line in out.splitlines() if line.startswith("[monitor] t=")]) == 2, out
    summary = json.loads(summary_file.read_text())
    assert (summary["queries"], summary["localized_rate"], summary["frames_scored"]) == (2, 1.0, 2)


def test_ground_truth_from_a_best_effort_publisher_is_received() -> None:
    """Motion-capture drivers publish best effort; DDS never connects them to a reliable
    subscription, so the monitor saw no ground truth at all, silently."""
    import time

    from rclpy.executors import SingleThreadedExecutor

    node, context = _in_process_monitor()
    publisher = rclpy.create_node(f"best_effort_truth_{os.getpid()}", context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        pub = publisher.create_publisher(PoseStamped, node.topics["ground_truth"],
                                         QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
        executor.add_node(node)
        executor.add_node(publisher)
        header = Header(stamp=conv.seconds_to_stamp(1.0), frame_id="map")
        deadline = time.monotonic() + 60
        while node.truth_received == 0 and time.monotonic() < deadline:
            pub.publish(PoseStamped(header=header, pose=conv.matrix_to_pose(_pose(0.0))))
            executor.spin_once(timeout_sec=0.1)
            node.poll()
        assert node.truth_received == 1
    finally:
        executor.shutdown()
        publisher.destroy_node()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
