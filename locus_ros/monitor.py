"""`locus_monitor`: watches a running localizer and scores it against ground truth, live.

Subscribes to the node's ``~/pose``, ``~/place_matches`` and ``~/status`` and to a ground-truth
``geometry_msgs/PoseStamped`` topic (what ``locus bag convert`` records and the player publishes),
pairs them by stamp, prints one line per frame and, at the end, a summary with the metrics of
``locus map localize`` (``locus_core.mapping.evaluate.localization_metrics``: localized rate,
precision, median errors, latency), optionally written to a JSON file. The demo runs it beside the
node and the player.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from locus.msg import LocalizerStatus, PlaceMatchArray
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSPolicyKind, QoSProfile, ReliabilityPolicy

from locus_ros import conversions as conv
from locus_ros.compat import SubscriptionEventCallbacks
from locus_ros.errors import ConversionError

if TYPE_CHECKING:  # imported when first needed: it brings torch, seconds the monitor need not wait
    from locus_core.mapping.localizer import Localization

# A frame's pose, matches, status and ground truth are four topics: their order of arrival is not
# guaranteed, so a frame is printed once all have come or this long (wall time) after its matches.
GRACE_S = 2.0  # seconds (--grace): on a loaded machine the topics can arrive 0.5 s apart
EARLY_KEPT = 100
# Ground truth comes with the image, its answer one inference (and a queued frame) later: truth this
# old (wall time) belongs to a frame the node dropped, and is forgotten.
TRUTH_KEPT_S = 30.0


def _key(stamp: Any) -> int:
    """builtin_interfaces/Time → integer nanoseconds (exact, hashable)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass
class _Answer:
    """What the node said about one frame."""

    matches: PlaceMatchArray
    arrived: float  # time.monotonic() of the matches
    pose: np.ndarray | None = None
    status: LocalizerStatus | None = None


class Monitor(Node):
    """Records the localizer's answers and the ground truth; ``poll`` prints finished frames and
    keeps of each only what the summary needs, so a long live run holds a bounded working set."""

    def __init__(self, node_name: str, ground_truth: str, *, echo: bool = True, grace_s: float = GRACE_S, **kwargs: Any) -> None:
        super().__init__("locus_monitor", **kwargs)
        prefix = "/" + node_name.strip("/")
        self.echo = echo
        self.grace_s = grace_s
        self.truth: dict[int, tuple[np.ndarray, float]] = {}  # stamp -> (T_map_cam, time.monotonic() of arrival), oldest first
        self.truth_received = 0  # distinct stamps
        self.answers: dict[int, _Answer] = {}  # not yet printed
        self._early: dict[int, list[tuple[str, Any]]] = {}  # pose/status that came before their matches
        self.scored: list[tuple[Localization, np.ndarray | None]] = []  # per printed frame: the result and its ground truth
        self.last_activity = time.monotonic()
        self._lock = threading.Lock()
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self._truth_best_effort = False  # a ground-truth publisher offers only best effort
        self._truth = self._subscribe_truth(ground_truth, qos)
        self.create_subscription(PoseWithCovarianceStamped, f"{prefix}/pose", self._on_pose, qos)
        self.create_subscription(PlaceMatchArray, f"{prefix}/place_matches", self._on_matches, qos)
        self.create_subscription(LocalizerStatus, f"{prefix}/status", self._on_status, qos)
        self.topics = {"ground_truth": ground_truth, "pose": f"{prefix}/pose", "place_matches": f"{prefix}/place_matches"}

    def _subscribe_truth(self, topic: str, qos: QoSProfile) -> Any:
        # Reliable where the publisher is (no truth lost), but motion-capture drivers publish best
        # effort, which DDS never connects to a reliable subscription: then best effort it is.
        def incompatible(event: Any) -> None:
            if QoSPolicyKind(event.last_policy_kind) == QoSPolicyKind.RELIABILITY:
                self._truth_best_effort = True

        return self.create_subscription(PoseStamped, topic, self._on_truth, qos,
                                        event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible))

    # ------------------------------------------------------------------ callbacks
    def _on_truth(self, msg: PoseStamped) -> None:
        try:
            T = conv.pose_to_matrix(msg.pose, what=self.topics["ground_truth"])
        except ConversionError as exc:
            self.get_logger().warning(str(exc), throttle_duration_sec=5.0)
            return
        key = _key(msg.header.stamp)
        with self._lock:
            self.truth_received += key not in self.truth
            self.truth.pop(key, None)  # re-inserted last: the dict stays in order of arrival
            self.truth[key] = (T, time.monotonic())

    def _on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        self._attach(_key(msg.header.stamp), "pose", msg)

    def _on_status(self, msg: LocalizerStatus) -> None:
        self._attach(_key(msg.header.stamp), "status", msg)

    def _on_matches(self, msg: PlaceMatchArray) -> None:
        key = _key(msg.header.stamp)
        with self._lock:
            answer = self.answers[key] = _Answer(matches=msg, arrived=time.monotonic())
            self.last_activity = answer.arrived
            early = self._early.pop(key, [])
        for kind, item in early:
            self._attach(key, kind, item)

    def _attach(self, key: int, kind: str, msg: Any) -> None:
        with self._lock:
            answer = self.answers.get(key)
            if answer is None:
                # Periodic statuses carry the current time and never get matches: keep only the newest few.
                self._early.setdefault(key, []).append((kind, msg))
                while len(self._early) > EARLY_KEPT:
                    del self._early[next(iter(self._early))]
                return
            if kind == "status":
                # Several statuses may carry the frame's stamp (periodic repeats); the one published
                # after processing it counts it: keep the one with the most processed frames.
                if answer.status is None or msg.frames_processed >= answer.status.frames_processed:
                    answer.status = msg
                return
            try:
                answer.pose = conv.pose_to_matrix(msg.pose.pose, what=self.topics["pose"])
            except ConversionError as exc:
                self.get_logger().warning(str(exc), throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ output
    def poll(self, *, flush: bool = False) -> None:
        """Print every frame whose answer is complete (or overdue; all of them with ``flush``) and
        move it to ``scored``; forget ground truth no answer came for. A pose waits for its ground
        truth too: topics are not ordered across each other. Resubscribes the ground truth best effort
        once a publisher of it turned out to offer only that."""
        if self._truth_best_effort and self._truth.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
            # here, not in the QoS event's callback: that runs inside the subscription's own handlers
            self.get_logger().warning(f"{self.topics['ground_truth']}: its publisher offers best effort only; "
                                      "subscribing best effort (ground truth of some frames may be lost)")
            self.destroy_subscription(self._truth)
            self._truth = self._subscribe_truth(
                self.topics["ground_truth"], QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT))
        now = time.monotonic()
        with self._lock:
            ready = sorted(
                key for key, a in self.answers.items()
                if flush or now - a.arrived > self.grace_s
                or (a.status is not None and a.status.frames_processed > 0
                    and (not a.status.localized or (a.pose is not None and key in self.truth)))
            )
            done = [(key, self.answers.pop(key), self.truth.pop(key, (None, 0.0))[0]) for key in ready]
            while self.truth and next(iter(self.truth.values()))[1] < now - TRUTH_KEPT_S:
                del self.truth[next(iter(self.truth))]
            self.scored.extend((_localization(answer), truth) for _, answer, truth in done)
        if self.echo:
            for key, answer, truth in done:
                print(describe(key, answer, truth), flush=True)

    def summary(self) -> dict[str, Any]:
        """``localization_metrics`` over the printed frames (place recall needs co-visibility: not
        known live, reported as 0 queries), plus counts of what was seen."""
        from locus_core.mapping.evaluate import localization_metrics, to_json

        with self._lock:
            results, truth = [r for r, _ in self.scored], [t for _, t in self.scored]
            n_truth = self.truth_received
        # With no answer too: every metric present (null where undefined) for whoever reads the file.
        metrics = localization_metrics(results, truth)
        metrics.update(frames_answered=len(results), frames_with_ground_truth=n_truth,
                       frames_scored=sum(r.localized and t is not None for r, t in zip(results, truth)))
        return to_json(metrics)


def describe(key: int, answer: _Answer, truth: np.ndarray | None) -> str:
    """The line printed for the frame stamped ``key``."""
    best = answer.matches.matches[0] if answer.matches.matches else None
    place = f"keyframe {best.keyframe_id:5d} inliers {best.inliers:4d}" if best else "no place match             "
    if answer.pose is None:
        reason = answer.status.message if answer.status is not None else ""
        verdict = "not localized" + (f": {reason}" if reason else "")
    elif truth is None:
        verdict = "localized (no ground truth at this stamp)"
    else:
        from locus_core.evaluation.pose import pose_error

        t_err, r_err = pose_error(answer.pose, truth)
        verdict = f"localized: error {t_err * 100:6.1f} cm {r_err:5.1f} deg"
    latency = f"{answer.status.latency_ms:6.1f} ms" if answer.status is not None else "      ? ms"
    return f"[monitor] t={key / 1e9:.3f}  {place}  {latency}  {verdict}"


def _localization(answer: _Answer) -> Localization:
    """What the summary's metrics read of an answer (matches are left out: they need co-visibility)."""
    from locus_core.mapping.localizer import Localization

    return Localization(
        localized=answer.pose is not None, T_map_cam=answer.pose, covariance=None, matches=[],
        inliers=int(answer.status.inliers) if answer.status is not None else 0,
        latency_ms=float(answer.status.latency_ms) if answer.status is not None else float("nan"),
        reason=answer.status.message if answer.status is not None and answer.pose is None else "",
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="locus_monitor", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--node", default="locus_localizer", help="the localizer's node name, with its namespace")
    parser.add_argument("--ground-truth", default="/ground_truth/pose", help="PoseStamped ground-truth topic")
    parser.add_argument("--idle-timeout", type=float, default=15.0,
                        help="s without a new answer (once answers have arrived) after which the monitor stops")
    parser.add_argument("--grace", type=float, default=GRACE_S,
                        help="s (wall time) after a frame's matches to wait for the rest of its answer before scoring it as is")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames are scored and printed (0 = no limit)")
    parser.add_argument("--out", type=Path, help="write the summary as JSON here")
    options = parser.parse_args(argv)
    if options.idle_timeout <= 0 or options.grace <= 0 or options.frames < 0:
        parser.error("--idle-timeout and --grace must be > 0 and --frames >= 0")
    return options


def main(args: list[str] | None = None) -> int:
    from rclpy.utilities import remove_ros_args

    argv = list(args if args is not None else sys.argv)
    options = parse_args(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    node = Monitor(options.node, options.ground_truth, grace_s=options.grace)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node.get_logger().info(f"scoring {node.topics['pose']} against {options.ground_truth}")
    flush = True
    try:
        while rclpy.ok() and not stop.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
            node.poll()
            if options.frames and len(node.scored) >= options.frames:
                # Answers still waiting now are frames beyond the limit, and incomplete: not scored.
                flush = False
                break
            if (node.answers or node.scored) and time.monotonic() - node.last_activity > options.idle_timeout:
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    if flush:
        node.poll(flush=True)
    summary = node.summary()
    print("[monitor] summary: " + json.dumps(summary), flush=True)
    if options.out:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"[monitor] summary written to {options.out}", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
