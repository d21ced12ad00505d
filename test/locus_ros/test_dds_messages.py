"""Our own message over real DDS: proves the rosidl build and the middleware work here."""

from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip("rclpy")
locus_msg = pytest.importorskip("locus.msg")


def test_place_match_array_round_trip_over_dds() -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        pub_node = rclpy.create_node("locus_test_pub", context=context)
        sub_node = rclpy.create_node("locus_test_sub", context=context)
        received: list = []
        sub_node.create_subscription(locus_msg.PlaceMatchArray, "matches", received.append, 10)
        pub = pub_node.create_publisher(locus_msg.PlaceMatchArray, "matches", 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(pub_node)
        executor.add_node(sub_node)
        deadline = time.monotonic() + 120.0  # discovery on a loaded machine; polled, ends at the 3rd message
        sent = 0
        while len(received) < 3 and time.monotonic() < deadline:
            msg = locus_msg.PlaceMatchArray()
            msg.header.frame_id = "map"
            msg.matches = [locus_msg.PlaceMatch(keyframe_id=sent, score=0.5, inliers=7)]
            pub.publish(msg)
            sent += 1
            executor.spin_once(timeout_sec=0.1)
        assert len(received) >= 3, f"received {len(received)} of {sent} messages"
        assert received[0].header.frame_id == "map"
        assert received[-1].matches[0].inliers == 7
    finally:
        rclpy.shutdown(context=context)
