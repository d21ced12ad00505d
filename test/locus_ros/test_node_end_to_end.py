"""The node end to end over real DDS on real frames (synthetic when ../shared/data is absent):
mapping mode builds a map from frames posed by TF and saves it on request and on SIGINT; a second
node loads that map, localizes held-out frames and publishes matches, poses and map→odom that agree
with the ground truth; bad content and TF gaps are reported, never fatal.

Two node processes for the module (each loads the model once); frames are sent one at a time and
the test waits for the node's ~/status of that frame, so nothing is dropped by the newest-wins queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("locus.srv")
pytest.importorskip("faiss")

from locus.srv import LoadMap, SaveMap, SetMode  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from locus_core.data import open_dataset  # noqa: E402
from locus_core.data.frame import PosedFrame  # noqa: E402
from locus_ros import conversions as conv  # noqa: E402
from ros_harness import Client, NodeProcess, write_params  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "7scenes-redkitchen"
MODEL = "backbone:xfeat"  # the trained default is measured by `locus bench node`; plumbing is the same
CAMERA = "camera_color_optical_frame"
# Held-out frames between the keyframes, never mapped. In the synthetic scene's repeated textures raw
# XFeat (the model here) confuses some frames with other places; 25 and 85 it localizes (the tests
# are about the node, not about XFeat).
QUERIES = "10:90:40" if REAL.is_dir() else "25:90:60"
# How close the published pose must be to the ground truth. Wiring faults are off by the odometry
# drift below (30 cm, 10 deg) or more; the synthetic scene's 240x320 frames have few patches left
# once depth-edge patches are dropped, and raw XFeat poses them to 2-7 cm there.
TOLERANCE_M, TOLERANCE_DEG = (0.05, 2.0) if REAL.is_dir() else (0.10, 4.0)
# Ground truth of the odometry drift the localizer must recover: map→odom.
T_MAP_ODOM = np.eye(4)
T_MAP_ODOM[:3, :3] = Rotation.from_euler("z", 10, degrees=True).as_matrix()
T_MAP_ODOM[:3, 3] = [0.3, -0.2, 0.0]
# base_link→camera optical frame (REP 103: x forward, z up → optical: z forward, y down), 20 cm up.
T_BASE_CAM = np.eye(4)
T_BASE_CAM[:3, :3] = Rotation.from_euler("xyz", [-90, 0, -90], degrees=True).as_matrix()
T_BASE_CAM[:3, 3] = [0.1, 0.0, 0.2]


def _frames(selection: str, tmp: Path) -> list[PosedFrame]:
    if REAL.is_dir():
        return list(open_dataset(REAL, frames=selection))
    from locus_core.data.synthetic import generate_scene

    scene = tmp / "scene"
    if not scene.exists():
        generate_scene(scene, seed=0, rooms=1, frames=120, size=(240, 320))
    return list(open_dataset(scene, frames=selection))


def _send(client: Client, frame: PosedFrame, *, blank: bool = False, nan_depth: bool = False,
          before: Callable[[], None] | None = None, timeout: float = 90.0, resend_s: float = 5.0):
    """Publish one frame (after what ``before`` publishes, e.g. its TF) and wait for the node's
    status of it. Sent again every ``resend_s`` until then: right after a node starts, DDS may not
    have matched its readers to our writers yet, and best-effort camera topics lose what was sent."""
    rgb = np.zeros_like(frame.rgb) if blank else frame.rgb
    depth = np.full_like(frame.depth, np.nan) if nan_depth else frame.depth
    stamp = conv.seconds_to_stamp(frame.stamp)

    def status():
        return next((s for s in client.messages("/locus_localizer/status") if s.header.stamp == stamp), None)

    deadline = time.monotonic() + timeout
    while True:
        if before is not None:
            before()
        client.publish_frame(rgb, depth, frame.K, frame.stamp, camera_frame=CAMERA)
        try:
            return client.wait_for(status, max(0.1, min(resend_s, deadline - time.monotonic())), f"the status of {frame.frame_id}")
        except AssertionError:
            if time.monotonic() >= deadline:
                raise


def _by_stamp(client: Client, topic: str, stamp: float) -> list:
    wanted = conv.seconds_to_stamp(stamp)
    return [m for m in client.messages(topic) if m.header.stamp == wanted]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def client():
    c = Client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def built_map(workdir: Path, client: Client) -> Path:
    """Mapping mode over DDS: poses from TF map→camera; saved by ~/save_map and by SIGINT."""
    map_dir = workdir / "map"
    params = write_params(workdir / "mapping.yaml", mode="mapping", map_path=str(map_dir), model=MODEL, tf_timeout=0.5)
    node = NodeProcess(params, workdir / "mapping.log")
    try:
        client.wait_connected(timeout=60)
        frames = _frames("0:100:20", workdir)
        # A frame whose pose never arrives on TF: skipped and reported, mapping goes on.
        status = _send(client, frames[0])
        assert status.keyframes == 0 and "map" in status.message
        for frame in frames:
            def pose_from_slam(frame: PosedFrame = frame) -> None:  # stamped around the image, as a SLAM system would
                client.publish_tf("map", CAMERA, frame.T_world_cam, frame.stamp + 0.01)
                client.publish_tf("map", CAMERA, frame.T_world_cam, frame.stamp - 0.01)

            status = _send(client, frame, before=pose_from_slam)
        assert status.keyframes >= 2 and status.landmarks > 100, status
        # Diagnostics are periodic: the latest one may predate the skipped frame.
        client.wait_for(lambda: int((client.diagnostics(": localization") or {}).get("tf_errors", 0)) >= 1, 60,
                        "diagnostics counting the frame without a pose")
        copy = workdir / "map_copy"
        response = client.call(SaveMap, "/locus_localizer/save_map", SaveMap.Request(path=str(copy)))
        assert response.success, response.message
        assert (copy / "manifest.json").is_file()
        markers = client.wait_for(lambda: client.messages("/locus_localizer/landmarks"), 60, "landmark markers")[-1]
        assert {m.ns for m in markers.markers} == {"landmarks", "keyframes"}
        assert all(m.header.frame_id == "map" for m in markers.markers)
        assert len(markers.markers[1].points) == status.keyframes
        keyframes = status.keyframes
    finally:
        rc = node.interrupt()
    assert rc == 0, node.log()
    assert "map saved to" in node.log()
    from locus_core.mapping import LandmarkMap

    assert len(LandmarkMap.load(map_dir).keyframes) == keyframes
    client.clear()
    return map_dir


@pytest.fixture(scope="module")
def localizer(workdir: Path, client: Client, built_map: Path):
    localizer_config = ""
    if not REAL.is_dir():
        # The synthetic scene's 240x320 frames give about 60 inliers where 640x480 redkitchen frames
        # give hundreds; the default threshold is measured on the latter.
        localizer_config = str(workdir / "localizer.yaml")
        Path(localizer_config).write_text("min_inliers: 30\n")
    params = write_params(workdir / "localize.yaml", map_path=str(built_map), model=MODEL, tf_timeout=0.3,
                          localizer_config=localizer_config)
    node = NodeProcess(params, workdir / "localize.log")
    client.publish_tf("base_link", CAMERA, T_BASE_CAM, 0.0, static=True)
    try:
        client.wait_connected(timeout=60)
        # Ready once the model and the map are loaded (in the background): each test may run alone.
        client.wait_for(lambda: (client.diagnostics(": localization") or {}).get("map_path") == str(built_map), 120,
                        "the node to load its model and map")
        yield node
    finally:
        rc = node.interrupt()
        assert rc == 0, node.log()


def _publish_odometry(client: Client, frame: PosedFrame) -> None:
    T_odom_base = np.linalg.inv(T_MAP_ODOM) @ frame.T_world_cam @ np.linalg.inv(T_BASE_CAM)
    for dt in (-0.02, 0.02):
        client.publish_tf("odom", "base_link", T_odom_base, frame.stamp + dt)


def test_localizes_held_out_frames_against_the_ground_truth(client: Client, localizer, workdir: Path) -> None:
    queries = _frames(QUERIES, workdir)
    for frame in queries:
        status = _send(client, frame, before=lambda frame=frame: _publish_odometry(client, frame))
        assert status.localized, status.message
        matches = _by_stamp(client, "/locus_localizer/place_matches", frame.stamp)[-1]
        assert matches.header.frame_id == "map" and 1 <= len(matches.matches) <= 5
        pose = client.wait_for(lambda: _by_stamp(client, "/locus_localizer/pose", frame.stamp), 60, "~/pose")[-1]
        assert pose.header.frame_id == "map"
        T = conv.pose_to_matrix(pose.pose.pose)
        assert np.linalg.norm(T[:3, 3] - frame.T_world_cam[:3, 3]) < TOLERANCE_M
        angle = Rotation.from_matrix(T[:3, :3].T @ frame.T_world_cam[:3, :3]).magnitude()
        assert np.degrees(angle) < TOLERANCE_DEG
        assert np.isfinite(pose.pose.covariance).all() and pose.pose.covariance[0] > 0
        best = matches.matches[0]
        np.testing.assert_allclose(conv.pose_to_matrix(best.keyframe_pose) @ conv.pose_to_matrix(best.relative_pose), T, atol=0.05)
        ahead = conv.seconds_to_stamp(frame.stamp + 0.1)  # transform_tolerance
        tf = client.wait_for(
            lambda: [t for m in client.messages("/tf") for t in m.transforms if t.child_frame_id == "odom" and t.header.stamp == ahead],
            60, "map→odom",
        )[-1]
        assert tf.header.frame_id == "map"
        T_map_odom = conv.transform_to_matrix(tf.transform)
        # Compared where the robot is: far from the map origin a 1 degree error moves odom's origin
        # by more than the camera.
        T_odom_cam = np.linalg.inv(T_MAP_ODOM) @ frame.T_world_cam
        assert np.linalg.norm((T_map_odom @ T_odom_cam)[:3, 3] - frame.T_world_cam[:3, 3]) < TOLERANCE_M
        angle = Rotation.from_matrix(T_map_odom[:3, :3].T @ T_MAP_ODOM[:3, :3]).magnitude()
        assert np.degrees(angle) < TOLERANCE_DEG


def test_bad_content_and_tf_gaps_are_reported(client: Client, localizer, workdir: Path) -> None:
    frame = _frames(QUERIES, workdir)[0]
    blank = PosedFrame(rgb=frame.rgb, depth=frame.depth, K=frame.K, T_world_cam=None, frame_id="blank", stamp=frame.stamp + 100)
    status = _send(client, blank, blank=True)
    assert not status.localized and "blank" in status.message
    assert not _by_stamp(client, "/locus_localizer/pose", blank.stamp)
    # No odometry for this one: the pose is still published, map→odom is not, and diagnostics say why.
    late = PosedFrame(rgb=frame.rgb, depth=frame.depth, K=frame.K, T_world_cam=frame.T_world_cam, frame_id="late", stamp=frame.stamp + 200)
    status = _send(client, late)
    assert status.localized
    client.wait_for(lambda: _by_stamp(client, "/locus_localizer/pose", late.stamp), 60, "~/pose")
    diag = client.wait_for(lambda: int((client.diagnostics(": localization") or {}).get("tf_errors", 0)) >= 1, 60, "tf errors")
    assert diag
    # Invalid depth everywhere: the localizer falls back to 2D–3D (PnP) or says why not; the node lives.
    nan_frame = PosedFrame(rgb=frame.rgb, depth=frame.depth, K=frame.K, T_world_cam=None, frame_id="nan", stamp=frame.stamp + 300)
    status = _send(client, nan_frame, nan_depth=True)
    assert status.localized or status.message
    assert localizer.alive()


def test_set_mode_switches_and_refuses_bad_modes(client: Client, localizer) -> None:
    response = client.call(SetMode, "/locus_localizer/set_mode", SetMode.Request(mode="mapping"))
    assert response.success, response.message
    response = client.call(SetMode, "/locus_localizer/set_mode", SetMode.Request(mode="localization"))
    assert response.success, response.message
    response = client.call(SetMode, "/locus_localizer/set_mode", SetMode.Request(mode="flying"))
    assert not response.success and "flying" in response.message


def test_load_map_sets_map_path_and_diagnostics_name_the_map_in_use(client: Client, localizer, built_map: Path, workdir: Path) -> None:
    def diagnosed_map() -> str:
        return (client.diagnostics(": localization") or {}).get("map_path", "")

    client.wait_for(lambda: diagnosed_map() == str(built_map), 60, "diagnostics naming the map loaded at start")
    copy = workdir / "map_copy"  # saved by ~/save_map while mapping
    response = client.call(LoadMap, "/locus_localizer/load_map", LoadMap.Request(path=str(copy)))
    assert response.success and response.message.startswith(f"loaded {copy}: "), response.message
    request = GetParameters.Request(names=["map_path"])
    assert client.call(GetParameters, "/locus_localizer/get_parameters", request).values[0].string_value == str(copy)
    client.wait_for(lambda: diagnosed_map() == str(copy), 60, "diagnostics naming the map loaded by ~/load_map")
