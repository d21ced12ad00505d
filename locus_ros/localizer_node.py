"""`locus_localizer`: the ROS 2 node. A thin adapter: parameters → core objects, messages → arrays
at the edge, the core's results → messages.

Threads: the executor runs subscriptions, services and timers; one worker thread runs inference on
the newest synchronised frame (a bounded queue: a newer frame replaces the oldest waiting one, and
the replaced one is counted as dropped). Nothing a message or a transform can contain stops the
node: bad input is skipped, counted and reported on /diagnostics and ~/status.
"""

from __future__ import annotations

import collections
import dataclasses
import signal
import threading
import time
import traceback
from typing import Any

import numpy as np
import rclpy
# Imported here, in the main thread, although only the worker's model uses it: scipy (TF callbacks on
# the executor thread) inspects torch whenever it is in sys.modules, so a worker importing torch
# mid-callback made scipy see a partially initialised module and the callback fail.
import torch  # noqa: F401
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped, TransformStamped
from locus.msg import LocalizerStatus, PlaceMatchArray
from locus.srv import LoadMap, SaveMap, SetMode
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from locus_core.data.frame import PosedFrame
from locus_core.errors import LocusError
from locus_core.pipeline.messages import frame_from_messages
from locus_core.pipeline.processor import FrameProcessor
from locus_core.pipeline.sync import ApproximateTimeSynchronizer
from locus_ros import conversions as conv
from locus_ros import params as node_params
from locus_ros.compat import SubscriptionEventCallbacks
from locus_ros.diagnostics import STARTING, NodeStats, render
from locus_ros.errors import ConversionError, ParameterError, TransformError, UnsupportedEncoding
from locus_ros.tf_source import TfSource

MAX_MARKER_POINTS = 20000


@dataclasses.dataclass
class _Frame:
    rgb: Any
    depth: Image
    info: CameraInfo
    received: float  # time.monotonic() when the set was complete


class LocalizerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("locus_localizer", **kwargs)
        self.stats = NodeStats()
        self.params = self._declare_parameters()
        p = self.params
        self._state_error = STARTING
        self._processor = None
        self._device_note = ""
        self._last_stamp: float | None = None
        self._odometry_frame = self.params.odom_frame  # of the odometry the tracker holds from the last frame
        self._warned: set[str] = set()  # kinds of input warning logged (once each)
        self._recording_loaded_path = False  # ~/load_map setting map_path to the map it loaded
        self._status_lock = threading.Lock()
        self._frame_status: LocalizerStatus | None = None  # the last frame's result, repeated periodically

        # Outputs.
        self._pub_matches = self.create_publisher(PlaceMatchArray, "~/place_matches", 10)
        self._pub_pose = self.create_publisher(PoseWithCovarianceStamped, "~/pose", 10)
        self._pub_status = self.create_publisher(LocalizerStatus, "~/status", 10)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._pub_landmarks = self.create_publisher(MarkerArray, "~/landmarks", latched)
        self._pub_tf = self.create_publisher(TFMessage, "/tf", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))

        # Inputs: rgb, depth and camera_info, approximately synchronised.
        self.tf = TfSource(self, self.stats)
        def qos(kind: str) -> QoSProfile:
            return qos_profile_sensor_data if kind == "sensor_data" else QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

        rgb_type, rgb_topic = (Image, "rgb/image") if p.rgb_transport == "raw" else (CompressedImage, "rgb/image/compressed")
        topics = [(rgb_type, rgb_topic, p.image_qos), (Image, "depth/image", p.image_qos), (CameraInfo, "rgb/camera_info", p.camera_info_qos)]
        self._input_names = [self.resolve_topic_name(name) for _, name, _ in topics]
        self._sync = ApproximateTimeSynchronizer(len(topics), p.sync_max_interval, p.sync_queue_size, self._on_synced)
        qos_parameters = ["image_qos", "image_qos", "camera_info_qos"]
        for index, (msg_type, name, kind) in enumerate(topics):
            self.create_subscription(
                msg_type, name, self._input_callback(index, self._input_names[index]), qos(kind),
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._incompatible_qos_callback(self._input_names[index], qos_parameters[index])),
            )

        self.create_service(SaveMap, "~/save_map", self._on_save_map)
        self.create_service(LoadMap, "~/load_map", self._on_load_map)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(SetMode, "~/set_mode", self._on_set_mode)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # Worker: newest-wins queue of synchronised frames.
        self._queue: collections.deque[_Frame] = collections.deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="locus_worker", daemon=True)
        self._worker.start()
        # On steady time: on ROS time, use_sim_time with nothing on /clock (a bag played without
        # --clock, or not yet) stopped the very reports that would say why nothing happens.
        self.create_timer(p.diagnostics_period, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"mode {p.mode}, inputs {', '.join(self._input_names)} (images {p.image_qos}, camera_info {p.camera_info_qos} QoS), "
            f"TF via {self.tf.backend}"
        )

    # ---------------------------------------------------------------- parameters
    def _declare_parameters(self) -> node_params.NodeParams:
        values = {}
        for name, default in node_params.defaults().items():
            description, _, read_only = node_params.SPEC[name]
            # A float parameter also takes an integer (`diagnostics_period: 2` in a params file,
            # `ros2 param set ... 1`): rclpy refuses a type change unless dynamic_typing is set, and
            # node_params.check (run on every value) converts it, and refuses any other type.
            descriptor = ParameterDescriptor(
                description=description, read_only=read_only, dynamic_typing=isinstance(default, float)
            )
            try:
                self.declare_parameter(name, default, descriptor)
            except Exception as exc:  # rclpy raises InvalidParameterTypeException for a YAML value of the wrong type
                raise ParameterError(f"parameter {name}: {exc}") from exc
            values[name] = self.get_parameter(name).value
        return node_params.from_mapping(values)

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        updates = {change.name: change.value for change in changes if change.name in node_params.SPEC}
        try:
            params = node_params.from_mapping({**dataclasses.asdict(self.params), **updates})
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        # The map first: map_path and mode set together load the map the mode needs. While mapping,
        # map_path is where the session will be saved: setting it loads nothing (that would drop the
        # unsaved keyframes); ~/load_map loads, then records the path here. Switching to mapping, it
        # names a map to extend, or where a new map is to be saved (as at start).
        new_map = False
        if "map_path" in updates and not self._recording_loaded_path:
            to_mapping = params.mode == "mapping" and self.params.mode != "mapping"
            new_map = to_mapping and not FrameProcessor.holds_map(params.map_path)
            still_mapping = params.mode == "mapping" and not to_mapping
            # a map to localize in is checked for keyframes before it replaces the one in use: the
            # mode switch below must not fail after the map has changed
            reason = (self._save_target(params.map_path) if still_mapping or new_map
                      else self._load_map(params.map_path, to_localize=params.mode == "localization"))
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        if params.mode != self.params.mode:
            reason = self._switch_mode(params.mode, params.map_path, new_map=new_map)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        moved = params.map_frame != self.params.map_frame
        self.params = params
        if moved:  # ~/landmarks is latched: its last message would name the old frame until the next keyframe
            self._publish_landmarks()
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- inputs
    def _input_callback(self, index: int, topic: str):
        def callback(msg: Any) -> None:
            stamp = conv.stamp_to_seconds(msg.header.stamp)
            self.stats.message_in(topic, stamp)
            self._sync.add(index, stamp, msg)

        return callback

    def _incompatible_qos_callback(self, topic: str, parameter: str):
        # DDS delivers nothing from such a publisher, silently: the input would only look dead.
        def callback(event: Any) -> None:
            reason = (f"a publisher offers incompatible QoS: {qos_policy_name_from_kind(event.last_policy_kind)}; "
                      f"{parameter}: sensor_data takes best-effort and reliable publishers")
            self.stats.incompatible(topic, reason)
            self.get_logger().warning(f"{topic}: {reason}")

        return callback

    def _on_synced(self, rgb: Any, depth: Image, info: CameraInfo) -> None:
        self.stats.count("frames_received")
        with self._wake:
            if len(self._queue) >= self.params.worker_queue_size:
                self._queue.popleft()
                self.stats.count("frames_dropped")
            self._queue.append(_Frame(rgb, depth, info, time.monotonic()))
            self._wake.notify()

    # ---------------------------------------------------------------- worker
    def _work(self) -> None:
        try:
            self._start_core()
        except Exception as exc:  # noqa: BLE001  the node stays up: services answer, diagnostics say why
            self._state_error = self._failure("start failed", exc)
            self.get_logger().error(self._state_error)
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                item = self._queue.popleft()
            try:
                self._process(item)
            except Exception as exc:  # noqa: BLE001  a bad frame, or a bug in the core, never stops the worker
                if not self.context.ok():
                    # Ctrl-C shut rclpy down under this frame before main() stops the worker: nothing
                    # can be published any more, its failure report neither (that killed the thread).
                    return
                self._skip_frame(item, exc)

    def _skip_frame(self, item: _Frame, exc: Exception) -> None:
        """Count and report a frame that gave no result; its status is published like any other's
        (the monitor and callers waiting for it need not wait out a timeout)."""
        if isinstance(exc, (LocusError, ValueError)):
            kinds = [(TransformError, "tf"), (UnsupportedEncoding, "unknown_encoding"), (ConversionError, "bad_message")]
            kind = next((k for cls, k in kinds if isinstance(exc, cls)), "processing")
            reason = str(exc)
            self.get_logger().warning(f"frame skipped: {reason}", throttle_duration_sec=5.0)
        else:  # a bug in the core must be reported, not kill the robot's node
            kind, reason = "internal", f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"frame failed: {reason}", throttle_duration_sec=5.0)
        self.stats.skip(kind, reason)
        self.stats.processed(localized=False, reason=reason, latency_ms=1e3 * (time.monotonic() - item.received))
        self._publish_status(item.rgb.header.stamp)

    def _start_core(self) -> None:
        """The model, then the map. Until both are in, ``_state_error`` ("loading the model") holds
        frames back; a failure stays there, reported on /diagnostics and ~/status, and the node keeps
        running (~/load_map can still bring a map)."""
        p = self.params
        try:
            processor = FrameProcessor(p.model, p.device, p.localizer_config, p.precision)
        except Exception as exc:  # noqa: BLE001  reported on /diagnostics; services still answer
            self._state_error = self._failure(f"model {p.model!r} could not be loaded", exc)
            self.get_logger().error(self._state_error)
            return
        if processor.fallbacks:
            # Logged once: a robot without the requested runtime still runs, on the next fastest one.
            self._device_note = f"device {p.device}: using {processor.runtime} ({'; '.join(processor.fallbacks)})"
            log = self.get_logger().info if p.device == "auto" else self.get_logger().warning
            log(self._device_note)
        self.get_logger().info(f"model {p.model} (hash {processor.model.hash}) on {processor.runtime}")
        self._processor = processor
        if p.map_path and (p.mode == "localization" or FrameProcessor.holds_map(p.map_path)):
            reason = self._load_map(p.map_path, to_localize=p.mode == "localization")
            if reason:
                self._state_error = reason
                self.get_logger().error(reason)
            return
        if p.mode == "mapping":
            processor.new_map(p.map_path)
            self._publish_landmarks()
        self._refresh_state_error()

    def _warm_up(self) -> None:
        """The robot's first frame localized in ~60 ms, not the 0.3-0.7 s of a model runtime's first run."""
        try:
            self._processor.warm_up()
        except Exception as exc:  # noqa: BLE001  a slow first frame is no reason to stop
            self.get_logger().warning(self._failure("warm-up failed (the first frame will be slow)", exc))

    def _save_target(self, path: str) -> str:
        """Why the mapping session could not be saved to ``path``; empty when it can."""
        if not path:
            return ""
        try:
            FrameProcessor.check_save_target(path)
        except Exception as exc:  # noqa: BLE001  an OSError too (EACCES): out of a parameter callback it ends the node
            return self._failure(f"map_path {path}: the mapping session could not be saved there", exc)
        return ""

    def _load_map(self, path: str, *, to_localize: bool) -> str:
        """Why the map at ``path`` was not loaded (the map in use stays); empty when it is now the map
        in use. ``to_localize``: a map without keyframes is refused."""
        if not path:
            return "map_path cannot be emptied at runtime: the map in use stays"
        try:
            if self._processor is None:
                raise LocusError(self._state_error)
            self._processor.load_map(path, to_localize=to_localize)
            self._refresh_state_error()
            self._publish_landmarks()
        except Exception as exc:  # noqa: BLE001  a running node keeps running: the caller gets the reason
            return self._failure(f"map {path} not loaded", exc)
        keyframes, landmarks = self._processor.counts()
        self.get_logger().info(f"map {path}: {keyframes} keyframes, {landmarks} landmarks")
        # Every load, not only at start: a node started without a map (or with one that failed) gets
        # its first map from ~/load_map, and a new map's index pays its first search too.
        self._warm_up()
        return ""

    def _failure(self, what: str, exc: Exception) -> str:
        """``what: reason``. A LocusError's message is the reason; anything else is a bug, named by
        its type and message, its traceback logged here (once)."""
        if isinstance(exc, LocusError):
            return f"{what}: {exc}"
        self.get_logger().error(f"{what}:\n{''.join(traceback.format_exception(exc)).rstrip()}")
        return f"{what}: {type(exc).__name__}: {exc}"

    def _refresh_state_error(self) -> None:
        if self._processor is None:
            return
        if not self._processor.has_map:
            self._state_error = "no map loaded: set map_path or call ~/load_map"
        else:
            self._state_error = ""

    def _to_frame(self, item: _Frame) -> tuple[PosedFrame, str, float]:
        rectified = self.params.rectified
        frame, camera_frame = frame_from_messages(item.rgb, item.depth, item.info, topics=tuple(self._input_names), rectified=rectified)
        # Once each: the inputs (one rgb/depth pair) do not change while the node runs.
        warnings = {
            "distortion": "" if rectified else conv.distortion_warning(item.info),
            "registration": conv.registration_warning(item.rgb, item.depth, topics=tuple(self._input_names[:2])),
        }
        for kind, warning in warnings.items():
            if warning and kind not in self._warned:
                self._warned.add(kind)
                self.get_logger().warning(warning)
        return frame, camera_frame, frame.stamp

    def _lookup_waiting(self, target: str, source: str, stamp: Any) -> np.ndarray:
        """TF lookup that waits up to tf_timeout for transforms arriving after the image."""
        deadline = time.monotonic() + self.params.tf_timeout
        while True:
            try:
                return self.tf.lookup(target, source, stamp)
            except TransformError:
                if time.monotonic() >= deadline or self._stopping:
                    raise
                time.sleep(0.01)

    def _odometry_now(self, p: node_params.NodeParams, camera_frame: str, stamp: Any) -> np.ndarray | None:
        """odom -> camera at the image's stamp, if TF holds it already: the tracker's motion prior.
        Not waited for: the pose must not wait on it (map->odom, published after, still waits)."""
        try:
            return self.tf.lookup(p.odom_frame, camera_frame, stamp)
        except TransformError:
            return None

    def _process(self, item: _Frame) -> None:
        frame, camera_frame, stamp = self._to_frame(item)  # first, so bad input is reported as such
        if self._processor is None or self._state_error:
            raise LocusError(self._state_error or "not ready")
        if self._last_stamp is not None and stamp < self._last_stamp:
            cleared = ": TF history cleared" if self.tf.time_jumped() else ""
            self.get_logger().warning(f"time went backwards ({self._last_stamp:.3f} -> {stamp:.3f} s){cleared}")
            self.stats.skip("time_jump", f"time went backwards from {self._last_stamp:.3f} to {stamp:.3f} s")
        self._last_stamp = stamp
        p = self.params
        header = Header(stamp=item.rgb.header.stamp, frame_id=p.map_frame)
        if p.mode == "mapping":
            fixed = p.mapping_frame or p.map_frame
            T_world_cam = self._lookup_waiting(fixed, camera_frame, item.rgb.header.stamp)
            inserted = self._processor.insert_keyframe(dataclasses.replace(frame, T_world_cam=T_world_cam))
            if inserted:
                self.stats.count("keyframes_inserted")
                self._publish_landmarks()
            self.stats.processed(localized=False, reason="", latency_ms=1e3 * (time.monotonic() - item.received))
            self._publish_status(item.rgb.header.stamp)
            return
        odometry = self._odometry_now(p, camera_frame, item.rgb.header.stamp)
        if p.odom_frame != self._odometry_frame:
            # The tracker would move the previous pose by the previous frame's odometry in the old
            # odom frame against this one's in the new: their offset, not a motion.
            self._processor.reset_tracking()
            self._odometry_frame = p.odom_frame
        result = self._processor.localize(frame, odometry)
        tf_reason = ""
        if result.localized:  # the pose first: it is what the robot waits for
            self._publish_pose(header, result.T_map_cam, result.covariance)
        self._publish_matches(header, result.matches[: p.max_matches])
        if result.localized and p.publish_tf:
            try:
                T_odom_cam = odometry if odometry is not None else self._lookup_waiting(p.odom_frame, camera_frame, item.rgb.header.stamp)
                self._publish_map_to_odom(p, item.rgb.header.stamp, result.T_map_cam @ np.linalg.inv(T_odom_cam))
            except TransformError as exc:
                tf_reason = f"map->odom not published: {exc}"
                self.stats.skip("tf", tf_reason)
                self.get_logger().warning(tf_reason, throttle_duration_sec=5.0)
        self.stats.processed(
            localized=bool(result.localized), reason=result.reason or tf_reason,
            latency_ms=1e3 * (time.monotonic() - item.received), tracked=result.method == "tracked",
        )
        self._publish_status(item.rgb.header.stamp, inliers=int(result.inliers))

    # ---------------------------------------------------------------- outputs
    def _publish_matches(self, header: Header, matches: list) -> None:
        self._pub_matches.publish(conv.place_matches_message(header, matches))

    def _publish_pose(self, header: Header, T_map_cam: np.ndarray, covariance: np.ndarray | None) -> None:
        self._pub_pose.publish(conv.pose_message(header, T_map_cam, covariance))

    def _publish_map_to_odom(self, p: node_params.NodeParams, stamp: Any, T_map_odom: np.ndarray) -> None:
        """At the image's ``stamp`` (builtin_interfaces/Time) + transform_tolerance, in integer
        nanoseconds: through float seconds a stamp of today's epoch moves by up to ~120 ns, and with
        a tolerance of 0 half of them fell before the image (a lookup at its stamp extrapolated).
        ``p``: the parameters the frame was processed with (its odom lookup's odom_frame), not any
        set during its inference, which put the old odom frame's transform under the new name."""
        nanoseconds = rclpy.time.Time.from_msg(stamp).nanoseconds + round(p.transform_tolerance * 1e9)
        t = TransformStamped(header=Header(stamp=rclpy.time.Time(nanoseconds=nanoseconds).to_msg(), frame_id=p.map_frame))
        t.child_frame_id = p.odom_frame
        t.transform = conv.matrix_to_transform(T_map_odom)
        self._pub_tf.publish(TFMessage(transforms=[t]))

    def _publish_landmarks(self) -> None:
        if self._processor is None:
            return
        points, keyframes = self._processor.geometry(MAX_MARKER_POINTS)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.params.map_frame)
        self._pub_landmarks.publish(conv.map_markers(header, points, keyframes))

    def _state(self) -> dict:
        """What diagnostics and ~/status report of the node; read without waiting for an inference."""
        keyframes, landmarks = self._processor.counts() if self._processor else (0, 0)
        p = self.params
        # The map in use (loaded from, or last saved to): map_path may name one that failed to load.
        map_path = self._processor.map_path if self._processor else None
        return {
            "mode": p.mode, "map_path": str(map_path or ""), "model": p.model,
            "runtime": self._processor.runtime if self._processor else "", "device_note": self._device_note,
            "keyframes": keyframes, "landmarks": landmarks, "tf_backend": self.tf.backend, "error": self._state_error,
            "starting": self._state_error == STARTING,
        }

    def _publish_status(self, stamp: Any = None, *, inliers: int = 0) -> None:
        """Per frame (``stamp`` = the frame's, called by the worker right after it recorded the
        result) or periodic (no stamp): then a repeat of the last frame's status with fresh counters
        and state. A status thus never pairs a frame's stamp with another frame's result (a periodic
        one stamped "now" did: with sim time, "now" is often the stamp of the next frame)."""
        s = self.stats.snapshot()
        state = self._state()
        with self._status_lock:
            if stamp is not None:
                self._frame_status = LocalizerStatus(
                    header=Header(stamp=stamp), localized=bool(s["localized"]), inliers=inliers,
                    latency_ms=s["last_latency_ms"], message=s["last_reason"],
                )
            frame = self._frame_status or LocalizerStatus(header=Header(stamp=self.get_clock().now().to_msg()))
            msg = LocalizerStatus(
                header=Header(stamp=frame.header.stamp, frame_id=self.params.map_frame),
                mode=state["mode"], localized=frame.localized, inliers=frame.inliers,
                keyframes=state["keyframes"], landmarks=state["landmarks"], latency_ms=frame.latency_ms,
                frames_received=s["frames_received"], frames_processed=s["frames_processed"], frames_dropped=s["frames_dropped"],
                message=state["error"] or frame.message,
            )
        self._pub_status.publish(msg)

    def _publish_diagnostics(self) -> None:
        sync = dataclasses.asdict(self._sync.stats)
        sync["tf_time_jumps"] = self.tf.time_jumps
        # namespaced: two robots' localizers on one /diagnostics must not merge in the aggregator
        statuses = render(self.stats.snapshot(), node_name=self.get_fully_qualified_name().lstrip("/"),
                          inputs=self._input_names, sync=sync, state=self._state())
        self._pub_diag.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=statuses))
        self._publish_status()

    # ---------------------------------------------------------------- services
    def _on_save_map(self, request: SaveMap.Request, response: SaveMap.Response) -> SaveMap.Response:
        path = request.path or self.params.map_path
        if not path:
            response.success, response.message = False, "no path given and map_path is empty"
        else:
            try:
                if self._processor is None:
                    raise LocusError(self._state_error)
                saved = self._processor.save_map(path)
                response.success, response.message = True, f"saved to {saved}"
            except Exception as exc:  # noqa: BLE001  a running node keeps running: the caller gets the reason
                response.success, response.message = False, self._failure(f"map not saved to {path}", exc)
        self.get_logger().info(f"save_map: {response.message}")
        return response

    def _on_load_map(self, request: LoadMap.Request, response: LoadMap.Response) -> LoadMap.Response:
        """Loads the map, then sets map_path to it, so that the parameter names the map loaded."""
        path = request.path or self.params.map_path
        reason = (self._load_map(path, to_localize=self.params.mode == "localization") if path
                  else "no path given and map_path is empty")
        response.success, response.message = not reason, reason
        if not reason:
            self._recording_loaded_path = True  # the parameter names the map loaded; no second load
            try:
                self.set_parameters([Parameter("map_path", value=path)])
            finally:
                self._recording_loaded_path = False
            keyframes, landmarks = self._processor.counts()
            response.message = f"loaded {path}: {keyframes} keyframes, {landmarks} landmarks"
        self.get_logger().info(f"load_map: {response.message}")
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Forget transient state (queued frames, synchroniser, TF history, last stamp, the tracked
        pose: the next frame is localized in full); keeps the map."""
        with self._wake:
            self.stats.count("frames_dropped", len(self._queue))
            self._queue.clear()
        self._sync.reset()
        self.tf.clear()
        self._last_stamp = None
        if self._processor is not None:
            self._processor.reset_tracking()
        response.success, response.message = True, "queues, synchroniser, TF history and tracking cleared; map kept"
        return response

    def _on_set_mode(self, request: SetMode.Request, response: SetMode.Response) -> SetMode.Response:
        result = self.set_parameters([Parameter("mode", value=request.mode)])[0]
        response.success = result.successful
        response.message = f"mode {request.mode}" if result.successful else result.reason
        return response

    def _switch_mode(self, mode: str, map_path: str, *, new_map: bool = False) -> str:
        """Why the switch is refused; empty when done. Mapping starts a new map, to be saved to
        ``map_path``, where there is none or ``new_map`` asks for one."""
        if self._processor is None:
            return f"cannot switch mode: {self._state_error}"
        if mode == "mapping" and (new_map or not self._processor.has_map):
            try:
                self._processor.new_map(map_path)  # refused over keyframes mapped since the last save
            except Exception as exc:  # noqa: BLE001  likewise
                return self._failure("cannot map", exc)
        if mode == "localization" and self._processor.counts()[0] == 0:
            return "cannot localize: the map has no keyframes (load one or map first)"
        self._processor.reset_tracking()  # frames were not localized meanwhile: the last pose is stale
        self._refresh_state_error()
        self.get_logger().info(f"mode: {mode}")
        return ""

    # ---------------------------------------------------------------- shutdown
    def shutdown(self) -> None:
        """Stop the worker; in mapping mode, or with keyframes mapped since the last save (mapping,
        then localizing in the new map), save the map to map_path (what a robot expects on Ctrl-C)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        unsaved = self._processor.unsaved_keyframes if self._processor is not None else 0
        mapped = self.params.mode == "mapping" or unsaved > 0
        # A frame in flight is let finish, its keyframe saved below. With nothing to save, a worker
        # stuck in native code (a hung GPU driver) is not waited out: it is a daemon thread, gone with
        # the process, and a robot's Ctrl-C took 30 s.
        self._worker.join(timeout=30.0 if mapped else 2.0)
        if mapped and self._processor is not None and self._processor.has_map:
            if self._processor.counts()[0] == 0:
                self.get_logger().warning("mapping mode: no keyframe was inserted, nothing to save")
                return
            if not self.params.map_path:
                self.get_logger().warning("the map of this mapping session is not saved: map_path is empty")
                return
            try:
                saved = self._processor.save_map(self.params.map_path)
                self.get_logger().info(f"map saved to {saved} ({self._processor.counts()[0]} keyframes)")
            except Exception as exc:  # noqa: BLE001  the node must still be destroyed and rclpy shut down
                self.get_logger().error(self._failure(f"map not saved to {self.params.map_path}", exc))


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = LocalizerNode()
        # One executor thread: rclpy's MultiThreadedExecutor re-polls a subscription whose callback
        # is still queued, spinning on the GIL; at 30 Hz RGB-D it starved the worker to 1.3 frames/s.
        # Callbacks only queue messages; a map save stalls the inputs for its duration.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterError as exc:
        rclpy.logging.get_logger("locus_localizer").fatal(str(exc))
        return 2
    finally:
        if node is not None:
            # rclpy raises KeyboardInterrupt for every SIGINT: a second Ctrl-C (an impatient user, or
            # the terminal's under ros2 launch) aborted the final map save and lost the session.
            # It is logged and ignored now, as SIGTERM already is; SIGKILL still ends the node.
            signal.signal(signal.SIGINT, lambda *_: rclpy.logging.get_logger("locus_localizer").warning(
                "shutting down (in mapping mode: saving the map); Ctrl-C is ignored until done"))
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
