"""Diagnostics rendering: a pure function of the node's counters, tested without a node."""

from __future__ import annotations

import pytest

pytest.importorskip("diagnostic_msgs")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from locus_ros import diagnostics  # noqa: E402
from locus_ros.diagnostics import NodeStats, render  # noqa: E402


def test_a_bad_message_warns_for_a_while_not_for_the_node_s_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    # One corrupt frame at start-up left the inputs status WARN in rqt_robot_monitor for good.
    now = [100.0]
    monkeypatch.setattr(diagnostics.time, "monotonic", lambda: now[0])
    stats = NodeStats()
    for t in range(6):
        now[0] = 100.0 + 0.1 * t
        stats.message_in("/rgb", float(t))
    stats.skip("bad_message", "/rgb: truncated image")

    def inputs() -> DiagnosticStatus:
        return render(stats.snapshot(), node_name="n", inputs=["/rgb"], sync={}, state={})[0]

    assert inputs().level == DiagnosticStatus.WARN and "1 bad message(s)" in inputs().message
    now[0] += diagnostics.BAD_WINDOW_S + 1
    stats.message_in("/rgb", 10.0)
    now[0] += 0.1
    stats.message_in("/rgb", 10.1)
    status = inputs()
    assert status.level == DiagnosticStatus.OK
    assert {kv.key: kv.value for kv in status.values}["skipped_bad_message"] == "1"  # the total stays reported


@pytest.mark.parametrize(("starting", "level"), [(True, DiagnosticStatus.WARN), (False, DiagnosticStatus.ERROR)])
def test_loading_the_model_is_no_error_a_failure_is(starting: bool, level: bytes) -> None:
    state = {"error": "loading the model" if starting else "map m not loaded: no manifest.json", "starting": starting}
    status = render(NodeStats().snapshot(), node_name="n", inputs=[], sync={}, state=state)[1]
    assert status.level == level and status.message == state["error"]
