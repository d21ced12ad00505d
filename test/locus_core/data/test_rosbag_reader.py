"""ROS bags written here with rosbags (rosbag2 MCAP and sqlite3, ROS 1), and TF on the real bag."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rgbd_scene import Scene, make_scene, mm, tq_of
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from locus_core.data import FormatError, open_dataset
from locus_core.data.consistency import reprojection_median
from locus_core.data.errors import DataFileError, UnsupportedMessage
from locus_core.data.formats.tf import TfTree
from locus_core.data.poses import pose_from_tq

T_BASE_CAM = pose_from_tq(np.array([0.1, 0.0, 0.3, -0.5, 0.5, -0.5, 0.5]))  # optical frame on a robot
T_MAP_ODOM = pose_from_tq(np.array([1.0, -2.0, 0.0, 0.0, 0.0, 0.2588190, 0.9659258]))


def write_bag(path: Path, scene: Scene, kind: str, *, depth_encoding: str = "16UC1", stamps: list[float] | None = None,
              restart_driver_at: int | None = None, siblings: bool = False,
              info_size: tuple[int, int] | None = None, binned_crop: tuple[int, int, int] | None = None,
              depth_frame: str = "camera_color_optical_frame", depth_codec: str = "png") -> Path:
    """Frame k recorded at bag time 10 + k/10 s, stamped ``stamps[k]`` (default: the same).

    restart_driver_at: from this frame on, the camera topics come from a new publisher (ROS 1: a new
    connection, as a restarted driver's new callerid). siblings: the image_transport topics (JPEG
    colour and PNG depth ``/compressed``, depth ``/compressedDepth``) and the depth camera's
    CameraInfo too, as ``ros2 bag record -a`` of a RealSense. info_size: (H, W) the CameraInfo claims.
    binned_crop: (binning, x_offset, y_offset): the CameraInfo is a larger sensor's, which the
    images are a binned ROI of (a driver's binning and ROI, image_proc's crop_decimate).
    depth_frame: the raw depth image's header.frame_id. depth_codec: of the ``/compressedDepth``
    sibling, "png" or "rvl" (its format only: the bytes stay a PNG's).
    """
    ros1 = kind == "ros1"
    store = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    if ros1:  # the noetic store lacks tf2_msgs
        store.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    T = store.types
    Header, Time = T["std_msgs/msg/Header"], T["builtin_interfaces/msg/Time"]

    def header(t: float, frame: str):
        stamp = Time(sec=int(t), nanosec=int(round((t % 1) * 1e9)))
        return Header(seq=0, stamp=stamp, frame_id=frame) if ros1 else Header(stamp=stamp, frame_id=frame)

    def transform(t: float, parent: str, child: str, M: np.ndarray):
        tx, ty, tz, qx, qy, qz, qw = tq_of(M)
        return T["geometry_msgs/msg/TransformStamped"](
            header=header(t, parent), child_frame_id=child,
            transform=T["geometry_msgs/msg/Transform"](
                translation=T["geometry_msgs/msg/Vector3"](x=tx, y=ty, z=tz),
                rotation=T["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)))

    H, W = scene.depth[0].shape
    info_h, info_w = info_size or (H, W)
    binning, x0, y0 = binned_crop or (1, 0, 0)
    # The sensor's K maps to scene.K as image_geometry bins and crops it: (K - offset) / binning.
    sensor_K = scene.K * np.array([[binning], [binning], [1]]) + np.array([[0, 0, x0], [0, 0, y0], [0, 0, 0]])
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    if binned_crop:
        info_h, info_w = y0 + binning * H + 6, x0 + binning * W + 6  # the ROI does not reach the sensor's edge
        roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=x0, y_offset=y0, height=binning * H, width=binning * W,
                                                    do_rectify=False)
    stamps = stamps or [10.0 + k / 10 for k in range(len(scene.rgb))]
    camera = [("/camera/color/image_raw", "sensor_msgs/msg/Image"),
              ("/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image"),
              ("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo")]
    if siblings:
        camera += [("/camera/color/image_raw/compressed", "sensor_msgs/msg/CompressedImage"),
                   ("/camera/aligned_depth_to_color/image_raw/compressed", "sensor_msgs/msg/CompressedImage"),
                   ("/camera/aligned_depth_to_color/image_raw/compressedDepth", "sensor_msgs/msg/CompressedImage"),
                   ("/camera/aligned_depth_to_color/camera_info", "sensor_msgs/msg/CameraInfo")]
    if ros1:
        from rosbags.rosbag1 import Writer

        writer = Writer(path)
    else:
        from rosbags.rosbag2 import StoragePlugin, Writer

        writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP if kind == "mcap" else StoragePlugin.SQLITE3)
    serialize = store.serialize_ros1 if ros1 else store.serialize_cdr
    with writer:
        tf = [("/tf", "tf2_msgs/msg/TFMessage"), ("/tf_static", "tf2_msgs/msg/TFMessage")]
        conns = {topic: writer.add_connection(topic, msgtype, typestore=store) for topic, msgtype in camera + tf}

        def write(topic: str, t: float, msg) -> None:
            writer.write(conns[topic], int(t * 1e9), serialize(msg, msg.__msgtype__))

        write("/tf_static", 9.0, T["tf2_msgs/msg/TFMessage"](transforms=[
            transform(9.0, "base_link", "camera_color_optical_frame", T_BASE_CAM)]))
        Image, Compressed = T["sensor_msgs/msg/Image"], T["sensor_msgs/msg/CompressedImage"]
        for k, (rgb, depth, pose, s) in enumerate(zip(scene.rgb, scene.depth, scene.poses, stamps)):
            t = 10.0 + k / 10
            if k == restart_driver_at:
                conns.update({topic: writer.add_connection(topic, msgtype, typestore=store, callerid="/camera_restarted")
                              for topic, msgtype in camera})
            # The robot pose that puts the optical frame at the scene's camera pose, sampled around s.
            T_odom_base = np.linalg.inv(T_MAP_ODOM) @ pose @ np.linalg.inv(T_BASE_CAM)
            write("/tf", t, T["tf2_msgs/msg/TFMessage"](transforms=[
                transform(s, "map", "odom", T_MAP_ODOM), transform(s, "odom", "base_link", T_odom_base)]))
            calibration = {"d": np.zeros(5), "k": sensor_K.ravel(), "r": np.eye(3).ravel(), "p": np.zeros(12)}
            info = T["sensor_msgs/msg/CameraInfo"](
                header=header(s, "camera_color_optical_frame"), height=info_h, width=info_w, distortion_model="plumb_bob",
                **{key.upper() if ros1 else key: value for key, value in calibration.items()},
                binning_x=binning if binned_crop else 0, binning_y=binning if binned_crop else 0, roi=roi)
            write("/camera/color/camera_info", t, info)
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            write("/camera/color/image_raw", t, Image(
                header=header(s, "camera_color_optical_frame"), height=H, width=W, encoding="bgr8", is_bigendian=0,
                step=W * 3, data=bgr.ravel()))
            if depth_encoding == "16UC1":
                raw = np.nan_to_num(np.round(depth * 1000), nan=0).astype("<u2")
            else:
                raw = np.nan_to_num(depth, nan=0).astype("<f4")
            write("/camera/aligned_depth_to_color/image_raw", t + 0.004, Image(
                header=header(s + 0.004, depth_frame), height=H, width=W, encoding=depth_encoding,
                is_bigendian=0, step=W * raw.itemsize, data=raw.view(np.uint8).ravel()))
            if siblings:
                write("/camera/aligned_depth_to_color/camera_info", t + 0.004, info)
                jpeg = cv2.imencode(".jpg", bgr)[1].ravel()
                write("/camera/color/image_raw/compressed", t, Compressed(
                    header=header(s, "camera_color_optical_frame"), format="bgr8; jpeg compressed bgr8", data=jpeg))
                png = cv2.imencode(".png", mm(depth))[1].ravel()
                write("/camera/aligned_depth_to_color/image_raw/compressed", t + 0.004, Compressed(
                    header=header(s + 0.004, "camera_color_optical_frame"), format="16UC1; png compressed ", data=png))
                write("/camera/aligned_depth_to_color/image_raw/compressedDepth", t + 0.004, Compressed(
                    header=header(s + 0.004, "camera_color_optical_frame"), format=f"16UC1; compressedDepth {depth_codec}",
                    data=np.concatenate([np.zeros(12, np.uint8), png])))  # a 12-byte config header first
    return path


@pytest.mark.parametrize(("kind", "name", "encoding"),
                         [("mcap", "bag2", "16UC1"), ("sqlite3", "bag2", "32FC1"), ("ros1", "robot.bag", "16UC1")])
def test_bag_frames_poses_and_depth(tmp_path: Path, kind: str, name: str, encoding: str) -> None:
    scene = make_scene(n=5)
    path = write_bag(tmp_path / name, scene, kind, depth_encoding=encoding)
    ds = open_dataset(path)
    assert ds.format == "rosbag" and ds.indices == [0, 1, 2, 3, 4] and ds.image_size == (48, 64)
    np.testing.assert_allclose(ds.poses(), np.stack(scene.poses), atol=1e-6)
    np.testing.assert_allclose(ds.intrinsics(0), scene.K)
    frame = ds[3]
    assert frame.stamp == pytest.approx(10.3) and np.array_equal(frame.rgb, scene.rgb[3])
    np.testing.assert_allclose(frame.depth, scene.depth[3], atol=5e-4 if encoding == "16UC1" else 1e-6)
    assert reprojection_median(list(ds)) < 2e-3
    assert open_dataset(path, "1:3").indices == [1, 2]


def test_a_humble_sqlite3_bag_without_message_definitions_is_read(tmp_path: Path) -> None:
    """rosbag2 before Iron stores no message definitions in its sqlite3 bags (schema 3, no
    message_definitions table): they are read with the standard ROS 2 types."""
    import sqlite3

    scene = make_scene(n=2)
    path = write_bag(tmp_path / "bag2", scene, "sqlite3")
    with sqlite3.connect(next(path.glob("*.db3"))) as db:
        db.execute("DROP TABLE message_definitions")
        db.execute("UPDATE schema SET schema_version = 3")
    ds = open_dataset(path)
    assert ds.indices == [0, 1] and np.array_equal(ds[1].rgb, scene.rgb[1])


def test_bag_options_and_errors(tmp_path: Path) -> None:
    path = write_bag(tmp_path / "bag2", make_scene(n=3), "mcap")
    ds = open_dataset(path, fixed_frame="odom", rgb_topic="/camera/color/image_raw")
    np.testing.assert_allclose(ds.poses()[0], np.linalg.inv(T_MAP_ODOM) @ make_scene(n=3).poses[0], atol=1e-6)
    np.testing.assert_allclose(open_dataset(path, fixed_frame="/map").poses(), np.stack(make_scene(n=3).poses), atol=1e-6)
    with pytest.raises(FormatError, match="fixed frame 'earth' not in TF"):
        open_dataset(path, fixed_frame="earth")
    with pytest.raises(FormatError, match="topic '/nope' not in the bag"):
        open_dataset(path, depth_topic="/nope")
    with pytest.raises(FormatError, match="no colour image on .* has depth"):
        open_dataset(path, max_dt=0.001)
    for bad in ("abc", "-1", "nan"):  # from --option max_dt=...: a ValueError traceback, no frames, or any gap
        with pytest.raises(FormatError, match=f"max_dt '{bad}': expected seconds >= 0"):
            open_dataset(path, max_dt=bad)


def test_stamps_that_restart_split_the_recording(tmp_path: Path) -> None:
    """A simulator restarted mid-recording: the second run reuses the first one's stamps. Each image
    gets the pose and the depth of its own run."""
    scene = make_scene(n=6)
    path = write_bag(tmp_path / "bag2", scene, "mcap", stamps=[10.0, 10.6, 11.2] * 2)
    ds = open_dataset(path)
    assert ds.indices == list(range(6))
    np.testing.assert_allclose(ds.poses(), np.stack(scene.poses), atol=1e-6)
    for k in range(6):
        np.testing.assert_allclose(ds[k].depth, scene.depth[k], atol=5e-4)


def test_a_restarted_driver_s_second_connection_is_read(tmp_path: Path) -> None:
    scene = make_scene(n=5)
    ds = open_dataset(write_bag(tmp_path / "robot.bag", scene, "ros1", restart_driver_at=2))
    assert ds.indices == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(ds.poses(), np.stack(scene.poses), atol=1e-6)
    assert np.array_equal(ds[1].rgb, scene.rgb[1]) and np.array_equal(ds[4].rgb, scene.rgb[4])


def test_raw_topics_are_preferred_over_their_transport_siblings(tmp_path: Path) -> None:
    """``ros2 bag record -a`` of a RealSense: the raw colour and depth topics, not their JPEG/PNG
    siblings (the depth's ``/compressed`` has "color" in its name too); a compressed colour topic
    gets the colour camera's CameraInfo."""
    scene = make_scene(n=3)
    path = write_bag(tmp_path / "bag2", scene, "mcap", siblings=True)
    ds = open_dataset(path)
    assert np.array_equal(ds[1].rgb, scene.rgb[1])  # not the JPEG
    np.testing.assert_allclose(ds.poses(), np.stack(scene.poses), atol=1e-6)
    jpeg = open_dataset(path, rgb_topic="/camera/color/image_raw/compressed")
    assert jpeg[1].rgb.shape == scene.rgb[1].shape and not np.array_equal(jpeg[1].rgb, scene.rgb[1])  # the JPEG
    np.testing.assert_allclose(jpeg.intrinsics(0), scene.K)
    png = open_dataset(path, depth_topic="/camera/aligned_depth_to_color/image_raw/compressedDepth")
    np.testing.assert_allclose(png[2].depth, scene.depth[2], atol=5e-4)


def test_camera_info_for_another_image_size_is_refused(tmp_path: Path) -> None:
    path = write_bag(tmp_path / "bag2", make_scene(n=2), "mcap", info_size=(24, 32))
    with pytest.raises(FormatError, match=r"/camera/color/image_raw@10\.000000: image is 64x48 but "
                                          r"/camera/color/camera_info is for 32x24"):
        open_dataset(path)


@pytest.mark.parametrize(("kind", "name"), [("mcap", "bag2"), ("ros1", "robot.bag")])
def test_camera_info_with_binning_and_roi_gives_the_images_intrinsics(tmp_path: Path, kind: str, name: str) -> None:
    """CameraInfo keeps the full sensor's calibration and size and sets binning and ROI: the images'
    K and size follow as image_geometry (and the node) derive them. Such bags were refused as a size
    mismatch."""
    scene = make_scene(n=3)
    ds = open_dataset(write_bag(tmp_path / name, scene, kind, binned_crop=(2, 8, 4)))
    assert ds.image_size == (48, 64)
    np.testing.assert_allclose(ds.intrinsics(0), scene.K)
    assert np.array_equal(ds[1].rgb, scene.rgb[1])
    assert reprojection_median(list(ds)) < 2e-3


def test_rvl_compressed_depth_is_refused_naming_the_bag_and_topic(tmp_path: Path) -> None:
    """ROS 2's compressed_depth_image_transport also writes RVL, a codec not read: said so at open
    (a data-layer error), not taken for a corrupt PNG frame by frame."""
    path = write_bag(tmp_path / "bag2", make_scene(n=2), "mcap", siblings=True, depth_codec="rvl")
    topic = "/camera/aligned_depth_to_color/image_raw/compressedDepth"
    with pytest.raises(UnsupportedMessage, match=rf"bag2:{topic}@10\.004000: compressed depth '16UC1; compressedDepth rvl' "
                                                 r"is not read \(16UC1 compressedDepth png only\)"):
        open_dataset(path, depth_topic=topic)


def test_depth_in_another_frame_than_colour_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Depth in the depth camera's own frame is not registered to the colour image: read with the
    colour K every 3D point is off, which was silent."""
    scene = make_scene(n=2)
    with caplog.at_level("WARNING", logger="locus_core.data.formats.rosbag"):
        open_dataset(write_bag(tmp_path / "aligned", scene, "mcap"))
        assert not caplog.records
        open_dataset(write_bag(tmp_path / "raw", scene, "mcap", depth_frame="camera_depth_optical_frame"))
    assert "in frame 'camera_depth_optical_frame', colour on /camera/color/image_raw in " \
           "'camera_color_optical_frame': the depth must be registered" in caplog.text


def test_tf_tree_on_real_bag(shared_data: Path) -> None:
    """The camera's optical frame in 'map' from the TurtleBot bag equals the chain composed by hand."""
    from rosbags.highlevel import AnyReader

    tree, edges = TfTree(), {}
    with AnyReader([shared_data / "bags" / "nav2_turtlebot.mcap"]) as reader:
        conns = [c for c in reader.connections if c.topic in ("/tf", "/tf_static")]
        for conn, _, raw in reader.messages(conns):
            for tr in reader.deserialize(raw, conn.msgtype).transforms:
                t, r = tr.transform.translation, tr.transform.rotation
                tq = np.array([t.x, t.y, t.z, r.x, r.y, r.z, r.w])
                stamp = tr.header.stamp.sec + tr.header.stamp.nanosec * 1e-9
                tree.add(tr.header.frame_id, tr.child_frame_id, stamp, tq, static=conn.topic == "/tf_static")
                edges.setdefault(tr.child_frame_id, (tr.header.frame_id, stamp, tq))
    _, t0, tq = edges["base_link"]  # odom -> base_link, first sample: no interpolation involved
    T = tree.lookup("odom", "oakd_rgb_camera_optical_frame", t0)
    chain = ["oakd_rgb_camera_optical_frame", "oakd_rgb_camera_frame", "oakd_link", "oakd_camera_bracket",
             "shell_link", "base_link"]
    expected = np.eye(4)
    for child in chain:
        expected = pose_from_tq(edges[child][2]) @ expected
    np.testing.assert_allclose(T, expected, atol=1e-9)
    assert tree.lookup("map", "oakd_rgb_camera_optical_frame", t0 + 30) is not None
    assert tree.lookup("map", "base_link", t0 - 100) is None  # before the first sample: no guess
    assert tree.lookup("map", "nowhere", t0) is None


def test_damaged_bag_data_is_an_error_naming_the_bag(tmp_path: Path, damaged_bag_reads) -> None:
    path = write_bag(tmp_path / "bag2", make_scene(n=3), "mcap")
    damaged_bag_reads(2)
    with pytest.raises(DataFileError, match=r"bag2: unreadable bag data \(RuntimeError: Chunk checksum mismatch.\)"):
        open_dataset(path)
