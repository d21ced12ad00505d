"""``write_bag``: a synthetic scene as rosbag2 (MCAP and sqlite3), read back by the data reader and
by rosbags directly (topics, types, frame ids, stamps, TF chains, latched /tf_static)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from locus_core.bags import topics as tp
from locus_core.bags.convert import write_bag
from locus_core.bags.errors import BagError
from locus_core.data import open_dataset
from locus_core.data.synthetic import generate_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    return open_dataset(generate_scene(tmp_path_factory.mktemp("scene") / "s", frames=6, size=(48, 64)))


@pytest.mark.parametrize(("storage", "odom"), [("mcap", False), ("sqlite3", True)])
def test_round_trip_through_the_bag_reader(tmp_path: Path, scene, storage: str, odom: bool) -> None:
    summary = write_bag(scene, tmp_path / "bag", storage=storage, odom_chain=odom, compressed=True)
    assert summary.frames == 6 and summary.duration_s == pytest.approx(5 / 30)
    assert summary.topics[tp.TF_STATIC] == 1 and summary.topics[tp.GROUND_TRUTH] == 6
    assert not list(tmp_path.glob(".bag.tmp-*"))  # staging removed
    back = open_dataset(tmp_path / "bag")  # the raw colour topic, not its /compressed sibling
    np.testing.assert_allclose(back.poses(), scene.poses(), atol=1e-9)
    for k in (0, 5):
        a, b = scene[k], back[k]
        assert np.array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(np.isnan(a.depth), np.isnan(b.depth))
        np.testing.assert_allclose(b.depth, a.depth, atol=5e-4)  # millimetre quantisation
        np.testing.assert_allclose(b.K, a.K)
    jpeg = open_dataset(tmp_path / "bag", rgb_topic=tp.COMPRESSED)[2].rgb
    assert np.abs(jpeg.astype(int) - scene[2].rgb).mean() < 12


def test_messages_look_like_a_camera_driver(tmp_path: Path, scene) -> None:
    from rosbags.highlevel import AnyReader

    write_bag(scene, tmp_path / "bag", odom_chain=True)
    with AnyReader([tmp_path / "bag"]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types == {
            tp.TF_STATIC: "tf2_msgs/msg/TFMessage", tp.TF: "tf2_msgs/msg/TFMessage",
            tp.CAMERA_INFO: "sensor_msgs/msg/CameraInfo", tp.RGB: "sensor_msgs/msg/Image",
            tp.DEPTH: "sensor_msgs/msg/Image", tp.GROUND_TRUTH: "geometry_msgs/msg/PoseStamped",
        }
        static = next(c for c in reader.connections if c.topic == tp.TF_STATIC)
        assert "transient_local" in str(static.ext.offered_qos_profiles).lower()
        seen: dict[str, list] = {}
        for conn, bag_time, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            seen.setdefault(conn.topic, []).append(msg)
            if hasattr(msg, "header"):
                assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == bag_time
    rgb, depth, info = seen[tp.RGB][3], seen[tp.DEPTH][3], seen[tp.CAMERA_INFO][3]
    assert (rgb.encoding, depth.encoding, rgb.header.frame_id, info.header.frame_id) == (
        "rgb8", "16UC1", tp.OPTICAL_FRAME, tp.OPTICAL_FRAME)
    assert rgb.header.stamp == depth.header.stamp == info.header.stamp
    assert (rgb.step, depth.step) == (64 * 3, 64 * 2)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in seen[tp.RGB]]
    assert stamps[0] >= 1.0 and np.all(np.diff(stamps) > 0)  # time 0 would mean "latest" to tf2
    assert [(t.header.frame_id, t.child_frame_id) for t in seen[tp.TF][0].transforms] == [
        (tp.MAP_FRAME, tp.ODOM_FRAME), (tp.ODOM_FRAME, tp.BASE_FRAME)]
    assert {t.child_frame_id for t in seen[tp.TF_STATIC][0].transforms} == {tp.CAMERA_LINK, tp.OPTICAL_FRAME}
    p = seen[tp.GROUND_TRUTH][3].pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], scene.poses()[3][:3, 3], atol=1e-9)


def test_size_and_repeated_stamps(tmp_path: Path, scene) -> None:
    frames = [dataclasses.replace(scene[k], stamp=0.0) for k in range(3)]  # no usable stamps
    write_bag(frames, tmp_path / "bag", size=(24, 32))
    back = open_dataset(tmp_path / "bag")
    assert back.image_size == (24, 32) and len(back) == 3
    assert np.diff([back[k].stamp for k in range(3)]) == pytest.approx([1 / 30, 1 / 30])
    np.testing.assert_allclose(back.intrinsics(0)[0, 0], scene.intrinsics(0)[0, 0] / 2)


def test_errors_name_the_problem(tmp_path: Path, scene) -> None:
    write_bag(scene[:1], tmp_path / "bag")
    with pytest.raises(BagError, match="already exists"):
        write_bag(scene[:1], tmp_path / "bag")
    with pytest.raises(BagError, match="storage 'rosbag1' not supported"):
        write_bag(scene[:1], tmp_path / "other", storage="rosbag1")
    with pytest.raises(BagError, match="no frames"):
        write_bag([], tmp_path / "other")
    with pytest.raises(BagError, match="--size must be positive"):  # was resize_frame's ValueError, a traceback
        write_bag(scene[:1], tmp_path / "other", size=(0, 64))
    with pytest.raises(BagError, match="has no pose"):
        write_bag([dataclasses.replace(scene[0], T_world_cam=None)], tmp_path / "other")
    assert not (tmp_path / "other").exists() and not list(tmp_path.glob(".other.tmp-*"))


def test_a_full_disk_under_sqlite3_names_the_bag(tmp_path: Path, scene, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from rosbags.rosbag2 import Writer

    def full(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Writer, "write", full)
    with pytest.raises(BagError, match=r"full: writing the bag failed \(database or disk is full\)"):
        write_bag(scene[:1], tmp_path / "full", storage="sqlite3")
    assert not (tmp_path / "full").exists() and not list(tmp_path.glob(".full.tmp-*"))


def test_an_out_that_cannot_be_created_names_the_bag(tmp_path: Path, scene) -> None:
    """--out under a file (or a read-only folder): the staging folder's mkdir raised a bare
    NotADirectoryError, a traceback from `locus bag convert` instead of its one-line error."""
    (tmp_path / "file").write_text("")
    with pytest.raises(BagError, match=r"file/bag: writing the bag failed \(.*Not a directory"):
        write_bag(scene[:1], tmp_path / "file" / "bag")
