"""TfSource: tf2_ros where importable (a stand-in Buffer here), else our TransformBuffer fed by /tf."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

rclpy = pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import TransformStamped  # noqa: E402
from ros_harness import EXACT_STAMP, odom_to_cam  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from locus_ros.diagnostics import NodeStats  # noqa: E402
from locus_ros.errors import TransformError  # noqa: E402
from locus_ros.tf_source import TfSource  # noqa: E402


class _NoSubscriptions:
    def create_subscription(self, *args, **kwargs) -> None:
        pass


def test_tf2_lookups_use_the_exact_stamp(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    class TransformException(Exception):
        pass

    class Buffer:
        def __init__(self, node) -> None:
            pass

        def lookup_transform(self, target: str, source: str, time: rclpy.time.Time) -> TransformStamped:
            asked.append(time)
            if time.nanoseconds != 1_700_000_000_123_456_789:
                raise TransformException("Lookup would require extrapolation into the future")
            return odom_to_cam(EXACT_STAMP)

    fake = SimpleNamespace(Buffer=Buffer, TransformListener=lambda *args, **kwargs: None, TransformException=TransformException)
    monkeypatch.setitem(sys.modules, "tf2_ros", fake)
    tf = TfSource(_NoSubscriptions(), NodeStats())
    assert tf.backend == "tf2_ros"
    assert tf.lookup("odom", "cam", EXACT_STAMP)[0, 3] == 1.0
    assert asked[0].nanoseconds == 1_700_000_000_123_456_789
    with pytest.raises(TransformError, match="odom <- cam at t=1700000001.000000: Lookup would require extrapolation"):
        tf.lookup("odom", "cam", Time(sec=1_700_000_001))


def test_tf2_history_is_cleared_on_a_time_jump_only_on_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """With use_sim_time tf2_ros's Buffer cleared itself on the /clock jump, and has the new run's
    transforms since; on wall time it refuses them until cleared."""
    cleared = []

    class Buffer:
        def __init__(self, node) -> None:
            self.jump_handle = object()  # tf2_ros (Jazzy and later) registers a /clock jump callback

        def clear(self) -> None:
            cleared.append(True)

    fake = SimpleNamespace(Buffer=Buffer, TransformListener=lambda *args, **kwargs: None, TransformException=Exception)
    monkeypatch.setitem(sys.modules, "tf2_ros", fake)
    for sim_time in (True, False):
        node = SimpleNamespace(get_parameter=lambda name, value=sim_time: SimpleNamespace(value=value))
        assert TfSource(node, NodeStats()).time_jumped() is not sim_time
    assert cleared == [True]


def test_tf2_without_a_jump_callback_is_cleared_on_a_time_jump_on_sim_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Humble's Python tf2_ros Buffer registers no /clock jump callback (ros2/geometry2#606): on a
    looped bag with use_sim_time nothing cleared it, and it refused every new-run sample older
    than its newest by its cache time (TF_OLD_DATA), so no frame found its transform again."""
    cleared = []

    class Buffer:
        def __init__(self, node) -> None:
            pass

        def clear(self) -> None:
            cleared.append(True)

    fake = SimpleNamespace(Buffer=Buffer, TransformListener=lambda *args, **kwargs: None, TransformException=Exception)
    monkeypatch.setitem(sys.modules, "tf2_ros", fake)
    node = SimpleNamespace(get_parameter=lambda name: SimpleNamespace(value=True))
    assert TfSource(node, NodeStats()).time_jumped()
    assert cleared == [True]


def test_fallback_lookups_find_a_transform_stamped_at_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tf2_ros", None)  # absent, as from the PyPI wheels
    tf = TfSource(_NoSubscriptions(), NodeStats())
    assert tf.backend == "locus_core TransformBuffer"
    tf._on_tf(TFMessage(transforms=[odom_to_cam(EXACT_STAMP)]), False)
    assert tf.lookup("odom", "cam", EXACT_STAMP)[0, 3] == 1.0
