"""The player over real DDS: what a camera driver + ground truth would publish, at the recorded rate."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from locus_core.data import PosedDataset, PosedFrame, open_dataset  # noqa: E402
from locus_core.data.formats import ros_messages  # noqa: E402
from locus_ros import conversions as conv  # noqa: E402
from locus_ros.player import Player, PlayerConfig  # noqa: E402
from ros_harness import ROOT, Client  # noqa: E402

pytestmark = pytest.mark.ros
TOPICS = {
    "/camera/color/image_raw": Image,
    "/camera/color/image_raw/compressed": CompressedImage,
    "/camera/aligned_depth_to_color/image_raw": Image,
    "/camera/color/camera_info": CameraInfo,
    "/clock": Clock,
    "/ground_truth/pose": PoseStamped,
}  # /tf is recorded by every Client


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    real = ROOT.parent / "shared" / "data" / "7scenes-redkitchen"
    if real.is_dir():
        return real
    from locus_core.data.synthetic import generate_scene

    return generate_scene(tmp_path_factory.mktemp("scene"), seed=0, rooms=1, frames=30, size=(120, 160))


@pytest.fixture
def client():
    c = Client("locus_player_test")
    for topic, msg_type in TOPICS.items():
        c.subscribe(topic, msg_type)
    latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    c.subscribe("/tf_static", TFMessage, latched)
    yield c
    c.close()


def _player(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "locus_ros.player", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_publishes_a_recording_at_its_rate(client: Client, data: Path) -> None:
    dataset = open_dataset(data, frames="0:20:4")
    start = time.monotonic()
    # --wait: generous, for DDS discovery on a loaded machine (the default 10 s then plays into the void).
    proc = _player(str(data), "--frames", "0:20:4", "--rate", "4", "--tf", "odom", "--compressed", "--wait", "120")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "published 5 frames" in out
    elapsed = time.monotonic() - start
    client.wait_for(lambda: len(client.messages("/camera/color/camera_info")) == 5, 60, "5 camera_info messages")
    rgb = client.messages("/camera/color/image_raw")
    depth = client.messages("/camera/aligned_depth_to_color/image_raw")
    assert len(rgb) == len(depth) == len(client.messages("/camera/color/image_raw/compressed")) == 5
    stamps = [conv.stamp_to_seconds(m.header.stamp) for m in rgb]
    # 7-Scenes (or synthetic) frames have no stamps: index at --fps 30, from 1 s (0 is "latest" to tf2)
    np.testing.assert_allclose(stamps, [1.0 + f.index / 30 for f in dataset], atol=1e-6)
    span = stamps[-1] - stamps[0]
    assert elapsed >= span / 4  # never faster than --rate
    assert [conv.stamp_to_seconds(c.clock) for c in client.messages("/clock")] == pytest.approx(stamps)
    for i, frame in enumerate(dataset):
        assert rgb[i].header.frame_id == depth[i].header.frame_id == "camera_color_optical_frame"
        np.testing.assert_array_equal(ros_messages.rgb_from_image(rgb[i]), frame.rgb)
        back = ros_messages.depth_from_image(depth[i])
        np.testing.assert_array_equal(np.isnan(back), np.isnan(frame.depth))
        assert np.nanmax(np.abs(back - frame.depth)) <= 0.0006  # millimetre quantisation
        info = client.messages("/camera/color/camera_info")[i]
        np.testing.assert_allclose(ros_messages.intrinsics_from_camera_info(info), frame.K)
        odom = client.messages("/tf")[i].transforms[0]
        assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
        # exact: the readers re-orthonormalise 7-Scenes' rotations, so the quaternion round trip loses nothing
        np.testing.assert_allclose(conv.transform_to_matrix(odom.transform), frame.T_world_cam, atol=1e-9)
        truth = client.messages("/ground_truth/pose")[i]
        assert truth.header.frame_id == "map"
        np.testing.assert_allclose(conv.pose_to_matrix(truth.pose), frame.T_world_cam, atol=1e-9)
    static = client.wait_for(lambda: client.messages("/tf_static"), 60, "/tf_static")[0].transforms[0]
    assert (static.header.frame_id, static.child_frame_id) == ("base_link", "camera_color_optical_frame")


def test_loop_keeps_time_increasing_and_stops_on_sigint(client: Client, data: Path) -> None:
    proc = _player(str(data), "--frames", "0:6:2", "--rate", "10", "--loop")
    client.wait_for(lambda: len(client.messages("/clock")) >= 8 and client.messages("/tf"), 60, "two loops of 3 frames")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    stamps = [conv.stamp_to_seconds(c.clock) for c in client.messages("/clock")]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), stamps
    tf = client.messages("/tf")[0].transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ("map", "camera_color_optical_frame")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        PlayerConfig(rate=0)
    with pytest.raises(ValueError, match="tf must be one of odom, map, none"):
        PlayerConfig(tf="world")
    proc = _player("/no/such/data")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "/no/such/data" in out


def _frame(index: int, stamp: float) -> PosedFrame:
    return PosedFrame(rgb=np.zeros((4, 6, 3), np.uint8), depth=None, K=np.diag([5.0, 5.0, 1.0]),
                      T_world_cam=np.eye(4), frame_id=f"f{index}", index=index, stamp=stamp)


def _unstamped(fmt: str, indices: list[int], stamp_of_index) -> PosedDataset:
    """A data set of ``fmt`` whose reader derives stamps from indices, as ``stamp_of_index`` does."""
    return PosedDataset(path=Path(fmt), name=fmt, format=fmt, indices=indices,
                        poses=np.stack([np.eye(4)] * len(indices)), intrinsics=np.diag([5.0, 5.0, 1.0]),
                        image_size=(4, 6), loader=lambda k: _frame(indices[k], stamp_of_index(indices[k])))


class _Clock:
    """The player's ``time`` module, on a clock that moves only when the player sleeps: its schedule,
    whatever the load on the machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    from locus_ros import player as player_module

    fake = _Clock()
    monkeypatch.setattr(player_module, "time", fake)
    return fake


@pytest.fixture
def in_process() -> Iterator:
    """``in_process(dataset, **config)``: a Player on a node of this process whose publishing is
    recorded as (index, stamp, monotonic time) instead of sent."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("locus_player_in_process", context=context)

    def make(dataset, **config) -> tuple[Player, list[tuple[int, float, float]]]:
        player = Player(node, dataset, PlayerConfig(**config))
        published: list[tuple[int, float, float]] = []
        player._publish = lambda frame, stamp: published.append((frame.index, stamp, time.monotonic()))
        return player, published

    yield make
    node.destroy_node()
    rclpy.try_shutdown(context=context)


@pytest.mark.parametrize(("fmt", "stamp_of_index", "fps", "expected"), [
    ("7scenes", lambda i: i / 30, 30.0, [1.0, 1.1, 1.2]),  # frame 0 used to be published at time 0
    ("slambook", float, 10.0, [1.0, 1.1, 1.2]),  # index in seconds: used to ignore --fps and play at 1 Hz
])
def test_unstamped_formats_play_at_fps_from_one_second(in_process, clock, fmt, stamp_of_index, fps, expected) -> None:
    indices = [0, 3, 6] if fmt == "7scenes" else [1, 2, 3]
    player, published = in_process(_unstamped(fmt, indices, stamp_of_index), fps=fps)
    start = clock.now
    assert player.play().published == 3
    assert [index for index, _, _ in published] == indices
    assert [stamp for _, stamp, _ in published] == pytest.approx(expected)
    assert clock.now - start == pytest.approx(0.2)  # played at --fps: 1 Hz took 2 s


def test_recorded_stamps_are_kept(in_process) -> None:
    player, published = in_process([_frame(0, 5.0), _frame(1, 5.05)])
    player.play()
    assert [stamp for _, stamp, _ in published] == pytest.approx([5.0, 5.05])


def test_stop_is_not_held_up_by_a_gap_in_the_recording(in_process) -> None:
    player, published = in_process([_frame(0, 1.0), _frame(1, 60.0)])
    thread = threading.Thread(target=player.play, daemon=True)  # before the fix it slept out the gap
    thread.start()
    deadline = time.monotonic() + 60
    while not published and time.monotonic() < deadline:
        time.sleep(0.01)
    player.stop()
    stopped = time.monotonic()
    thread.join(timeout=10)
    # Stopped within a slice of sleep (0.1 s): 10 s, for a loaded machine, is still far from the 59 s gap.
    assert not thread.is_alive() and time.monotonic() - stopped < 10
    assert [index for index, _, _ in published] == [0]


def test_with_compressed_a_compressed_colour_subscriber_is_enough_to_start() -> None:
    """A node with rgb_transport: compressed subscribes to <rgb>/compressed, not to the raw topic: the
    player used to wait out --wait for a raw subscriber and warn that nobody subscribes."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("locus_player_compressed", context=context)
    try:
        config = PlayerConfig(compressed=True, rgb_topic="/player_test/rgb", depth_topic="/player_test/depth",
                              camera_info_topic="/player_test/info")
        player = Player(node, [_frame(0, 1.0)], config)
        for msg_type, topic in [(CompressedImage, "/player_test/rgb/compressed"), (Image, "/player_test/depth"),
                                (CameraInfo, "/player_test/info")]:
            node.create_subscription(msg_type, topic, lambda msg: None, 10)
        assert player.wait_for_subscribers(5.0)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_playing_waits_for_a_tf_subscriber_discovered_after_the_camera_topics() -> None:
    """The player started 0.5 s after the camera topics were matched: a /tf subscriber discovered
    later lost the first frames' transforms (reliable, volatile: nothing is resent to a late reader)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("locus_player_late_tf", context=context)
    try:
        config = PlayerConfig(rgb_topic="/player_tf_test/rgb", depth_topic="/player_tf_test/depth",
                              camera_info_topic="/player_tf_test/info")
        player = Player(node, [_frame(0, 1.0)], config)
        for msg_type, topic in [(Image, config.rgb_topic), (Image, config.depth_topic), (CameraInfo, config.camera_info_topic)]:
            node.create_subscription(msg_type, topic, lambda msg: None, 10)
        late = threading.Timer(1.0, lambda: node.create_subscription(TFMessage, "/tf", lambda msg: None, 10))
        late.start()
        assert player.wait_for_subscribers(30.0)
        assert player._tf.get_subscription_count() > 0
    finally:
        late.join()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_flush_waits_for_the_compressed_colour_too(in_process) -> None:
    """With --compressed, a node on rgb_transport: compressed takes colour only from the JPEG topic:
    the player exited without waiting for it to be acknowledged, and the last frames could be lost."""
    player, _ = in_process([_frame(0, 1.0)], compressed=True)
    waited = []
    publishers = {"jpeg": player._rgb_jpeg, "rgb": player._rgb, "depth": player._depth, "info": player._info}
    for name, publisher in publishers.items():
        publisher.wait_for_all_acked = lambda timeout, name=name: waited.append(name) or True
    player.flush(timeout=0.1)
    assert sorted(waited) == sorted(publishers)


def test_flush_gives_up_after_its_timeout_in_all(in_process, clock) -> None:
    """A subscriber that died unacknowledged held each publisher for the whole timeout in
    turn: Ctrl-C on a player whose localizer had crashed took 20 s and more to exit."""
    player, _ = in_process([_frame(0, 1.0)])
    topics = [player._rgb, player._depth, player._info, player._clock, player._tf, player._truth]
    waited = []
    for publisher in topics:
        publisher.wait_for_all_acked = lambda timeout: waited.append(timeout.nanoseconds * 1e-9) or clock.sleep(waited[-1]) or False
    start = clock.now
    player.flush(timeout=0.3)
    assert clock.now - start == pytest.approx(0.3)  # not 0.3 s for each of the 6 topics
    assert len(waited) == len(topics) and waited[0] == pytest.approx(0.3) and waited[1:] == [0.0] * 5


def test_a_corrupt_bag_is_a_one_line_error_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The error went to stdout, where `locus bag play ... > play.log` hid it: exit status 2 and nothing
    said, while the player's own log lines went to stderr."""
    from locus_ros.player import main

    (tmp_path / "run.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\0" * 64)
    assert main(["locus_player", str(tmp_path / "run.mcap"), "--wait", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("locus_player: error: ") and f"{tmp_path / 'run.mcap'}: cannot open bag" in err
