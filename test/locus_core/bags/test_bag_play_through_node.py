"""``locus bag play`` into a live ``locus_localizer`` node over real DDS gives, frame by frame, what
``locus bag eval`` computes offline from the same bag: the same localized decisions, inlier counts
and poses for every frame the node processed (the node may drop frames; the replay never does)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("locus.msg")

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "test" / "locus_ros"))  # the DDS harness of the node's own tests

from locus_ros import conversions as conv  # noqa: E402
from ros_harness import Client, NodeProcess, write_params  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
RELAXED = "min_inliers: 4\nmin_inlier_ratio: 0.0\nmin_similarity: 0.0\nmax_position_std_m: 10.0\nambiguity_ratio: 2.0\n"
MODEL = "backbone:test"


def test_live_node_matches_offline_replay(tmp_path: Path) -> None:
    from locus_core.bags.convert import write_bag
    from locus_core.bags.replay import replay
    from locus_core.data import open_dataset
    from locus_core.data.synthetic import generate_scene
    from locus_core.mapping import MapConfig, build_map
    from locus_core.models import load_model
    from locus_core.pipeline import FrameProcessor

    scene = generate_scene(tmp_path / "scene", frames=16, size=(96, 128))
    build_map(load_model(MODEL), open_dataset(scene, "0:16:2"), MapConfig(landmarks_per_keyframe=200)).save(tmp_path / "map")
    (tmp_path / "relaxed.yaml").write_text(RELAXED)
    queries = open_dataset(scene, "1:16:2")
    # 0.3 s apart: the node keeps up, so normally none is dropped (the comparison allows for it).
    write_bag([dataclasses.replace(queries[k], stamp=1.0 + 0.3 * k) for k in range(len(queries))], tmp_path / "bag")

    processor = FrameProcessor(MODEL, "cpu", str(tmp_path / "relaxed.yaml"))
    processor.load_map(tmp_path / "map")
    offline = {round(f.stamp, 6): f.localization for f in replay(tmp_path / "bag", processor).frames}
    assert len(offline) == len(queries) and any(r.localized for r in offline.values())

    params = write_params(tmp_path / "params.yaml", map_path=str(tmp_path / "map"), model=MODEL, device="cpu",
                          localizer_config=str(tmp_path / "relaxed.yaml"), image_qos="reliable")
    remaps = ["-r", "rgb/image:=/camera/color/image_raw", "-r", "depth/image:=/camera/aligned_depth_to_color/image_raw",
              "-r", "rgb/camera_info:=/camera/color/camera_info"]
    client = Client("locus_bag_play_test")
    node = NodeProcess(params, tmp_path / "node.log", *remaps)
    try:
        assert node.wait_log("keyframes", 120), node.log()
        # the periodic status shows our subscription is matched: per-frame statuses will not be missed
        client.wait_for(lambda: client.messages("/locus_localizer/status"), 30, "a first status from the node")
        # --wait: the player's own discovery of the node may take longer than its default 10 s on a
        # loaded machine, and it then plays into the void (polled: no slower when it is quick)
        play = subprocess.run([sys.executable, "-m", "locus_core.cli.main", "bag", "play", str(tmp_path / "bag"),
                               "--wait", "60"], cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert play.returncode == 0, play.stdout + play.stderr

        def statuses() -> dict[float, object]:
            return {round(conv.stamp_to_seconds(s.header.stamp), 6): s for s in client.messages("/locus_localizer/status")
                    if round(conv.stamp_to_seconds(s.header.stamp), 6) in offline}

        def settled() -> bool:
            last = client.messages("/locus_localizer/status")
            return bool(last) and last[-1].frames_processed + last[-1].frames_dropped >= len(queries)

        client.wait_for(settled, 60, "the node to process or drop every frame")
        # publish_tf (the default): bag play's odometry TF lets the node publish map -> odom
        localized = sum(offline[stamp].localized for stamp in statuses())
        assert localized, node.log()
        client.wait_for(lambda: len([t for m in client.messages("/tf") for t in m.transforms
                                     if (t.header.frame_id, t.child_frame_id) == ("map", "odom")]) == localized,
                        60, f"map -> odom for each of the {localized} localized frames")
        live = statuses()
        status = client.messages("/locus_localizer/status")[-1]
        assert status.frames_received == len(queries), status
        assert len(live) == status.frames_processed >= len(queries) // 2, (len(live), status)
        poses = {round(conv.stamp_to_seconds(p.header.stamp), 6): p for p in client.messages("/locus_localizer/pose")}
        for stamp, s in live.items():
            ours = offline[stamp]
            assert (s.localized, s.inliers) == (ours.localized, ours.inliers), stamp
            if ours.localized:
                T = conv.pose_to_matrix(poses[stamp].pose.pose)
                np.testing.assert_allclose(T, ours.T_map_cam, atol=1e-6)
            else:
                assert stamp not in poses
    finally:
        node.interrupt()
        client.close()
