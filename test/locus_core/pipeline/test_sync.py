"""The approximate time synchroniser used when message_filters is not importable."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.pipeline.sync import ApproximateTimeSynchronizer


def _sync(streams: int = 3, max_interval: float = 0.02, queue: int = 5):
    out: list[tuple] = []
    return ApproximateTimeSynchronizer(streams, max_interval, queue, lambda *m: out.append(m)), out


def test_matches_closest_within_interval_in_any_arrival_order() -> None:
    sync, out = _sync()
    for stream in range(3):  # a frame before: each stream's period is known
        sync.add(stream, 1 - 1 / 30, f"previous{stream}")
    sync.add(0, 1.000, "rgb1")
    sync.add(1, 0.990, "depth_old")
    sync.add(1, 1.005, "depth1")
    assert out == [("previous0", "previous1", "previous2")]
    sync.add(2, 1.001, "info1")
    assert out[1:] == [("rgb1", "depth1", "info1")]
    assert sync.stats.emitted == 2 and sync.stats.dropped == 1  # depth_old can never be used


def test_sets_wider_than_the_interval_are_not_emitted_and_overflow_is_counted() -> None:
    sync, out = _sync(streams=2, max_interval=0.01, queue=2)
    for i in range(4):
        sync.add(0, float(i), f"rgb{i}")
    sync.add(1, 10.0, "depth")
    # overflow dropped rgb0 and rgb1; rgb3 is closer to the depth than rgb2, which can never match;
    # rgb3 waits, as the next colour image might be closer still
    assert out == [] and sync.stats.dropped == 3 and sync._queues[0] == [(3.0, "rgb3")]


def test_duplicate_stamps_replace_and_time_jumps_reset() -> None:
    sync, out = _sync(streams=2)
    sync.add(0, 5.0, "a")
    sync.add(0, 5.0, "a2")
    sync.add(1, 5.0, "b")
    assert out == [("a2", "b")]
    sync.add(0, 1.0, "looped")  # the bag restarted
    assert sync.stats.time_jumps == 1
    sync.add(1, 1.0, "looped_b")
    assert out[-1] == ("looped", "looped_b")


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="streams"):
        ApproximateTimeSynchronizer(0, 0.1, 1, print)
    with pytest.raises(ValueError, match="max_interval"):
        ApproximateTimeSynchronizer(2, -0.1, 1, print)
    with pytest.raises(ValueError, match="queue_size"):
        ApproximateTimeSynchronizer(2, 0.1, 0, print)


@settings(max_examples=60, deadline=None)
@given(
    jitter=st.lists(st.tuples(st.floats(-0.004, 0.004), st.floats(-0.004, 0.004)), min_size=1, max_size=30),
    depth_first=st.booleans(),
)
def test_regular_streams_with_jitter_all_match(jitter: list[tuple[float, float]], depth_first: bool) -> None:
    """30 Hz camera, depth stamped within 4 ms of colour: every frame is matched, in order, once."""
    sync, out = _sync(streams=2, max_interval=0.01)
    for i, (jr, jd) in enumerate(jitter):
        t = i / 30.0
        events = [(0, t + jr, ("rgb", i)), (1, t + jd, ("depth", i))]
        for stream, stamp, msg in events[::-1] if depth_first else events:
            sync.add(stream, stamp, msg)
    sync.flush()  # the last colour image may wait for the depth after its own: there is none
    assert [(a[1], b[1]) for a, b in out] == [(i, i) for i in range(len(jitter))]
    assert sync.stats.dropped == 0


@pytest.mark.parametrize("lost", [0, 1, 2])
def test_a_lost_message_does_not_shift_the_pairs_after_it(lost: int) -> None:
    """30 Hz, a 50 ms tolerance (the node's default): the previous frame's depth is within it, so a
    set must wait until the closest partner is certain, or one loss pairs every later frame wrong."""
    sync, out = _sync(max_interval=0.05, queue=10)
    for k in range(8):
        t = k / 30.0
        for stream in range(3):
            if not (k == 2 and stream == lost):
                sync.add(stream, t, (stream, k))
    pairs = [tuple(m[1] for m in s) for s in out]
    assert pairs == [(k, k, k) for k in range(8) if k != 2]
    assert sync.stats.dropped == 2  # the lost frame's other two messages


def test_a_time_jump_is_seen_even_before_anything_was_emitted() -> None:
    """Depth starts late, then the recording loops: the stale messages must not stall the queues."""
    sync, out = _sync(max_interval=0.05, queue=10)
    for k in range(100, 130):
        sync.add(0, k / 30, ("rgb", k))
        sync.add(2, k / 30, ("info", k))
    for k in range(10):
        for stream, name in enumerate(("rgb", "depth", "info")):
            sync.add(stream, k / 30, (name, k))
    assert sync.stats.time_jumps == 1 and [s[0][1] for s in out] == list(range(10))


@settings(max_examples=40, deadline=None)
@given(offset=st.floats(0.0, 0.0165), jitter=st.lists(st.floats(-0.003, 0.003), min_size=5, max_size=40))
def test_depth_half_a_frame_late_is_still_paired_with_its_own_frame(offset: float, jitter: list[float]) -> None:
    """Cameras that are not hardware-synchronised: depth up to half a 30 Hz period after colour. A
    depth closer to the next colour image is still this one's when the next has a closer depth."""
    sync, out = _sync(streams=2, max_interval=0.05, queue=10)
    for i, j in enumerate(jitter):
        sync.add(0, i / 30, ("rgb", i))
        sync.add(1, i / 30 + min(offset + j, 0.0166), ("depth", i))
    sync.flush()
    assert [(a[1], b[1]) for a, b in out] == [(i, i) for i in range(len(jitter))]


def test_a_stream_period_is_not_taken_from_a_step_over_a_lost_message() -> None:
    """Depth 2 and colour 2, 3 are lost. Depth 3 (its colour image lost) is 30 ms before colour 4,
    which arrives before its own depth. The step over the lost depth (67 ms) taken as the period
    made depth 3 look certain ("the next one is due more than 33 ms after it"): colour 4 got it."""
    sync, out = _sync(streams=2, max_interval=0.05, queue=10)
    for stream, stamp, msg in [(0, 0.0, "rgb0"), (1, 0.0, "depth0"), (0, 1 / 30, "rgb1"), (1, 1 / 30, "depth1"),
                               (1, 3 / 30 + 0.003, "depth3"), (0, 4 / 30, "rgb4"), (1, 4 / 30, "depth4")]:
        sync.add(stream, stamp, msg)
    assert out == [("rgb0", "depth0"), ("rgb1", "depth1"), ("rgb4", "depth4")]


@settings(max_examples=100, deadline=None)
@given(frames=st.lists(st.tuples(st.booleans(), st.booleans(), st.floats(-0.004, 0.004), st.booleans()), min_size=2, max_size=30))
def test_a_frame_whose_messages_all_arrived_is_paired_with_its_own(frames: list[tuple[bool, bool, float, bool]]) -> None:
    """30 Hz, any colour and depth images lost, depth within 4 ms of colour, either first: a colour
    image whose own depth arrived is emitted, with it (frames 0 and 1 arrive whole: periods known)."""
    sync, out = _sync(streams=2, max_interval=0.05, queue=10)
    sent = set()
    for i, (rgb, depth, jitter, depth_first) in enumerate(frames):
        events = [(0, i / 30, ("rgb", i))] * (rgb or i < 2) + [(1, i / 30 + jitter, ("depth", i))] * (depth or i < 2)
        if (rgb or i < 2) and (depth or i < 2):
            sent.add(i)
        for stream, stamp, msg in events[::-1] if depth_first else events:
            sync.add(stream, stamp, msg)
    sync.flush()
    assert {a[1] for a, b in out if a[1] in sent} == sent
    assert all(b[1] == a[1] for a, b in out if a[1] in sent)


def test_what_is_left_at_the_end_of_the_input_is_counted_as_dropped() -> None:
    sync, out = _sync(streams=2)
    for stream, stamp in ((0, 1.0), (1, 1.0), (1, 2.0), (1, 2.1)):  # the last depth images have no colour image
        sync.add(stream, stamp, (stream, stamp))
    sync.flush()
    assert out == [((0, 1.0), (1, 1.0))]
    assert (sync.stats.emitted, sync.stats.dropped) == (1, 2)
