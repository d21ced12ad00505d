from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from locus_core.data import (
    DataError,
    DataFileError,
    FormatError,
    FrameError,
    SelectionError,
    open_dataset,
)
from locus_core.data.consistency import reprojection_median
from rgbd_scene import make_scene, write_matrix, write_png, write_tsdf


def test_reads_frames_poses_and_intrinsics(tmp_path: Path) -> None:
    scene = make_scene()
    ds = open_dataset(write_tsdf(tmp_path / "seq", scene, first=10, step=2))
    assert ds.format == "7scenes" and ds.name == "seq" and len(ds) == 6
    assert ds.indices == [10, 12, 14, 16, 18, 20] and ds.image_size == (48, 64)
    np.testing.assert_allclose(ds.poses(), np.stack(scene.poses), atol=1e-12)
    np.testing.assert_allclose(ds.intrinsics(3), scene.K)
    frame = ds[-1]
    assert frame.index == 20 and frame.frame_id == "seq/frame-000020" and frame.semantic is None
    assert frame.rgb.dtype == np.uint8 and np.array_equal(frame.rgb, scene.rgb[5])
    assert frame.depth.dtype == np.float32
    np.testing.assert_allclose(frame.depth, scene.depth[5], atol=5e-4)
    assert reprojection_median(list(ds)) < 2e-3


def test_frame_selection_by_index_value(tmp_path: Path) -> None:
    scene = make_scene()
    path = write_tsdf(tmp_path / "seq", scene, first=10, step=2)
    assert open_dataset(path, "12:18").indices == [12, 14, 16]
    assert open_dataset(path, "10::4").indices == [10, 14, 18]
    sub = open_dataset(path)[1:4]
    assert sub.indices == [12, 14, 16] and sub[0].index == 12 and sub.poses().shape == (3, 4, 4)
    with pytest.raises(SelectionError, match=r"'100:200' select nothing \(frame indices present: 10..20\)"):
        open_dataset(path, "100:200")
    with pytest.raises(SelectionError, match="START:STOP"):
        open_dataset(path, "5")


def test_labelfusion_encoding_detected_from_data(tmp_path: Path) -> None:
    scene = make_scene(plane_z=0.6)
    scene.depth[0][:4] = 0.25  # under 0.3 m: invalid in this encoding
    ds = open_dataset(write_tsdf(tmp_path / "shelf", scene, labelfusion=True,
                                 intrinsics_name="camera-intrinsics.color.txt"))
    assert ds.format == "labelfusion"
    frame = ds[0]
    assert np.isnan(frame.depth[:4]).all()
    np.testing.assert_allclose(frame.depth[4:], scene.depth[0][4:], atol=2e-4)
    assert frame.semantic.dtype == np.int32 and (frame.semantic == 48).all()
    # Forcing the other encoding reads the same files as millimetres.
    assert open_dataset(tmp_path / "shelf", depth_encoding="mm").format == "7scenes"


def test_labelfusion_encoding_detected_past_a_first_frame_without_depth(tmp_path: Path) -> None:
    """The first frame has no valid depth (a stream still starting): it cannot tell the encoding,
    the next one does; judged by the first, every frame was read as millimetres (80x too far)."""
    scene = make_scene(plane_z=0.6)
    path = write_tsdf(tmp_path / "shelf", scene, labelfusion=True)
    write_png(path / "frame-000000.depth.png", np.zeros((48, 64), np.uint16))
    ds = open_dataset(path)
    assert ds.format == "labelfusion"
    np.testing.assert_allclose(ds[1].depth, scene.depth[1], atol=2e-4)
    assert not np.isfinite(ds[0].depth).any()


def test_synthetic_layout_has_labels(tmp_path: Path) -> None:
    scene = make_scene()
    path = write_tsdf(tmp_path / "syn", scene)
    (path / "scene.json").write_text('{"generator": "test", "classes": {"1": "chair"}}')
    for k in range(len(scene.rgb)):
        write_png(path / f"frame-{k:06d}.segm.png", np.full((48, 64), 1, np.uint16))
        write_png(path / f"frame-{k:06d}.instance.png", np.full((48, 64), 7, np.uint16))
    ds = open_dataset(path)
    assert ds.format == "synthetic"
    assert (ds[2].semantic == 1).all() and (ds[2].instance == 7).all()


def test_invalid_depth_codes(tmp_path: Path) -> None:
    scene = make_scene()
    path = write_tsdf(tmp_path / "seq", scene)
    raw = np.full((48, 64), 1500, np.uint16)
    raw[0, :3] = [0, 65535, 1]
    write_png(path / "frame-000000.depth.png", raw)
    depth = open_dataset(path)[0].depth
    assert np.isnan(depth[0, :2]).all() and depth[0, 2] == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("breakage", "error", "message"),
    [
        (lambda p: (p / "frame-000002.depth.png").unlink(), DataFileError, r"frame-000002\.depth\.png: file not found"),
        (lambda p: (p / "frame-000002.color.png").unlink(), DataFileError, r"frame-000002\.color\.png: file not found"),
        (lambda p: (p / "camera-intrinsics.txt").unlink(), FormatError, "no intrinsics file"),
        (lambda p: (p / "frame-000003.pose.txt").write_text("1 2 3\n"), FormatError, r"frame-000003\.pose\.txt: expected 4x4"),
        (lambda p: write_matrix(p / "frame-000003.pose.txt", np.full((4, 4), np.nan)), FrameError,
         r"frame-000003\.pose\.txt: pose has NaN"),
        (lambda p: write_matrix(p / "frame-000003.pose.txt", np.diag([2.0, 1, 1, 1])), FrameError,
         r"frame-000003\.pose\.txt: pose is not rigid"),
        # non-finite intrinsics passed the open and failed each frame, naming the frame, not the file
        (lambda p: (p / "camera-intrinsics.txt").write_text("nan 0 32\n0 nan 24\n0 0 1\n"), FormatError,
         r"camera-intrinsics\.txt: not a pinhole intrinsics matrix"),
        # saved as UTF-16 (PowerShell's >, Notepad's 'Unicode'): a UnicodeDecodeError traceback naming no file
        (lambda p: (p / "camera-intrinsics.txt").write_text("60 0 32\n0 62 24\n0 0 1\n", encoding="utf-16"),
         FormatError, r"camera-intrinsics\.txt: not a text file \('utf-8' codec can't decode"),
        # an 8-bit depth image (a normalised preview) read as millimetres: every depth under 0.26 m
        (lambda p: write_png(p / "frame-000000.depth.png", np.full((48, 64), 200, np.uint8)), DataFileError,
         r"frame-000000\.depth\.png: depth must be a 16-bit image, got uint8"),
    ],
)
def test_bad_input_fails_at_open(tmp_path: Path, breakage, error, message) -> None:
    scene = make_scene()
    path = write_tsdf(tmp_path / "seq", scene)
    breakage(path)
    with pytest.raises(error, match=message):
        open_dataset(path)


@pytest.mark.parametrize(
    ("breakage", "error", "message"),
    [
        (lambda p: (p / "frame-000001.color.png").write_bytes(b"not a png"), DataFileError,
         r"frame-000001\.color\.png: cannot read image"),
        (lambda p: write_png(p / "frame-000001.depth.png", np.ones((24, 64), np.uint16)), FrameError,
         "frame-000001: depth is 64x24 but rgb is 64x48"),
        (lambda p: write_png(p / "frame-000001.depth.png", np.full((48, 64), 200, np.uint8)), DataFileError,
         r"frame-000001\.depth\.png: depth must be a 16-bit image, got uint8"),
        # colour and depth of another size (a second recording in the folder) went with the first's K
        (lambda p: (write_png(p / "frame-000001.color.png", np.zeros((96, 128, 3), np.uint8)),
                    write_png(p / "frame-000001.depth.png", np.full((96, 128), 1500, np.uint16))), FrameError,
         r"seq/frame-000001: 128x96, but the data set's images are 64x48, the size its intrinsics are for"),
    ],
)
def test_bad_frame_fails_when_read(tmp_path: Path, breakage, error, message) -> None:
    scene = make_scene()
    path = write_tsdf(tmp_path / "seq", scene)
    breakage(path)
    ds = open_dataset(path)
    ds[0]
    with pytest.raises(error, match=message):
        ds[1]


def test_unknown_format_and_options(tmp_path: Path) -> None:
    scene = make_scene()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(FormatError, match=r"junk: unknown data format \(contents: notes.txt\)"):
        open_dataset(tmp_path / "junk")
    with pytest.raises(DataFileError, match="no such file or folder"):
        open_dataset(tmp_path / "missing")
    path = write_tsdf(tmp_path / "seq", scene)
    with pytest.raises(FormatError, match="unknown option.*colour"):
        open_dataset(path, colour=True)
    with pytest.raises(FormatError, match="format 'kitti': unknown"):
        open_dataset(path, format="kitti")
    with pytest.raises(DataError, match="intrinsics 'abc'"):
        open_dataset(path, intrinsics="abc")
    with pytest.raises(FormatError, match=r"intrinsics '0,0,32,24': not a pinhole intrinsics matrix"):
        open_dataset(path, intrinsics="0,0,32,24")
    assert open_dataset(path, intrinsics="100,100,32,24").intrinsics(0)[0, 0] == 100


def test_a_frame_without_any_valid_depth_is_read_with_its_depth_missing(tmp_path: Path) -> None:
    """A covered camera or a depth stream still starting: the frame is kept (the node localizes it
    from RGB alone); a data set, a map build or a training run is not refused for it."""
    scene = make_scene()
    path = write_tsdf(tmp_path / "seq", scene)
    write_png(path / "frame-000001.depth.png", np.zeros((48, 64), np.uint16))
    frame = open_dataset(path)[1]
    assert frame.depth is not None and not np.isfinite(frame.depth).any()


def _seven_scenes(folder: Path, K_file: np.ndarray | None = None) -> Path:
    """Two 640x480 frames of the plane z = 3 m as 7-Scenes stores them: the depth camera's
    intrinsics, depth and poses (its depth not registered to colour)."""
    from locus_core.data.formats.tsdf import SEVEN_SCENES_DEPTH_K

    K = SEVEN_SCENES_DEPTH_K if K_file is None else K_file
    write_matrix(folder / "camera-intrinsics.txt", K)
    v, u = np.mgrid[0:480, 0:640].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    for k, x in enumerate((0.0, 0.3)):
        T = np.eye(4)
        T[0, 3] = x
        write_png(folder / f"frame-{k:06d}.color.png", np.full((480, 640, 3), 90 + k, np.uint8))
        write_png(folder / f"frame-{k:06d}.depth.png", np.round(3000.0 / rays[..., 2]).astype(np.uint16))
        write_matrix(folder / f"frame-{k:06d}.pose.txt", T)
    return folder


def test_seven_scenes_is_read_as_its_colour_camera_sees_it(tmp_path: Path) -> None:
    from locus_core.data.formats.tsdf import SEVEN_SCENES_COLOR_FROM_DEPTH, SEVEN_SCENES_COLOR_K

    path = _seven_scenes(tmp_path / "kitchen")
    ds = open_dataset(path)
    assert ds.format == "7scenes"
    np.testing.assert_allclose(ds.intrinsics(0), SEVEN_SCENES_COLOR_K)
    T_depth = np.eye(4)
    T_depth[0, 3] = 0.3
    np.testing.assert_allclose(ds.poses()[1] @ SEVEN_SCENES_COLOR_FROM_DEPTH, T_depth, atol=1e-9)
    frame = ds[1]
    # every colour pixel with depth, lifted with the colour intrinsics and pose, lies on the plane
    v, u = np.nonzero(np.isfinite(frame.depth))
    z = frame.depth[v, u].astype(np.float64)
    cam = np.stack([(u - 320) / 525 * z, (v - 240) / 525 * z, z, np.ones_like(z)])
    world = frame.T_world_cam @ cam
    assert np.abs(world[2] - 3.0).max() < 0.01
    # the colour camera is wider: its border has no depth, its centre has
    assert 0.6 < np.isfinite(frame.depth).mean() < 0.9 and np.isfinite(frame.depth[200:280, 280:360]).all()


def test_seven_scenes_registration_can_be_turned_off_or_forced(tmp_path: Path) -> None:
    from locus_core.data.formats.tsdf import SEVEN_SCENES_COLOR_K, SEVEN_SCENES_DEPTH_K

    path = _seven_scenes(tmp_path / "kitchen")
    raw = open_dataset(path, registration="none")
    np.testing.assert_allclose(raw.intrinsics(0), SEVEN_SCENES_DEPTH_K)
    np.testing.assert_allclose(raw.poses()[0], np.eye(4))
    assert np.isfinite(raw[0].depth).all()
    # other intrinsics (another sensor in the same layout) are read as they are, unless forced
    other = _seven_scenes(tmp_path / "other", np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]))
    assert open_dataset(other).intrinsics(0)[0, 0] == 500
    np.testing.assert_allclose(open_dataset(other, registration="7scenes").intrinsics(0), SEVEN_SCENES_COLOR_K)
    assert open_dataset(path, intrinsics="585,585,320,240").intrinsics(0)[0, 0] == 585  # given K: as given


def test_bad_registration_options_are_named(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"kitchen: registration 'kinect' is not one of auto, 7scenes, none"):
        open_dataset(_seven_scenes(tmp_path / "kitchen"), registration="kinect")
    with pytest.raises(FormatError, match=r"seq: registration '7scenes' is for 7-Scenes' 640x480 .* these are 64x48"):
        open_dataset(write_tsdf(tmp_path / "seq", make_scene()), registration="7scenes")
