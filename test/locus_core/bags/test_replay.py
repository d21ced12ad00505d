"""``locus bag eval``: convert → replay round trips equal ``locus map localize`` on the folder, and the
replay survives what real recordings contain (gaps, loops, reordering, duplicates, bad encodings)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.bags import topics as tp
from locus_core.bags.convert import BagMessage, Messages, frame_messages, write_bag, write_messages
from locus_core.bags.errors import BagError
from locus_core.bags.evaluate import evaluate_bag, tum_name, write_trajectories, write_tum
from locus_core.bags.replay import ReplayConfig, ReplayFrame, header_stamp, replay
from locus_core.data import open_dataset
from locus_core.data.synthetic import generate_scene
from locus_core.mapping.evaluate import camera_points

# The random `test` backbone matches poorly: relaxed decisions so that some frames localize and the
# pose part of the comparison is exercised.
RELAXED = "min_inliers: 4\nmin_inlier_ratio: 0.0\nmin_similarity: 0.0\nmax_position_std_m: 10.0\nambiguity_ratio: 2.0\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import torch

    from locus_core.mapping import MapConfig, build_map
    from locus_core.models import load_model

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("world")
    scene = generate_scene(root / "scene", frames=16, size=(96, 128))
    model = load_model("backbone:test")
    build_map(model, open_dataset(scene, "0:16:2"), MapConfig(landmarks_per_keyframe=200)).save(root / "map")
    (root / "relaxed.yaml").write_text(RELAXED)
    return {"root": root, "scene": scene, "map": root / "map", "config": root / "relaxed.yaml"}


@pytest.fixture(scope="module")
def processor(world: dict):
    from locus_core.pipeline import FrameProcessor

    p = FrameProcessor("backbone:test", "cpu", str(world["config"]))
    p.load_map(world["map"])
    return p


def _same(a: dict, b: dict) -> None:
    for key in ("queries", "localized_rate", "precision", "place", "pose", "covisible"):
        assert a[key] == pytest.approx(b[key], nan_ok=True, abs=1e-6), key


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_eval_equals_map_localize_on_the_folder(tmp_path: Path, world: dict, storage: str) -> None:
    from locus_core.mapping.run import localize_dataset

    queries = open_dataset(world["scene"], "1:16:2")
    write_bag(queries, tmp_path / "bag", storage=storage)
    # Both on eager PyTorch ("auto" may pick ONNX Runtime: features 1e-6 apart).
    ours = evaluate_bag(tmp_path / "bag", world["map"], tmp_path / "eval", localizer_config=str(world["config"]), device="cpu")
    theirs = localize_dataset(world["map"], str(world["scene"]), "1:16:2", tmp_path / "ref", config_path=world["config"], device="cpu")
    _same(ours, theirs)
    assert ours["queries"] == 8 and ours["place"]["queries"] > 0 and ours["localized_rate"] > 0
    assert ours["replay"]["frames"] == 8 and ours["replay"]["ground_truth"] == 8 and ours["skipped"]["total"] == 0
    assert ours["replay"]["sync"] == {"emitted": 8, "dropped": 0, "time_jumps": 0}
    assert ours["replay"]["realtime_factor"] > 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == ours
    for name in ("trajectory.png", "errors.png", "config.yaml"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    gt = np.loadtxt(tmp_path / "eval" / "groundtruth.tum")
    assert gt.shape == (8, 8)
    np.testing.assert_allclose(gt[:, 1:4], queries.poses()[:, :3, 3], atol=1e-6)
    est = np.loadtxt(tmp_path / "eval" / "trajectory.tum", ndmin=2)
    assert len(est) == round(ours["localized_rate"] * 8)
    rows = list(csv.DictReader((tmp_path / "eval" / "frames.csv").open()))
    assert [float(r["stamp"]) for r in rows] == pytest.approx(gt[:, 0])
    localized = [r for r in rows if r["localized"] == "1"]
    assert len(localized) == len(est) and all(r["trans_err_m"] and not r["reason"] for r in localized)
    assert np.median([float(r["trans_err_m"]) for r in localized]) == pytest.approx(ours["pose"]["median_trans_m"], abs=1e-4)
    assert all(r["reason"] and not r["trans_err_m"] for r in rows if r["localized"] == "0")


def test_workers_localize_in_parallel_with_the_serial_results(tmp_path: Path, world: dict) -> None:
    write_bag(open_dataset(world["scene"], "1:16:2"), tmp_path / "bag")
    runs = {n: evaluate_bag(tmp_path / "bag", world["map"], tmp_path / f"w{n}", localizer_config=str(world["config"]),
                            device="cpu", workers=n) for n in (1, 2)}
    _same(runs[2], runs[1])
    assert runs[2]["workers"] == 2 and runs[2]["threads"] >= 1 and runs[1]["workers"] == 1

    def rows(n: int) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "latency_ms"}
                for r in csv.DictReader((tmp_path / f"w{n}" / "frames.csv").open())]

    assert rows(2) == rows(1) and len(rows(1)) == 8  # same decisions, inliers and errors, in bag order
    with pytest.raises(BagError, match="workers must be >= 1, got 0"):
        evaluate_bag(tmp_path / "bag", world["map"], tmp_path / "w0", workers=0)


def test_tracking_replays_in_stream_order(tmp_path: Path, world: dict) -> None:
    view = open_dataset(world["scene"], "0:16:2")[2]  # a mapped view, localized well, over and over: tracked
    write_bag([dataclasses.replace(view, stamp=1.0 + 0.1 * k) for k in range(4)], tmp_path / "bag")
    m = evaluate_bag(tmp_path / "bag", world["map"], tmp_path / "eval", localizer_config=str(world["config"]),
                     localizer_overrides=["track_period_s=10"], device="cpu")
    methods = [r["method"] for r in csv.DictReader((tmp_path / "eval" / "frames.csv").open())]
    assert methods == ["3d-3d", "tracked", "tracked", "tracked"] and m["tracked"] == 3
    assert m["place"]["queries"] <= 1  # tracked frames skip place recognition


def test_tracking_workers_track_windows_of_the_stream_in_turn(tmp_path: Path, world: dict) -> None:
    # windows of 0.25 s: [1.0, 1.25) to one worker, [1.25, 1.5) to the other, each tracked from a full
    # localization, where one process relocalizes 0.25 s after its last: the same decisions
    view = open_dataset(world["scene"], "0:16:2")[2]
    write_bag([dataclasses.replace(view, stamp=1.01 + 0.1 * k) for k in range(5)], tmp_path / "bag")

    def rows(workers: int) -> list[dict]:
        evaluate_bag(tmp_path / "bag", world["map"], tmp_path / f"w{workers}", localizer_config=str(world["config"]),
                     localizer_overrides=["track_period_s=0.25"], device="cpu", workers=workers)
        return [{k: v for k, v in r.items() if k != "latency_ms"}
                for r in csv.DictReader((tmp_path / f"w{workers}" / "frames.csv").open())]

    serial = rows(1)
    assert [r["method"] for r in serial] == ["3d-3d", "tracked", "tracked", "3d-3d", "tracked"]
    assert rows(2) == serial


def _frames(world: dict, n: int = 4, spacing: float = 0.4) -> list:
    """Query frames with stamps far enough apart that a loop of them jumps back > 1 s."""
    ds = open_dataset(world["scene"], "1:16:2")
    return [dataclasses.replace(ds[k], stamp=1.0 + spacing * k) for k in range(n)]


def _write(path: Path, messages: list[BagMessage], msgs: Messages, storage: str = "mcap") -> Path:
    write_messages(path, messages, msgs, storage=storage)
    return path


def test_odom_chain_compressed_and_pose_topic_ground_truth(tmp_path: Path, world: dict, processor) -> None:
    frames = _frames(world)
    write_bag(frames, tmp_path / "bag", odom_chain=True, compressed=True, storage="sqlite3")
    by_tf = replay(tmp_path / "bag", processor, ReplayConfig(rgb_topic=tp.COMPRESSED))
    by_topic = replay(tmp_path / "bag", processor, ReplayConfig(gt_topic=tp.GROUND_TRUTH))
    assert by_tf.topics["rgb"] == tp.COMPRESSED and by_tf.topics["info"] == tp.CAMERA_INFO
    for a, b, f in zip(by_tf.frames, by_topic.frames, frames):
        np.testing.assert_allclose(a.T_gt, f.T_world_cam, atol=1e-9)
        np.testing.assert_allclose(b.T_gt, f.T_world_cam, atol=1e-9)


def test_ground_truth_of_the_robot_base_from_amcl_pose_or_odometry(tmp_path: Path, world: dict, processor) -> None:
    """A pose topic of the robot base (amcl_pose, a simulator's odometry): the camera's ground truth
    is that pose composed with TF's base_link -> camera (static here); an Odometry names its body."""
    frames = _frames(world)
    msgs = Messages()
    T = msgs.T
    messages = list(frame_messages(frames, msgs, odom_chain=True))
    T_base_optical = tp.T_BASE_LINK @ tp.T_LINK_OPTICAL
    for f in frames:
        t = f.stamp
        stamped = msgs.pose(t, tp.MAP_FRAME, f.T_world_cam @ np.linalg.inv(T_base_optical))
        with_covariance = T["geometry_msgs/msg/PoseWithCovariance"](pose=stamped.pose, covariance=np.zeros(36))
        messages.append(BagMessage("/amcl_pose", t, T["geometry_msgs/msg/PoseWithCovarianceStamped"](
            header=stamped.header, pose=with_covariance)))
        twist = T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                                               angular=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)),
            covariance=np.zeros(36))
        messages.append(BagMessage("/odom/ground_truth", t, T["nav_msgs/msg/Odometry"](
            header=stamped.header, child_frame_id=tp.BASE_FRAME, pose=with_covariance, twist=twist)))
    path = _write(tmp_path / "bag", sorted(messages, key=lambda m: m.time), msgs)
    runs = {"amcl": replay(path, processor, ReplayConfig(gt_topic="/amcl_pose", gt_body_frame=tp.BASE_FRAME)),
            "odometry": replay(path, processor, ReplayConfig(gt_topic="/odom/ground_truth"))}
    for run in runs.values():
        assert len(run.frames) == len(frames)
        for r, f in zip(run.frames, frames):
            np.testing.assert_allclose(r.T_gt, f.T_world_cam, atol=1e-9)
    # Without the body frame the base's pose would be taken for the camera's: 20 cm and 90 degrees off.
    wrong = replay(path, processor, ReplayConfig(gt_topic="/amcl_pose"))
    assert np.linalg.norm(wrong.frames[0].T_gt[:3, 3] - frames[0].T_world_cam[:3, 3]) > 0.1
    unknown = replay(path, processor, ReplayConfig(gt_topic="/amcl_pose", gt_body_frame="no_such_frame"))
    assert all(f.T_gt is None for f in unknown.frames)


def test_max_rate_localizes_a_subset_by_bag_time(tmp_path: Path, world: dict, processor) -> None:
    frames = _frames(world)  # stamps 1.0, 1.4, 1.8, 2.2
    write_bag(frames, tmp_path / "bag")
    every = replay(tmp_path / "bag", processor)
    some = replay(tmp_path / "bag", processor, ReplayConfig(max_rate_hz=2.0))
    assert [f.stamp for f in some.frames] == pytest.approx([1.0, 1.8]) and some.throttled == 2
    assert every.throttled == 0 and some.bag_duration_s == pytest.approx(every.bag_duration_s)
    for f in some.frames:  # the same result as when every frame is localized
        g = next(g for g in every.frames if g.stamp == f.stamp)
        assert f.localization.inliers == g.localization.inliers
    with pytest.raises(ValueError, match="max_rate_hz must be >= 0"):
        ReplayConfig(max_rate_hz=-1.0)


def test_ros1_bag_replays_like_rosbag2(tmp_path: Path, world: dict, processor) -> None:
    from rosbags.convert import convert

    write_bag(_frames(world), tmp_path / "bag2")
    convert([tmp_path / "bag2"], tmp_path / "robot.bag", dst_storage="", dst_version=None, compress=None,
            compress_mode="file", default_typestore=None, typestore=None, exclude_topics=[], include_topics=[],
            exclude_msgtypes=[], include_msgtypes=[])
    ros2, ros1 = replay(tmp_path / "bag2", processor), replay(tmp_path / "robot.bag", processor)
    assert len(ros1.frames) == len(ros2.frames) == 4
    for a, b in zip(ros1.frames, ros2.frames):
        assert a.localization.localized == b.localization.localized and a.localization.inliers == b.localization.inliers
        np.testing.assert_allclose(a.T_gt, b.T_gt, atol=1e-12)


def test_gaps_loops_reordering_and_duplicates(tmp_path: Path, world: dict, processor) -> None:
    msgs = Messages()
    frames = _frames(world)
    once = list(frame_messages(frames, msgs))
    end = once[-1].time
    # A 3 s gap before the last frame, then the whole recording again with its original stamps.
    gap = [dataclasses.replace(m, time=m.time + 3.0) if m.time >= frames[-1].stamp else m for m in once]
    loop = gap + [dataclasses.replace(m, time=m.time + end + 5.0) for m in once if m.topic != tp.TF_STATIC]
    r = replay(_write(tmp_path / "loop", loop, msgs), processor)
    assert len(r.frames) == 8 and r.segments == 2 and r.sync["time_jumps"] == 1
    assert [f.segment for f in r.frames] == [0] * 4 + [1] * 4
    assert all(f.T_gt is not None for f in r.frames)
    assert r.bag_duration_s == pytest.approx(2 * 3 * 0.4)

    # Each depth image recorded before its colour image and camera_info after the next frame's;
    # every message twice.
    order = {tp.DEPTH: -0.02, tp.CAMERA_INFO: 0.5}
    shuffled = sorted(once, key=lambda m: m.time + order.get(m.topic, 0.0))
    doubled = [m for m in shuffled for _ in range(2)]
    r = replay(_write(tmp_path / "messy", doubled, msgs, "sqlite3"), processor)
    assert [f.stamp for f in r.frames] == pytest.approx([f.stamp for f in frames])
    assert not r.skipped and r.sync["dropped"] >= 4  # each frame localized once
    assert all(f.T_gt is not None for f in r.frames)


def test_a_looped_bag_writes_one_tum_pair_per_segment(tmp_path: Path, world: dict) -> None:
    """The second run's stamps repeat the first's: in one TUM file they went back, which evo refuses."""
    msgs = Messages()
    once = list(frame_messages(_frames(world), msgs))
    loop = once + [dataclasses.replace(m, time=m.time + once[-1].time + 1.0) for m in once if m.topic != tp.TF_STATIC]
    out = tmp_path / "eval"
    evaluate_bag(_write(tmp_path / "loop", loop, msgs), world["map"], out, localizer_config=str(world["config"]), device="cpu")
    rows = list(csv.DictReader((out / "frames.csv").open()))
    assert [r["segment"] for r in rows] == ["0"] * 4 + ["1"] * 4
    for segment in (0, 1):
        gt = np.loadtxt(out / tum_name("groundtruth", segment), ndmin=2)
        est = np.loadtxt(out / tum_name("trajectory", segment), ndmin=2).reshape(-1, 8)
        ours = [r for r in rows if r["segment"] == str(segment)]
        assert gt[:, 0] == pytest.approx([float(r["stamp"]) for r in ours]) and np.all(np.diff(gt[:, 0]) > 0)
        assert est[:, 0] == pytest.approx([float(r["stamp"]) for r in ours if r["localized"] == "1"])
    assert (out / "trajectory.seg1.tum").exists() and not (out / "trajectory.seg2.tum").exists()


def test_tum_stamps_increase_with_the_first_pose_of_a_repeated_stamp(tmp_path: Path) -> None:
    poses = [np.eye(4) for _ in range(3)]
    for x, T in enumerate(poses):
        T[0, 3] = x
    rows = np.loadtxt(write_tum(tmp_path / "t.tum", [2.0, 1.0, 1.0], poses))
    assert rows[:, 0].tolist() == [1.0, 2.0] and rows[:, 1].tolist() == [1.0, 0.0]


def test_an_evaluation_into_the_same_folder_leaves_no_segment_file_of_an_earlier_one(tmp_path: Path) -> None:
    """trajectory.segN.tum of an earlier run (a looped bag) beside this run's files, which have no
    segment N, would be read as this run's (evo on trajectory*.tum)."""
    from types import SimpleNamespace

    def frames(segments: list[int]) -> list[ReplayFrame]:
        localized = SimpleNamespace(localized=True, T_map_cam=np.eye(4))
        return [ReplayFrame(1.0 + i, s, "cam", np.zeros((0, 3)), localized, np.eye(4)) for i, s in enumerate(segments)]

    write_trajectories(tmp_path, frames([0, 0, 1, 1, 2]))
    assert (tmp_path / "trajectory.seg2.tum").exists()
    written = write_trajectories(tmp_path, frames([0, 0, 1]))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    assert sorted(p.name for p in written) == ["groundtruth.seg1.tum", "groundtruth.tum", "trajectory.seg1.tum", "trajectory.tum"]


def test_a_late_message_at_the_loop_point_stays_in_its_loop(tmp_path: Path, world: dict, processor) -> None:
    """The first loop's last depth image recorded 5 ms after the second loop's first /tf: it and its
    frame stay in the first segment; the other streams join the second one as each jumps back."""
    msgs = Messages()
    once = list(frame_messages(_frames(world), msgs))  # stamps 1.0 ... 2.2
    loop = [dataclasses.replace(m, time=m.time + once[-1].time + 1.0) for m in once if m.topic != tp.TF_STATIC]
    late = next(m for m in reversed(once) if m.topic == tp.DEPTH)
    first_tf = dataclasses.replace(loop[0], time=loop[0].time - 0.01)
    assert first_tf.topic == tp.TF
    messages = [m for m in once if m is not late]
    messages += [first_tf, dataclasses.replace(late, time=first_tf.time + 0.005), *loop[1:]]
    r = replay(_write(tmp_path / "loop", messages, msgs), processor)
    assert r.segments == 2 and [f.segment for f in r.frames] == [0] * 4 + [1] * 4
    assert all(f.T_gt is not None for f in r.frames)


def test_every_synchronised_set_is_localized_as_by_the_node(tmp_path: Path, world: dict, processor) -> None:
    """Two different images with one stamp (a driver's coarse clock): the node localizes both sets
    the synchroniser forms, and so does the replay."""
    msgs = Messages()
    a, b = _frames(world, n=2)
    twin = dataclasses.replace(b, stamp=a.stamp)  # another image at a's stamp, 0.1 s later in the bag
    messages = list(frame_messages([a, b], msgs))
    messages += [dataclasses.replace(m, time=m.time + 0.1) for m in frame_messages([twin], msgs)
                 if m.topic in (tp.RGB, tp.DEPTH, tp.CAMERA_INFO)]
    r = replay(_write(tmp_path / "twins", sorted(messages, key=lambda m: m.time), msgs), processor)
    assert [f.stamp for f in r.frames] == pytest.approx([a.stamp, a.stamp, b.stamp]) and not r.skipped
    assert not np.array_equal(r.frames[0].points_cam, r.frames[1].points_cam)
    assert all(f.T_gt is not None for f in r.frames)


def test_unknown_encodings_are_skipped_and_counted(tmp_path: Path, world: dict, processor) -> None:
    msgs = Messages()
    messages = []
    for m in frame_messages(_frames(world), msgs):
        if m.topic == tp.RGB and m.time > 1.5:  # the last two frames (stamps 1.8, 2.2)
            m = dataclasses.replace(m, msg=dataclasses.replace(m.msg, encoding="bayer_rggb8"))
        messages.append(m)
    out = tmp_path / "eval"
    metrics = evaluate_bag(_write(tmp_path / "bag", messages, msgs), world["map"], out)
    assert metrics["replay"]["frames"] == 2
    assert metrics["skipped"]["unknown_encoding"] == 2 and metrics["skipped"]["total"] == 2
    assert "bayer_rggb8" in metrics["skipped"]["examples"][0]
    only_bad = [m for m in messages if not (m.topic == tp.RGB and m.msg.encoding == "rgb8")]
    with pytest.raises(BagError, match="nothing was localized.*bayer_rggb8"):
        replay(_write(tmp_path / "bad", only_bad, msgs), processor)


def test_unreadable_records_are_counted_per_topic_not_as_skipped_sets(tmp_path: Path, world: dict, processor) -> None:
    """A truncated /tf record and a colour record too short for a header: every set is still
    localized, so none is skipped; the records are counted by topic."""
    from rosbags.rosbag2 import Writer

    msgs = Messages()
    with Writer(tmp_path / "bag", version=8) as writer:
        connections = {}
        for m in frame_messages(_frames(world), msgs):
            if m.topic not in connections:
                connections[m.topic] = writer.add_connection(m.topic, m.msg.__msgtype__, typestore=msgs.store)
            writer.write(connections[m.topic], int(m.time * 1e9), msgs.serialize(m.msg))
        writer.write(connections[tp.TF], int(2.3e9), b"\x00\x01\x00\x00\x05")
        writer.write(connections[tp.RGB], int(2.3e9), b"\x00\x01\x00\x00\x05")
    r = replay(tmp_path / "bag", processor)
    assert len(r.frames) == 4 and r.sync["emitted"] == 4 and not r.skipped
    assert r.unreadable == {tp.TF: 1, tp.RGB: 1} and all(f.T_gt is not None for f in r.frames)
    assert any("cannot deserialize" in n for n in r.notes)


def test_missing_topics_and_unreadable_bags(tmp_path: Path, world: dict, processor) -> None:
    msgs = Messages()
    no_info = [m for m in frame_messages(_frames(world, n=2), msgs) if m.topic != tp.CAMERA_INFO]
    with pytest.raises(BagError, match="camera_info .*/camera/color/camera_info not in the bag"):
        replay(_write(tmp_path / "noinfo", no_info, msgs), processor)
    write_bag(_frames(world, n=2), tmp_path / "bag")
    with pytest.raises(BagError, match="rgb topic /cam/rgb not in the bag"):
        replay(tmp_path / "bag", processor, ReplayConfig(rgb_topic="/cam/rgb"))
    with pytest.raises(BagError, match="/tf is tf2_msgs/msg/TFMessage, expected sensor_msgs"):
        replay(tmp_path / "bag", processor, ReplayConfig(depth_topic="/tf"))
    with pytest.raises(BagError, match="no such bag"):
        replay(tmp_path / "nope", processor)
    (tmp_path / "junk.mcap").write_bytes(b"not a bag")
    with pytest.raises(BagError, match="junk.mcap: cannot open bag"):
        replay(tmp_path / "junk.mcap", processor)


def test_a_humble_sqlite3_bag_without_message_definitions_replays(tmp_path: Path, world: dict, processor) -> None:
    """rosbag2 before Iron stores no message definitions in its sqlite3 bags (schema 3, no
    message_definitions table): the replay reads them with the standard types."""
    import sqlite3

    write_bag(_frames(world, n=2), tmp_path / "bag", storage="sqlite3")
    with sqlite3.connect(next((tmp_path / "bag").glob("*.db3"))) as db:
        db.execute("DROP TABLE message_definitions")
        db.execute("UPDATE schema SET schema_version = 3")
    r = replay(tmp_path / "bag", processor)
    assert len(r.frames) == 2 and all(f.T_gt is not None for f in r.frames)


def test_rectified_images_take_their_intrinsics_from_P_as_in_the_node(tmp_path: Path, world: dict, processor) -> None:
    """image_rect with the raw camera's K and D in camera_info: ``rectified`` reads P, as the node's
    parameter does, and does not warn about the distortion that rectification removed."""
    msgs = Messages()
    plain = list(frame_messages(_frames(world, n=2), msgs))
    raw_camera = []
    for m in plain:
        if m.topic == tp.CAMERA_INFO:  # P keeps the intrinsics of the (rectified) images
            K = np.asarray(m.msg.k).reshape(3, 3) * np.array([[1.1], [1.1], [1.0]])
            m = dataclasses.replace(m, msg=dataclasses.replace(m.msg, k=K.reshape(9), d=np.array([0.1, -0.05, 0, 0, 0])))
        raw_camera.append(m)
    reference = replay(_write(tmp_path / "plain", plain, msgs), processor)
    rect = replay(_write(tmp_path / "rect", raw_camera, msgs), processor, ReplayConfig(rectified=True))
    assert not rect.warnings and len(rect.frames) == len(reference.frames) == 2
    for a, b in zip(rect.frames, reference.frames):
        np.testing.assert_array_equal(a.points_cam, b.points_cam)
    unrectified = replay(tmp_path / "rect", processor)
    assert "distortion" in unrectified.warnings[0]
    assert not np.array_equal(unrectified.frames[0].points_cam, reference.frames[0].points_cam)


def test_depth_in_another_frame_is_warned_about_as_by_the_node(tmp_path: Path, world: dict, processor) -> None:
    """Unregistered depth (the depth camera's own frame) next to a distorted camera: the report
    carries both warnings the node logs, each once."""
    msgs = Messages()
    messages = []
    for m in frame_messages(_frames(world, n=2), msgs):
        if m.topic == tp.DEPTH:
            m = dataclasses.replace(m, msg=dataclasses.replace(
                m.msg, header=dataclasses.replace(m.msg.header, frame_id="camera_depth_optical_frame")))
        elif m.topic == tp.CAMERA_INFO:
            m = dataclasses.replace(m, msg=dataclasses.replace(m.msg, d=np.array([0.1, -0.05, 0, 0, 0])))
        messages.append(m)
    r = replay(_write(tmp_path / "bag", messages, msgs), processor)
    assert len(r.warnings) == 2 and len(r.frames) == 2
    assert r.warnings[0].startswith(f"{tp.CAMERA_INFO}: camera_info has plumb_bob distortion")
    assert "'camera_depth_optical_frame'" in r.warnings[1] and "registered" in r.warnings[1]
    assert not replay(_write(tmp_path / "clean", list(frame_messages(_frames(world, n=2), msgs)), msgs), processor).warnings


def test_tf_of_a_real_turtlebot_bag(shared_data: Path) -> None:
    """The segment/TF machinery on a real TF tree (sim-time stamps, odom -> base_link at ~27 Hz with
    gaps up to 1.8 s, map -> odom from AMCL, 30 static frames): no false time jumps, and the robot's
    base found in odom and map over the recording."""
    from rosbags.highlevel import AnyReader

    from locus_core.data.formats.tf import TfSegments

    bag = shared_data / "bags" / "nav2_turtlebot.mcap"
    if not bag.exists():
        pytest.skip(f"{bag} not found")
    segments = TfSegments(jump_s=1.0, max_gap_s=0.5)
    odom_stamps = []
    with AnyReader([bag]) as reader:
        for conn, _, raw in reader.messages([c for c in reader.connections if c.topic in (tp.TF, tp.TF_STATIC)]):
            msg = reader.deserialize(raw, conn.msgtype)
            segments.add_tf(msg, static=conn.topic == tp.TF_STATIC)
            odom_stamps += [t.header.stamp.sec + t.header.stamp.nanosec * 1e-9 for t in msg.transforms
                            if t.child_frame_id == "base_link"]
    assert len(segments.trees) == 1 and len(odom_stamps) == 2639  # a real recording: no false time jumps
    tree = segments.trees[0]
    assert {"map", "odom", "base_link", "oakd_rgb_camera_optical_frame"} <= tree.frames
    times = np.array(odom_stamps)[np.linspace(100, len(odom_stamps) - 100, 20).astype(int)]
    in_odom = [tree.lookup("odom", "base_link", t) for t in times]
    assert all(T is not None for T in in_odom)
    for T in in_odom:
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6)
        assert abs(T[2, 3]) < 0.5  # a ground robot
    camera = [tree.lookup("map", "oakd_rgb_camera_optical_frame", t) for t in times]
    assert sum(T is not None for T in camera) >= 10
    T_base_cam = tree.lookup("base_link", "oakd_rgb_camera_optical_frame", times[0])
    assert 0.05 < T_base_cam[2, 3] < 0.5 and T_base_cam[2, 2] == pytest.approx(0, abs=0.2)  # optical axis horizontal


@pytest.mark.slow
def test_real_redkitchen_round_trip_equals_map_localize(tmp_path: Path, shared_data: Path) -> None:
    """7-Scenes test frames → MCAP → eval against a map of train frames, as the issue's goal (raw
    XFeat, few frames: the shipped model's numbers are measured by hand, see the report)."""
    from locus_core.mapping import MapConfig, build_map
    from locus_core.mapping.run import localize_dataset
    from locus_core.models import load_model

    data = shared_data / "7scenes-redkitchen"
    build_map(load_model("backbone:xfeat"), open_dataset(data, "0:600:40"), MapConfig()).save(tmp_path / "map")
    write_bag(open_dataset(data, "600:1000:50"), tmp_path / "bag")
    ours = evaluate_bag(tmp_path / "bag", tmp_path / "map", tmp_path / "eval", device="cpu")
    theirs = localize_dataset(tmp_path / "map", str(data), "600:1000:50", tmp_path / "ref", device="cpu")
    _same(ours, theirs)
    assert ours["queries"] == 8 and ours["place"]["queries"] == 8 and ours["replay"]["ground_truth"] == 8
    assert ours["localized_rate"] >= 0.5 and ours["pose"]["median_trans_m"] < 0.2  # measured: 8/8, 4.9 cm


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(0, 999_999_999), st.booleans())
def test_header_stamp_reads_serialised_messages_of_either_ros(sec: int, nanosec: int, little_endian: bool) -> None:
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    Header, Time, Info = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"], store.types["sensor_msgs/msg/CameraInfo"]
    info = Info(header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="camera"), height=480, width=640,
                distortion_model="plumb_bob", d=np.zeros(5), k=np.zeros(9), r=np.zeros(9), p=np.zeros(12),
                binning_x=0, binning_y=0, roi=store.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    expected = sec + nanosec * 1e-9
    cdr = bytes(store.serialize_cdr(info, Info.__msgtype__, little_endian=little_endian))
    assert header_stamp(cdr, ros2=True) == expected
    ros1 = bytes(store.cdr_to_ros1(bytes(store.serialize_cdr(info, Info.__msgtype__)), Info.__msgtype__))
    assert header_stamp(ros1, ros2=False) == expected
    assert header_stamp(cdr[:8], ros2=True) is None


class _Recorder:
    """A processor that records the size of each frame and the odometry it is given."""

    input_size = (48, 64)

    def __init__(self) -> None:
        self.odometry: list = []
        self.sizes: list = []

    def localize(self, frame, odometry=None):
        self.odometry.append(odometry)
        self.sizes.append((frame.rgb.shape[:2], frame.depth.shape))
        return None


def test_frames_reach_the_processor_at_its_input_size(tmp_path: Path, world: dict) -> None:
    # shrunk before they travel to a worker process; the ground truth's points are the full frame's
    frames = _frames(world)
    write_bag(frames, tmp_path / "bag")
    recorder = _Recorder()
    result = replay(tmp_path / "bag", recorder)
    assert recorder.sizes == [((48, 64), (48, 64))] * len(frames)
    np.testing.assert_allclose(result.frames[0].points_cam, camera_points(frames[0]), atol=2e-3)  # depth in mm in the bag


@pytest.mark.parametrize("odom_frame", [tp.ODOM_FRAME, ""])
def test_odometry_from_tf_reaches_the_localizer(tmp_path: Path, world: dict, odom_frame: str) -> None:
    # convert's odom chain: map -> odom is the identity, so odom -> camera is the ground truth
    frames = _frames(world)
    write_bag(frames, tmp_path / "bag", odom_chain=True)
    recorder = _Recorder()
    result = replay(tmp_path / "bag", recorder, ReplayConfig(odom_frame=odom_frame))
    assert len(recorder.odometry) == 4 and result.odometry == (4 if odom_frame else 0)
    for odometry, frame in zip(recorder.odometry, frames):
        if odom_frame:
            np.testing.assert_allclose(odometry, frame.T_world_cam, atol=1e-9)
        else:
            assert odometry is None


@pytest.mark.parametrize("workers", [1, 2])
def test_tracking_follows_the_odometry_where_the_prior_alone_is_lost(tmp_path: Path, world: dict, workers: int) -> None:
    # mapped views 4 frames apart, 0.1 s apart: too far for the previous pose alone
    frames = [dataclasses.replace(f, stamp=1.0 + 0.1 * k) for k, f in enumerate(open_dataset(world["scene"], "0:16:4"))]
    write_bag(frames, tmp_path / "bag", odom_chain=True)

    def methods(odom_frame: str) -> list[str]:
        m = evaluate_bag(tmp_path / "bag", world["map"], tmp_path / "eval", localizer_config=str(world["config"]),
                         localizer_overrides=["track_period_s=10"], device="cpu", config=ReplayConfig(odom_frame=odom_frame),
                         workers=workers)
        assert m["replay"]["odometry"] == (4 if odom_frame else 0)
        return [r["method"] for r in csv.DictReader((tmp_path / "eval" / "frames.csv").open())]

    assert methods(tp.ODOM_FRAME) == ["3d-3d", "tracked", "tracked", "tracked"]
    assert methods("") == ["3d-3d"] * 4


def test_damaged_bag_data_stops_the_replay_naming_the_bag(tmp_path: Path, world: dict, damaged_bag_reads) -> None:
    from locus_core.data.errors import DataFileError

    write_bag(_frames(world), tmp_path / "bag")
    damaged_bag_reads(5)
    with pytest.raises(DataFileError, match=r"bag: unreadable bag data \(RuntimeError: Chunk checksum mismatch.\)"):
        replay(tmp_path / "bag", _Recorder())


def _die_after_the_start(frame, odometry, restart):
    """A worker's ``_localize`` (imported by name in the spawned worker) that kills its process
    from stamp 1.35 on."""
    import os

    from locus_core.bags import workers

    if frame.stamp > 1.35:
        os._exit(3)
    return workers._localize(frame, odometry, restart)


@pytest.mark.timeout(240)
def test_a_worker_dying_mid_replay_stops_it_with_a_bag_error(tmp_path: Path, world: dict, monkeypatch) -> None:
    from locus_core.bags import workers

    write_bag(_frames(world, 8, 0.1), tmp_path / "bag")
    monkeypatch.setattr(workers, "_localize", _die_after_the_start)
    with workers.WorkerPool(2, "backbone:test", world["map"], device="cpu", localizer_config=str(world["config"])) as pool:
        processes = [p for e in pool._executors for p in e._processes.values()]
        with pytest.raises(BagError, match=r"bag: a localization worker died \(.*\) \(at the frame stamped 1\.[0-9]+\)"):
            replay(tmp_path / "bag", pool)
    assert not any(p.is_alive() for p in processes)


@pytest.mark.timeout(240)
def test_an_interrupted_pooled_replay_shuts_the_workers_down(tmp_path: Path, world: dict, caplog) -> None:
    from locus_core.bags.workers import WorkerPool

    # one window of tracking: the frames queued behind the first are cancelled at shutdown
    views = open_dataset(world["scene"], "1:16:2")
    write_bag([dataclasses.replace(views[k % 8], stamp=1.0 + 0.05 * k) for k in range(16)], tmp_path / "bag")

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with WorkerPool(2, "backbone:test", world["map"], device="cpu", localizer_config=str(world["config"]),
                        overrides=["track_period_s=10"]) as pool:
            processes = [p for e in pool._executors for p in e._processes.values()]
            replay(tmp_path / "bag", pool, progress=interrupt)
    assert not any(p.is_alive() for p in processes)
    # before the fix, each cancelled frame logged a CancelledError traceback from the pool's relay
    assert "exception calling callback" not in caplog.text


@pytest.mark.timeout(240)
def test_a_long_tracking_window_keeps_only_the_frames_waiting(world: dict) -> None:
    from locus_core.bags.workers import WorkerPool

    # stamps that never leave the first window (a long track_period_s, frames without stamps)
    with WorkerPool(1, "backbone:test", world["map"], device="cpu", localizer_config=str(world["config"]),
                    overrides=["track_period_s=1000"]) as pool:
        for frame in _frames(world, 6, 0.1):
            pool.submit(frame).result()
        # before the fix, every future of the window was kept until the next window
        assert sum(pool._busy) == 0 and sum(len(w.jobs) for w in pool._windows) == 0


def _slow_first_window(frame, odometry, restart):
    """A worker's ``_localize`` whose frames of the first second take 0.5 s each: (its pid, restart)."""
    import os
    import time

    if frame.stamp < 1.0:
        time.sleep(0.5)
    return os.getpid(), restart


@pytest.mark.timeout(240)
def test_the_windows_waiting_go_to_the_worker_that_is_free(world: dict, monkeypatch) -> None:
    from locus_core.bags import workers

    # window [0, 1) takes one worker 2 s; the three after it are quick, and all go to the other worker
    # (given out as they were read, by the frames each worker had waiting, the third went behind the slow one)
    monkeypatch.setattr(workers, "_localize", _slow_first_window)
    view = open_dataset(world["scene"], "1:2")[0]
    stamps = [0.0, 0.25, 0.5, 0.75] + [w + k * 0.25 for w in (1, 2, 3) for k in range(3)]
    with workers.WorkerPool(2, "backbone:test", world["map"], device="cpu", localizer_config=str(world["config"]),
                            overrides=["track_period_s=1"]) as pool:
        results = [f.result(timeout=60) for f in [pool.submit(dataclasses.replace(view, stamp=s)) for s in stamps]]
    pids = [pid for pid, _ in results]
    assert len(set(pids[:4])) == 1 and len(set(pids[4:])) == 1 and pids[0] != pids[4]
    # each window starts afresh on its worker, and only there
    assert [restart for _, restart in results] == [s == int(s) for s in stamps]


class _Pool(_Recorder):
    """A processor that localizes elsewhere (as a WorkerPool): records the threads this process
    had for torch and OpenCV while it submitted."""

    max_in_flight = 2

    def __init__(self) -> None:
        super().__init__()
        self.threads: list = []

    def submit(self, frame, odometry=None):
        import cv2
        import torch
        from concurrent.futures import Future

        self.threads.append((torch.get_num_threads(), cv2.getNumThreads()))
        future: Future = Future()
        future.set_result(self.localize(frame, odometry))
        return future


def test_frames_localized_elsewhere_leave_this_process_one_thread_while_it_replays(tmp_path: Path, world: dict) -> None:
    import cv2
    import torch

    write_bag(_frames(world), tmp_path / "bag")
    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    try:
        pool = _Pool()
        replay(tmp_path / "bag", pool)
        assert pool.threads == [(1, 1)] * 4 and (torch.get_num_threads(), cv2.getNumThreads()) == (2, 2)
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


@pytest.mark.timeout(240)
def test_a_frame_cancelled_while_it_waits_is_not_sent_and_the_rest_go_on(world: dict, monkeypatch) -> None:
    from locus_core.bags import workers

    # one worker, busy with the slow first window: the next window waits, and its first frame is
    # cancelled by the caller. Before, it was localized all the same, and setting its result on the
    # cancelled future raised in the executor's thread (a failed send would have ended the dispatcher)
    monkeypatch.setattr(workers, "_localize", _slow_first_window)
    view = open_dataset(world["scene"], "1:2")[0]
    stamps = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    with workers.WorkerPool(1, "backbone:test", world["map"], device="cpu", localizer_config=str(world["config"]),
                            overrides=["track_period_s=1"]) as pool:
        futures = [pool.submit(dataclasses.replace(view, stamp=s)) for s in stamps]
        assert futures[4].cancel()
        results = [f.result(timeout=60) for f in futures[:4] + futures[5:]]
    assert futures[4].cancelled()
    assert [restart for _, restart in results] == [True, False, False, False, True, False]  # 1.25 starts its window
