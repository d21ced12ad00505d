"""The node's handlers and worker in this process, without DDS traffic: a stand-in
FrameProcessor fails where a test wants it to (a full disk, a bug in the core), and the node must
answer and report it, never die."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("locus.srv")

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import TransformStamped  # noqa: E402
from locus.srv import LoadMap, SaveMap  # noqa: E402
from ros_harness import EXACT_STAMP, odom_to_cam  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from locus_core.errors import LocusError  # noqa: E402
from locus_core.pipeline import FrameProcessor, PipelineError  # noqa: E402
from locus_ros import conversions as conv  # noqa: E402
from locus_ros import localizer_node  # noqa: E402
from locus_ros.diagnostics import NodeStats  # noqa: E402

K = np.array([[60.0, 0, 40], [0, 60.0, 30], [0, 0, 1]])


class StandIn:
    """What the node uses of FrameProcessor, without a model. ``failures``: method -> exception."""

    failures: dict[str, Exception] = {}

    def __init__(self, model: str, device: str, localizer_config: str, precision: str) -> None:
        self._fail("__init__")
        self.runtime, self.fallbacks, self.model = "stand-in", [], SimpleNamespace(hash="0" * 16)
        self.map, self.map_path, self._unsaved = None, None, 0

    # the real bookkeeping of keyframes mapped since the last save: the node relies on its refusals
    unsaved_keyframes = FrameProcessor.unsaved_keyframes
    _refuse_to_lose_keyframes = FrameProcessor._refuse_to_lose_keyframes

    def _fail(self, method: str) -> None:
        if method in self.failures:
            raise self.failures[method]

    @property
    def has_map(self) -> bool:
        return self.map is not None

    def load_map(self, path: str | Path, *, to_localize: bool = False) -> None:
        self._fail("load_map")
        self._refuse_to_lose_keyframes()
        if to_localize and Path(path).name == "empty":  # FrameProcessor's check of the map's keyframes
            raise PipelineError(f"{path}: the map has no keyframes, nothing to localize in")
        self.map, self.map_path, self._unsaved = "loaded", Path(path), 0

    holds_map = staticmethod(FrameProcessor.holds_map)  # a file check: the real one

    @classmethod
    def check_save_target(cls, path: str | Path) -> None:
        if "check_save_target" in cls.failures:
            raise cls.failures["check_save_target"]

    def new_map(self, save_to: str | Path | None = None) -> None:
        self._fail("new_map")
        self._refuse_to_lose_keyframes()
        self.map, self.map_path, self._unsaved = "new", None, 0

    def save_map(self, path: str | Path) -> Path:
        self._fail("save_map")
        self.map_path, self._unsaved = Path(path), 0
        self.saves = getattr(self, "saves", 0) + 1
        return self.map_path

    def insert_keyframe(self, frame) -> bool:
        self._fail("insert_keyframe")
        self._unsaved += 1
        return True

    def counts(self) -> tuple[int, int]:
        return (3, 30) if self.map else (0, 0)

    def geometry(self, max_points: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((0, 3)), np.zeros((0, 3))

    def reset_tracking(self) -> None:
        pass

    def warm_up(self) -> None:
        self._fail("warm_up")
        self.warmed_up = True

    def localize(self, frame, odometry=None):
        self._fail("localize")
        raise AssertionError("the tests here make localize fail")


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch):
    """``start(failures, **parameters)``: a LocalizerNode on the stand-in, its start finished."""
    started = []

    def start(failures: dict[str, Exception] | None = None, ros_args: tuple[str, ...] = (),
              **parameters) -> localizer_node.LocalizerNode:
        monkeypatch.setattr(localizer_node, "FrameProcessor", type("Failing", (StandIn,), {"failures": failures or {}}))
        context = rclpy.Context()
        rclpy.init(context=context, args=["--ros-args", *ros_args] if ros_args else None)
        # A namespace of our own: node tests over DDS may run beside this one.
        node = localizer_node.LocalizerNode(
            context=context, namespace=f"/in_process_{os.getpid()}",
            parameter_overrides=[Parameter(name, value=value) for name, value in {"model": "stand-in", **parameters}.items()],
        )
        started.append((node, context))
        # Generous: the start runs on the worker thread, which a loaded machine may leave waiting for seconds.
        deadline = time.monotonic() + 120
        while node._state_error == "loading the model":
            assert time.monotonic() < deadline, "the node's start did not finish in 120 s"
            time.sleep(0.01)
        return node

    yield start
    for node, context in started:
        node.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _wait(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


def _synced_set(header: Header, *, depth_frame: str | None = None):
    rgb = conv.numpy_to_image(np.zeros((60, 80, 3), np.uint8), "rgb8", header)
    depth_header = Header(stamp=header.stamp, frame_id=header.frame_id if depth_frame is None else depth_frame)
    depth = conv.depth_to_image(np.full((60, 80), 1.5), depth_header)
    return rgb, depth, conv.camera_info_from_intrinsics(K, 80, 60, header)


def test_service_failures_of_any_kind_are_answered_with_the_path(start, tmp_path: Path) -> None:
    node = start({"save_map": OSError(28, "No space left on device"), "load_map": RuntimeError("bug in the loader")})
    target = tmp_path / "out"
    response = node._on_save_map(SaveMap.Request(path=str(target)), SaveMap.Response())
    assert not response.success
    assert response.message == f"map not saved to {target}: OSError: [Errno 28] No space left on device"
    response = node._on_load_map(LoadMap.Request(path=str(tmp_path / "m")), LoadMap.Response())
    assert not response.success and response.message == f"map {tmp_path / 'm'} not loaded: RuntimeError: bug in the loader"
    assert node.get_parameter("map_path").value == ""  # refused: the parameter still names the map in use
    # A LocusError (the map store's, naming the path) keeps its own message.
    node._processor.failures = {"save_map": LocusError(f"{target}: not a map folder")}
    response = node._on_save_map(SaveMap.Request(path=str(target)), SaveMap.Response())
    assert not response.success and response.message == f"map not saved to {target}: {target}: not a map folder"


def test_load_map_sets_map_path_and_diagnostics_report_the_map_in_use(start, tmp_path: Path) -> None:
    node = start()
    assert node._state()["map_path"] == "" and "no map loaded" in node._state()["error"]
    response = node._on_load_map(LoadMap.Request(path=str(tmp_path / "m")), LoadMap.Response())
    assert response.success and response.message == f"loaded {tmp_path / 'm'}: 3 keyframes, 30 landmarks"
    assert node.get_parameter("map_path").value == str(tmp_path / "m") == node._state()["map_path"]
    assert node._state()["error"] == ""
    # Setting the parameter loads the map; one that cannot be loaded is refused, the map in use stays.
    assert node.set_parameters([Parameter("map_path", value=str(tmp_path / "n"))])[0].successful
    assert node._state()["map_path"] == str(tmp_path / "n")
    node._processor.failures = {"load_map": LocusError("no manifest.json")}
    result = node.set_parameters([Parameter("map_path", value=str(tmp_path / "bad"))])[0]
    assert not result.successful and result.reason == f"map {tmp_path / 'bad'} not loaded: no manifest.json"
    assert node.get_parameter("map_path").value == str(tmp_path / "n") == node._state()["map_path"]
    result = node.set_parameters([Parameter("map_path", value="")])[0]
    assert not result.successful and "cannot be emptied" in result.reason


def test_renaming_map_frame_republishes_the_latched_landmarks_in_it(start, tmp_path: Path) -> None:
    node = start()
    assert node._on_load_map(LoadMap.Request(path=str(tmp_path / "m")), LoadMap.Response()).success
    published = []
    node._pub_landmarks = SimpleNamespace(publish=published.append)
    assert node.set_parameters([Parameter("max_matches", value=50)])[0].successful
    assert not published  # nothing moved
    assert node.set_parameters([Parameter("map_frame", value="world")])[0].successful
    assert [m.header.frame_id for m in published[0].markers] == ["world", "world"]


def _map_one_keyframe(node: localizer_node.LocalizerNode) -> None:
    """A mapping node given its camera's pose in TF and one synchronised set: one keyframe."""
    camera = TransformStamped(header=Header(stamp=Time(sec=1), frame_id="map"), child_frame_id="cam")
    camera.transform.rotation.w = 1.0
    node.tf._on_tf(TFMessage(transforms=[camera]), True)
    node._on_synced(*_synced_set(Header(stamp=Time(sec=5), frame_id="cam")))
    _wait(lambda: node.stats.snapshot()["keyframes_inserted"] == 1, "a keyframe")


def test_while_mapping_map_path_is_where_the_session_is_saved(start, tmp_path: Path) -> None:
    node = start(mode="mapping")
    assert node._processor.map == "new"
    result = node.set_parameters([Parameter("map_path", value=str(tmp_path / "session"))])[0]
    assert result.successful and node._processor.map == "new"  # nothing loaded: the session stays
    assert node.params.map_path == str(tmp_path / "session")
    failures = type(node._processor).failures  # check_save_target is the class's: no processor needed
    failures["check_save_target"] = LocusError(f"{tmp_path}: a folder that is not a LoCUS map")
    result = node.set_parameters([Parameter("map_path", value=str(tmp_path))])[0]
    assert not result.successful and "the mapping session could not be saved there" in result.reason
    assert node.params.map_path == str(tmp_path / "session")
    failures.clear()
    response = node._on_load_map(LoadMap.Request(path=str(tmp_path / "old")), LoadMap.Response())
    assert response.success and node._processor.map == "loaded"  # ~/load_map loads, and records the path
    assert node.get_parameter("map_path").value == str(tmp_path / "old")


def test_a_session_mapped_then_localized_in_is_saved_on_shutdown(start, tmp_path: Path) -> None:
    """Map a room, switch to localization in it, Ctrl-C: the new keyframes are saved to map_path,
    as they would be had the node stayed in mapping mode; a session saved since is not saved again."""
    node = start(mode="mapping", map_path=str(tmp_path / "room"))
    _map_one_keyframe(node)
    assert node.set_parameters([Parameter("mode", value="localization")])[0].successful
    node.shutdown()
    assert node._processor.saves == 1 and node._processor.map_path == tmp_path / "room"
    node = start(mode="mapping", map_path=str(tmp_path / "room"))
    _map_one_keyframe(node)
    assert node._on_save_map(SaveMap.Request(path=""), SaveMap.Response()).success
    assert node.set_parameters([Parameter("mode", value="localization")])[0].successful
    node.shutdown()
    assert node._processor.saves == 1


def test_loading_a_map_does_not_drop_unsaved_keyframes(start, tmp_path: Path) -> None:
    node = start(mode="mapping", map_path=str(tmp_path / "room"))
    _map_one_keyframe(node)
    response = node._on_load_map(LoadMap.Request(path=str(tmp_path / "other")), LoadMap.Response())
    assert not response.success and "1 keyframe mapped since the map was last saved" in response.message
    assert node._processor.map == "new"  # the session stays
    assert node._on_save_map(SaveMap.Request(path=""), SaveMap.Response()).success
    assert node._on_load_map(LoadMap.Request(path=str(tmp_path / "other")), LoadMap.Response()).success


def test_a_map_without_keyframes_is_refused_for_localization_before_it_replaces_the_one_in_use(
    start, tmp_path: Path
) -> None:
    # map_path and mode set together (atomically): the map loaded, then the switch to localization
    # failed on it, and the set was refused with the map already replaced
    node = start(mode="mapping", map_path=str(tmp_path / "room"))
    assert node._on_save_map(SaveMap.Request(path=""), SaveMap.Response()).success
    result = node.set_parameters_atomically(
        [Parameter("map_path", value=str(tmp_path / "empty")), Parameter("mode", value="localization")]
    )
    assert not result.successful and "the map has no keyframes, nothing to localize in" in result.reason
    assert node.params.mode == "mapping" and node._processor.map == "new"
    assert node._processor.map_path == tmp_path / "room"
    node = start(map_path=str(tmp_path / "a"))
    response = node._on_load_map(LoadMap.Request(path=str(tmp_path / "empty")), LoadMap.Response())
    assert not response.success and node._processor.map_path == tmp_path / "a"
    # mapping may start from an empty map
    node = start(mode="mapping", map_path=str(tmp_path / "room"))
    assert node._on_load_map(LoadMap.Request(path=str(tmp_path / "empty")), LoadMap.Response()).success


def test_switching_to_mapping_with_a_map_path_holding_no_map_starts_a_new_map_there(start, tmp_path: Path) -> None:
    """As a node started in mapping mode does: map_path names a map to extend, or where a new one
    will be saved. It was loaded as a map, and the switch refused."""
    (tmp_path / "kitchen").mkdir()
    (tmp_path / "kitchen" / "manifest.json").write_text("{}")
    node = start(map_path=str(tmp_path / "kitchen"))
    result = node.set_parameters_atomically(
        [Parameter("map_path", value=str(tmp_path / "garage")), Parameter("mode", value="mapping")])
    assert result.successful, result.reason
    assert node._processor.map == "new" and node.params.map_path == str(tmp_path / "garage")
    # a map there is extended
    node = start(map_path=str(tmp_path / "a"))
    assert node.set_parameters_atomically(
        [Parameter("map_path", value=str(tmp_path / "kitchen")), Parameter("mode", value="mapping")]).successful
    assert node._processor.map == "loaded" and node._processor.map_path == tmp_path / "kitchen"


def test_a_new_map_does_not_drop_unsaved_keyframes(start, tmp_path: Path) -> None:
    node = start(mode="mapping", map_path=str(tmp_path / "room"))
    node._processor._unsaved = 2  # mapped, then localized in, not yet saved
    assert node.set_parameters([Parameter("mode", value="localization")])[0].successful
    result = node.set_parameters_atomically(
        [Parameter("map_path", value=str(tmp_path / "garage")), Parameter("mode", value="mapping")])
    assert not result.successful and "2 keyframes mapped since the map was last saved would be lost" in result.reason
    assert node.params.mode == "localization" and node._processor.map == "new"
    assert node.params.map_path == str(tmp_path / "room")


def test_a_start_failure_is_the_reported_state_and_the_node_keeps_running(start, tmp_path: Path) -> None:
    node = start({"load_map": RuntimeError("corrupt index")}, map_path=str(tmp_path / "m"))
    # The real reason, not "set map_path": map_path is set.
    assert node._state()["error"] == f"map {tmp_path / 'm'} not loaded: RuntimeError: corrupt index"
    node = start({"new_map": MemoryError("no memory for the map")}, mode="mapping")
    assert node._state()["error"] == "start failed: MemoryError: no memory for the map"
    node._on_synced(*_synced_set(Header(stamp=Time(sec=5), frame_id="cam")))
    _wait(lambda: node.stats.snapshot()["frames_processed"] == 1, "the frame to be processed")
    assert node._worker.is_alive() and "start failed" in node.stats.snapshot()["last_reason"]


def test_the_map_loaded_at_start_is_warmed_up_and_a_failed_warm_up_only_warns(start, tmp_path: Path, capfd) -> None:
    # the map is reported loaded before the warm-up ends (frames wait in the queue: the worker thread warms up)
    node = start(map_path=str(tmp_path / "m"))
    _wait(lambda: getattr(node._processor, "warmed_up", False), "the warm-up")
    assert node._state()["error"] == ""
    node = start({"warm_up": RuntimeError("no memory for the buffers")}, map_path=str(tmp_path / "m"))
    err = ""

    def warned() -> bool:
        nonlocal err
        err += capfd.readouterr().err
        return "warm-up failed (the first frame will be slow): RuntimeError: no memory for the buffers" in err

    _wait(warned, "the warm-up's warning")
    assert node._state()["error"] == "" and node._worker.is_alive()


def test_a_map_loaded_later_by_the_service_is_warmed_up_too(start, tmp_path: Path) -> None:
    node = start()  # no map_path: the robot's first map comes from ~/load_map
    assert not getattr(node._processor, "warmed_up", False)
    assert node._on_load_map(LoadMap.Request(path=str(tmp_path / "m")), LoadMap.Response()).success
    assert node._processor.warmed_up


def test_shutdown_does_not_wait_out_a_stuck_worker_with_nothing_to_save(start, tmp_path: Path) -> None:
    node = start(map_path=str(tmp_path / "m"))
    stuck, release = threading.Event(), threading.Event()

    def localize(frame, odometry=None):
        stuck.set()
        release.wait(120)  # a hung driver call: released at the end, so the thread ends
        raise RuntimeError("released")

    node._processor.localize = localize
    node._on_synced(*_synced_set(Header(stamp=Time(sec=5), frame_id="cam")))
    _wait(stuck.is_set, "the worker to take the frame")
    began = time.monotonic()
    node.shutdown()
    waited = time.monotonic() - began
    release.set()
    assert waited < 20, f"shutdown waited {waited:.1f} s for a stuck worker in localization mode"


def test_a_bug_in_the_core_is_counted_as_a_processed_frame(start, tmp_path: Path) -> None:
    node = start({"localize": ZeroDivisionError("division by zero")}, map_path=str(tmp_path / "m"))
    assert node._state()["error"] == ""
    node._on_synced(*_synced_set(Header(stamp=Time(sec=5), frame_id="cam")))
    stats = _wait(lambda: (s := node.stats.snapshot())["frames_processed"] == 1 and s, "the frame to be processed")
    assert stats["skipped"] == {"internal": 1} and stats["last_reason"] == "ZeroDivisionError: division by zero"
    # The worker publishes the frame's status right after counting it: a loaded machine may preempt it in between.
    status = _wait(lambda: node._frame_status, "the frame's status")
    assert status.header.stamp == Time(sec=5)  # its status went out
    assert node._worker.is_alive()


def test_shutdown_goes_on_when_the_final_save_fails(start, tmp_path: Path) -> None:
    node = start({"save_map": PermissionError(13, "Permission denied")}, mode="mapping", map_path=str(tmp_path / "m"))
    assert node._processor.counts()[0] > 0  # as if keyframes were inserted
    node.shutdown()  # logs the failure; main() goes on to destroy the node and shut rclpy down
    assert not node._worker.is_alive()


def test_a_second_ctrl_c_does_not_abort_the_final_save(monkeypatch: pytest.MonkeyPatch) -> None:
    """rclpy turns every SIGINT into KeyboardInterrupt: a second Ctrl-C (an impatient user, or the
    terminal's beside ros2 launch's) aborted main()'s final map save, and the session was lost."""
    saved = []

    class Node:
        def shutdown(self) -> None:  # the final save, during which Ctrl-C is pressed again
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)
            saved.append(True)

        def destroy_node(self) -> None:
            pass

    class Executor:
        def add_node(self, node: Node) -> None:
            pass

        def spin(self) -> None:
            raise KeyboardInterrupt  # the first Ctrl-C

    monkeypatch.setattr(localizer_node, "LocalizerNode", Node)
    monkeypatch.setattr(localizer_node, "SingleThreadedExecutor", Executor)
    handler = signal.getsignal(signal.SIGINT)
    try:
        assert localizer_node.main([]) == 0
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C interrupted the final save")
    finally:
        signal.signal(signal.SIGINT, handler)
    assert saved == [True]


def test_a_frame_in_flight_when_rclpy_shuts_down_ends_the_worker_quietly(start, tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C shuts the context down before main() stops the worker: the frame it was processing
    could not be published, and its failure report could not be either, which killed the thread
    with a traceback (and logged the frame as a failure of the core)."""
    crashes = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    node = start(map_path=str(tmp_path / "m"))
    rclpy.shutdown(context=node.context)
    node._on_synced(*_synced_set(Header(stamp=Time(sec=5), frame_id="cam")))
    node._worker.join(timeout=60)
    assert not node._worker.is_alive() and crashes == []
    assert node.stats.snapshot()["skipped"] == {}


def test_rectified_reads_P_and_does_not_warn_about_distortion(start, capfd: pytest.CaptureFixture) -> None:
    header = Header(stamp=Time(sec=5), frame_id="cam")
    rgb, depth, info = _synced_set(header)
    info.d = [0.2, -0.1, 0.0, 0.0, 0.0]
    info.p = [50.0, 0, 40, 0, 0, 50.0, 30, 0, 0, 0, 1, 0]
    item = localizer_node._Frame(rgb, depth, info, time.monotonic())
    frame, _, _ = start(rectified=True)._to_frame(item)
    np.testing.assert_array_equal(frame.K, np.reshape(info.p, (3, 4))[:, :3])
    frame, _, _ = start()._to_frame(item)
    np.testing.assert_array_equal(frame.K, K)
    err = capfd.readouterr().err
    assert err.count("plumb_bob distortion") == 1 and "rectified: true" in err


def test_depth_in_another_frame_is_warned_about_once_and_used(start, capfd: pytest.CaptureFixture) -> None:
    node = start()
    for sec in (5, 6):
        item = localizer_node._Frame(*_synced_set(Header(stamp=Time(sec=sec), frame_id="cam"), depth_frame="depth_cam"),
                                     time.monotonic())
        frame, camera, _ = node._to_frame(item)
        assert camera == "cam" and frame.depth.shape == (60, 80)
    err = capfd.readouterr().err
    assert err.count("depth must be registered to the colour camera") == 1 and "'depth_cam'" in err


def test_float_parameters_take_integers_and_the_shipped_yaml_applies_in_a_namespace(start, tmp_path: Path) -> None:
    """`diagnostics_period: 2` in a params file or `ros2 param set ... 1` is a float parameter's
    value, not a type error that ends the node; the shipped YAML's `/**/locus_localizer` key
    reaches the node in a namespace (the fixture's /in_process_PID)."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "localize.yaml").read_text())
    config["/**/locus_localizer"]["ros__parameters"].update(model="stand-in", diagnostics_period=2, tf_timeout=1, max_matches=7)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(config))
    node = start(ros_args=("--params-file", str(params_file)))
    assert node.get_namespace() == f"/in_process_{os.getpid()}"
    assert node.params.max_matches == 7  # the file's value: the key matched the namespaced node
    assert node.params.diagnostics_period == 2.0 and isinstance(node.params.diagnostics_period, float)
    assert node.params.tf_timeout == 1.0 and isinstance(node.params.tf_timeout, float)
    # parameter_overrides (what -p and launch files give) and a runtime set, likewise.
    node = start(transform_tolerance=0, sync_max_interval=1)
    assert node.params.transform_tolerance == 0.0 and node.params.sync_max_interval == 1.0
    assert node.set_parameters([Parameter("tf_timeout", value=1)])[0].successful
    assert node.params.tf_timeout == 1.0 and isinstance(node.params.tf_timeout, float)
    # Any other type is still refused, with the reason, and the value in use is kept.
    result = node.set_parameters([Parameter("tf_timeout", value="soon")])[0]
    assert not result.successful and "tf_timeout must be a float; got str 'soon'" in result.reason
    result = node.set_parameters([Parameter("tf_timeout", value=True)])[0]
    assert not result.successful and "tf_timeout must be a float; got bool" in result.reason
    assert node.params.tf_timeout == 1.0
    # Integer parameters stay strictly typed (rclpy refuses a float before our check).
    assert not node.set_parameters([Parameter("max_matches", value=2.5)])[0].successful


def test_the_first_frame_after_time_jumps_back_finds_its_transform(start, tmp_path: Path) -> None:
    """A looped bag: the new run's TF arrives before its first image (as a player publishes it);
    the node cleared the TF history when the image showed the jump, that transform with it, and
    the first frame of every run failed its lookup."""
    node = start(mode="mapping", map_path=str(tmp_path / "m"), tf_timeout=0.2)
    for sec in (100, 1):
        camera = TransformStamped(header=Header(stamp=Time(sec=sec), frame_id="map"), child_frame_id="cam")
        camera.transform.rotation.w = 1.0
        node.tf._on_tf(TFMessage(transforms=[camera]), False)
        node._on_synced(*_synced_set(Header(stamp=Time(sec=sec), frame_id="cam")))
        _wait(lambda: node.stats.snapshot()["frames_processed"] == (1 if sec == 100 else 2), "the frame to be processed")
    stats = node.stats.snapshot()
    assert stats["keyframes_inserted"] == 2 and stats["skipped"] == {"time_jump": 1}


def test_diagnostics_warn_when_mapping_frames_fail(start, tmp_path: Path) -> None:
    """Every frame failing in mapping mode (a core error, not a TF one) inserts nothing: the
    localization status said OK "mapping" all the same (only a TF failure made it WARN)."""
    from diagnostic_msgs.msg import DiagnosticStatus

    from locus_ros.diagnostics import render

    node = start({"insert_keyframe": LocusError("no valid depth")}, mode="mapping", map_path=str(tmp_path / "room"))
    camera = TransformStamped(header=Header(stamp=Time(sec=1), frame_id="map"), child_frame_id="cam")
    camera.transform.rotation.w = 1.0
    node.tf._on_tf(TFMessage(transforms=[camera]), True)
    node._on_synced(*_synced_set(Header(stamp=Time(sec=5), frame_id="cam")))
    _wait(lambda: node.stats.snapshot()["frames_processed"] == 1, "the frame to be processed")
    _, status = render(node.stats.snapshot(), node_name="n", inputs=[], sync={}, state=node._state())
    assert (status.level, status.message) == (DiagnosticStatus.WARN, "no valid depth")
    # A frame inserted again: OK.
    node._processor.failures = {}
    node._on_synced(*_synced_set(Header(stamp=Time(sec=6), frame_id="cam")))
    _wait(lambda: node.stats.snapshot()["frames_processed"] == 2, "the frame to be processed")
    _, status = render(node.stats.snapshot(), node_name="n", inputs=[], sync={}, state=node._state())
    assert (status.level, status.message) == (DiagnosticStatus.OK, "mapping")


def test_map_to_odom_is_stamped_at_the_image_plus_the_tolerance_to_the_nanosecond(start, tmp_path: Path) -> None:
    """Through float seconds a stamp of today's epoch moved by up to ~120 ns: with
    transform_tolerance 0 about half the map->odom transforms fell before their image, where a
    lookup at the image's stamp extrapolates into the future."""
    node = start(map_path=str(tmp_path / "m"), transform_tolerance=0.0)
    node.tf._on_tf(TFMessage(transforms=[odom_to_cam(EXACT_STAMP)]), False)
    node._processor.localize = lambda frame, odometry: SimpleNamespace(
        localized=True, T_map_cam=np.eye(4), covariance=None, matches=[], reason="", inliers=50)
    published = []
    node._pub_tf = SimpleNamespace(publish=published.append)
    node._on_synced(*_synced_set(Header(stamp=EXACT_STAMP, frame_id="cam")))
    _wait(lambda: published, "map->odom")
    assert published[0].transforms[0].header.stamp == EXACT_STAMP
    assert node.set_parameters([Parameter("transform_tolerance", value=0.25)])[0].successful
    node._on_synced(*_synced_set(Header(stamp=EXACT_STAMP, frame_id="cam")))
    _wait(lambda: len(published) == 2, "map->odom")
    assert published[1].transforms[0].header.stamp == Time(sec=EXACT_STAMP.sec, nanosec=EXACT_STAMP.nanosec + 250_000_000)


def test_odom_frame_renamed_during_an_inference_does_not_mislabel_map_to_odom(start, tmp_path: Path) -> None:
    """The frame's map->odom is computed from the odom frame of its parameters: it was published
    under the odom frame set meanwhile (the new name on the old frame's transform)."""
    node = start(map_path=str(tmp_path / "m"))
    node.tf._on_tf(TFMessage(transforms=[odom_to_cam(EXACT_STAMP)]), False)  # odom -> cam: x = 1
    other = TransformStamped(header=Header(stamp=EXACT_STAMP, frame_id="odom2"), child_frame_id="odom")
    other.transform.translation.x, other.transform.rotation.w = 4.0, 1.0
    node.tf._on_tf(TFMessage(transforms=[other]), True)  # odom2 -> cam: x = 5

    def localize(frame, odometry):  # the parameter is set while the frame is being localized
        assert node.set_parameters([Parameter("odom_frame", value="odom2")])[0].successful
        return SimpleNamespace(localized=True, T_map_cam=np.eye(4), covariance=None, matches=[], reason="", inliers=50)

    node._processor.localize = localize
    published = []
    node._pub_tf = SimpleNamespace(publish=published.append)
    node._on_synced(*_synced_set(Header(stamp=EXACT_STAMP, frame_id="cam")))
    t = _wait(lambda: published, "map->odom")[0].transforms[0]
    assert (t.child_frame_id, t.transform.translation.x) == ("odom", -1.0)


def test_the_odometry_at_the_image_is_the_trackers_motion_prior(start, tmp_path: Path) -> None:
    node = start(map_path=str(tmp_path / "m"))
    seen = []

    def localize(frame, odometry):
        seen.append(odometry)
        return SimpleNamespace(localized=False, T_map_cam=None, covariance=None, matches=[], reason="no", inliers=0)

    node._processor.localize = localize
    node._on_synced(*_synced_set(Header(stamp=EXACT_STAMP, frame_id="cam")))  # no odom -> cam in TF yet
    _wait(lambda: seen, "a frame")
    node.tf._on_tf(TFMessage(transforms=[odom_to_cam(EXACT_STAMP)]), False)  # odom -> cam: x = 1
    node._on_synced(*_synced_set(Header(stamp=EXACT_STAMP, frame_id="cam")))
    _wait(lambda: len(seen) == 2, "a second frame")
    assert seen[0] is None and seen[1][0, 3] == 1.0


def test_a_new_odom_frame_restarts_tracking(start, tmp_path: Path) -> None:
    """The tracker moves the previous pose by the odometry's motion since the previous frame: after
    odom_frame changes that is the previous frame's pose in the old odom frame against this one's in
    the new (their offset, not a motion), so the next frame is localized in full."""
    node = start(map_path=str(tmp_path / "m"))
    calls = []
    node._processor.reset_tracking = lambda: calls.append("reset")

    def localize(frame, odometry):
        calls.append(None if odometry is None else float(odometry[0, 3]))
        return SimpleNamespace(localized=False, T_map_cam=None, covariance=None, matches=[], reason="no", inliers=0)

    node._processor.localize = localize
    node.tf._on_tf(TFMessage(transforms=[odom_to_cam(EXACT_STAMP)]), True)  # odom -> cam: x = 1
    other = odom_to_cam(EXACT_STAMP)
    other.header.frame_id, other.child_frame_id = "odom2", "odom"
    other.transform.translation.x = 4.0
    node.tf._on_tf(TFMessage(transforms=[other]), True)  # odom2 -> odom -> cam: x = 5
    node._on_synced(*_synced_set(Header(stamp=EXACT_STAMP, frame_id="cam")))
    _wait(lambda: len(calls) == 1, "a frame")
    assert node.set_parameters([Parameter("odom_frame", value="odom2")])[0].successful
    node._on_synced(*_synced_set(Header(stamp=EXACT_STAMP, frame_id="cam")))
    _wait(lambda: len(calls) >= 2 and calls[-1] != "reset", "a second frame")
    assert calls == [1.0, "reset", 5.0]


def test_diagnostics_count_the_tracked_frames(start, tmp_path: Path) -> None:
    from locus_ros.diagnostics import render

    node = start(map_path=str(tmp_path / "m"), publish_tf=False)
    methods = iter(["3d-3d", "tracked", "tracked"])
    node._processor.localize = lambda frame, odometry: SimpleNamespace(
        localized=True, T_map_cam=np.eye(4), covariance=None, matches=[], reason="", inliers=50, method=next(methods))
    for _ in range(3):
        node._on_synced(*_synced_set(Header(stamp=EXACT_STAMP, frame_id="cam")))
        _wait(lambda: node.stats.frames_processed == _ + 1, "a frame")
    _, status = render(node.stats.snapshot(), node_name="n", inputs=[], sync={}, state=node._state())
    values = {kv.key: kv.value for kv in status.values}
    assert values["frames_localized"] == "3" and values["frames_tracked"] == "2"


def test_reset_and_mode_changes_restart_tracking(start, tmp_path: Path) -> None:
    """After ~/reset or a mode change the next frame is localized in full, not tracked from the
    pose of a frame before them."""
    from std_srvs.srv import Trigger

    node = start(map_path=str(tmp_path / "m"))
    node._processor.tracking_resets = 0
    node._processor.reset_tracking = lambda: setattr(node._processor, "tracking_resets", node._processor.tracking_resets + 1)
    assert node._on_reset(Trigger.Request(), Trigger.Response()).success
    assert node._processor.tracking_resets == 1
    for mode in ("mapping", "localization"):
        assert node.set_parameters([Parameter("mode", value=mode)])[0].successful
    assert node._processor.tracking_resets == 3


def test_diagnostics_are_published_on_sim_time_before_any_clock(start) -> None:
    """use_sim_time with nothing on /clock (`ros2 bag play` without --clock, or before the bag starts):
    the diagnostics timer ran on ROS time, stuck at 0, and the node published no /diagnostics nor
    ~/status, the very messages that would say why it does nothing."""
    from rclpy.executors import SingleThreadedExecutor

    node = start(use_sim_time=True, diagnostics_period=0.1)
    published = []
    node._pub_diag = SimpleNamespace(publish=published.append)
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    deadline = time.monotonic() + 60
    while not published and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    executor.remove_node(node)
    assert published, "no /diagnostics on sim time without /clock"


def test_a_camera_driver_offering_incompatible_qos_is_named_in_the_diagnostics(start) -> None:
    """image_qos: reliable and a best-effort camera driver: DDS never delivers its images. The
    diagnostics said only "no messages on <topic>"; they now say why, and which parameter fixes it."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from locus_ros.diagnostics import render

    node = start(image_qos="reliable", diagnostics_period=0.1)
    driver = rclpy.create_node("best_effort_camera", context=node.context, namespace=node.get_namespace())
    driver.create_publisher(Image, "rgb/image", qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    executor.add_node(driver)
    rgb = node.resolve_topic_name("rgb/image")

    def inputs_message() -> str:
        executor.spin_once(timeout_sec=0.05)
        inputs, _ = render(node.stats.snapshot(), node_name="n", inputs=node._input_names, sync={}, state=node._state())
        return inputs.message if "incompatible" in inputs.message else ""

    try:
        message = _wait(inputs_message, "the incompatible publisher to be reported")
    finally:
        executor.remove_node(driver)
        executor.remove_node(node)
        driver.destroy_node()
    assert f"{rgb} (a publisher offers incompatible QoS: RELIABILITY; image_qos" in message


def test_inputs_whose_stamps_never_synchronise_are_reported_with_their_stamps() -> None:
    """rgb, depth and camera_info all arrive, but on clocks too far apart for sync_max_interval (a
    RealSense's depth on its hardware clock, camera_info stamped 0): every set was dropped while the
    inputs status said "receiving", OK, and nothing said why no frame was processed."""
    from diagnostic_msgs.msg import DiagnosticStatus

    from locus_ros.diagnostics import render

    stats = NodeStats()
    topics = ["/cam/rgb", "/cam/depth", "/cam/info"]
    for i in range(3):
        for topic, offset in zip(topics, (0.0, 0.5, None)):
            stats.message_in(topic, 0.0 if offset is None else 100.0 + i / 30 + offset)
            time.sleep(0.01)
    inputs, _ = render(stats.snapshot(), node_name="n", inputs=topics, sync={"emitted": 0, "dropped": 3}, state={})
    assert inputs.level == DiagnosticStatus.WARN
    assert inputs.message == ("no rgb, depth and camera_info set within sync_max_interval: newest stamps 100.067 on /cam/rgb, "
                              "100.567 on /cam/depth, 0.000 on /cam/info")
    inputs, _ = render(stats.snapshot(), node_name="n", inputs=topics, sync={"emitted": 1, "dropped": 3}, state={})
    assert (inputs.level, inputs.message) == (DiagnosticStatus.OK, "receiving")


def test_a_map_path_that_cannot_be_checked_is_refused_and_the_node_keeps_running(start) -> None:
    """Checking where a mapping session would be saved can fail with an OSError (a folder of another
    user, run as a robot's own user: EACCES): it escaped the parameter callback, and rclpy's
    parameter service let it end the executor, and the node, at `ros2 param set`."""
    denied = PermissionError(13, "Permission denied", "/home/other/maps")
    node = start({"new_map": denied})
    result = node.set_parameters([Parameter("mode", value="mapping")])[0]  # no map to extend: a new one
    assert not result.successful and result.reason == "cannot map: PermissionError: [Errno 13] Permission denied: '/home/other/maps'"
    node = start(mode="mapping")
    type(node._processor).failures["check_save_target"] = denied
    result = node.set_parameters([Parameter("map_path", value="/home/other/maps/kitchen")])[0]
    assert not result.successful and result.reason == (
        "map_path /home/other/maps/kitchen: the mapping session could not be saved there: "
        "PermissionError: [Errno 13] Permission denied: '/home/other/maps'"
    )
    assert node.params.mode == "mapping" and node.params.map_path == ""


def test_map_to_odom_not_published_for_want_of_odometry_is_logged(start, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Localized, but odom -> camera missing from TF (odometry not running, a frame misnamed): the pose
    went out, map->odom never did, and only /diagnostics said why; the console, nothing."""
    node = start(map_path=str(tmp_path / "m"), tf_timeout=0.0)
    node._processor.localize = lambda frame, odometry: SimpleNamespace(
        localized=True, T_map_cam=np.eye(4), covariance=None, matches=[], reason="", inliers=50, method="full")
    node._on_synced(*_synced_set(Header(stamp=EXACT_STAMP, frame_id="cam")))
    _wait(lambda: node.stats.snapshot()["frames_processed"] == 1, "the frame to be processed")
    assert node.stats.snapshot()["skipped"] == {"tf": 1}
    assert "map->odom not published: " in capfd.readouterr().err


def test_diagnostics_are_named_with_the_node_s_namespace(start, monkeypatch: pytest.MonkeyPatch) -> None:
    node = start()
    published = []
    monkeypatch.setattr(node._pub_diag, "publish", published.append)
    node._publish_diagnostics()
    names = {status.name for status in published[-1].status}
    assert names == {f"in_process_{os.getpid()}/locus_localizer: inputs", f"in_process_{os.getpid()}/locus_localizer: localization"}
