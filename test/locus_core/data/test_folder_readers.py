"""slambook, TUM RGB-D, ScanNet export and Matterport3D trees written in tmp_path."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from rgbd_scene import make_scene, mm, write_matterport, write_png, write_scannet, write_slambook, write_tum

from locus_core.data import DataFileError, FormatError, FrameError, open_dataset
from locus_core.data.consistency import reprojection_median


def check(ds, scene, *, depth_atol: float, rgb_exact: bool = True) -> None:
    np.testing.assert_allclose(ds.poses(), np.stack(scene.poses)[: len(ds)], atol=1e-6)
    frame = ds[1]
    np.testing.assert_allclose(frame.depth, scene.depth[1], atol=depth_atol)
    if rgb_exact:
        assert np.array_equal(frame.rgb, scene.rgb[1])
    assert reprojection_median(list(ds)) < 3e-3


def test_slambook(tmp_path: Path) -> None:
    scene = make_scene(n=5)
    path = write_slambook(tmp_path / "room", scene)
    ds = open_dataset(path, intrinsics="60,62,31.5,23.5")
    assert ds.format == "slambook" and ds.indices == [1, 2, 3, 4, 5]
    check(ds, scene, depth_atol=5e-4)
    np.testing.assert_allclose(open_dataset(path).intrinsics(0), [[518, 0, 325.5], [0, 519, 253.5], [0, 0, 1]])
    (path / "depth" / "3.pgm").unlink()
    with pytest.raises(DataFileError, match=r"depth/3\.pgm: file not found"):
        open_dataset(path)
    write_slambook(path, scene)
    rows = (path / "pose.txt").read_text().splitlines()
    (path / "pose.txt").write_text("\n".join(rows[:1] + ["0 0 0 0 0 0 0"] + rows[2:]) + "\n")
    with pytest.raises(FrameError, match=r"pose\.txt row 2: quaternion \(0, 0, 0, 0\)"):  # named no file
        open_dataset(path)


def test_tum(tmp_path: Path) -> None:
    scene = make_scene()
    path = write_tum(tmp_path / "rgbd_dataset_freiburg1_desk", scene)
    ds = open_dataset(path, intrinsics="60,62,31.5,23.5")
    assert ds.format == "tum" and ds.indices == list(range(6))
    assert ds[2].stamp == pytest.approx(100 + 2 / 30)
    check(ds, scene, depth_atol=2e-4)
    # Named after a Freiburg sensor: its published calibration is the default.
    assert open_dataset(path).intrinsics(0)[0, 0] == pytest.approx(517.3)
    for bad in ("abc", "-1", "nan"):  # from --option max_dt=...: a ValueError traceback, or no frames or no limit
        with pytest.raises(FormatError, match=f"max_dt '{bad}': expected seconds >= 0"):
            open_dataset(path, max_dt=bad)
    # A frame between ground-truth samples more than max_dt apart is skipped, not guessed.
    assert open_dataset(path, max_dt=0.01).indices == list(range(6))
    lines = (path / "groundtruth.txt").read_text().splitlines()
    (path / "groundtruth.txt").write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    assert 2 not in open_dataset(path).indices
    (path / "groundtruth.txt").write_text("\n".join(lines[:2] + [lines[2].replace(" ", " x", 1)]) + "\n")
    with pytest.raises(FormatError, match=r"groundtruth\.txt:3: 'x[-0-9.e]+' is not a number"):
        open_dataset(path)
    (path / "groundtruth.txt").write_text("\n".join(lines) + "\n", encoding="utf-16")
    with pytest.raises(FormatError, match=r"groundtruth\.txt: not a text file"):  # a UnicodeDecodeError traceback
        open_dataset(path)
    (path / "groundtruth.txt").write_text("\n".join(lines[:2] + [lines[2].split()[0] + " 0 0 0 0 0 0 0"]) + "\n")
    with pytest.raises(FrameError, match=r"groundtruth\.txt at 100\.033333\.png: quaternion \(0, 0, 0, 0\)"):
        open_dataset(path)  # named no file


def test_tum_ground_truth_in_another_clock(tmp_path: Path) -> None:
    """Ground truth stamped in another time base than the images: every frame is skipped, and the
    error said only 'no frames found'."""
    path = write_tum(tmp_path / "desk", make_scene(n=3))
    gt = path / "groundtruth.txt"
    gt.write_text(gt.read_text().replace("\n100.", "\n0."))
    with pytest.raises(FormatError, match=r"desk: none of the 3 rgb frames has depth and ground truth within "
                                          r"0\.02 s \(rgb 100\.000\.\.100\.067 s, depth 100\.005\.\.100\.072 s, "
                                          r"groundtruth\.txt 0\.000\.\.0\.067 s\)"):
        open_dataset(path)


def test_tum_sensor_calibration_through_a_link_or_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Freiburg sensor is named by the folder behind a symlink, or by the current folder for
    "."; the ROS default K (525) was used for both, silently."""
    path = write_tum(tmp_path / "rgbd_dataset_freiburg3_long_office", make_scene())
    (tmp_path / "office").symlink_to(path)
    assert open_dataset(tmp_path / "office").intrinsics(0)[0, 0] == pytest.approx(535.4)
    monkeypatch.chdir(path)
    assert open_dataset(".").intrinsics(0)[0, 0] == pytest.approx(535.4)


def test_scannet_resizes_colour_to_depth(tmp_path: Path) -> None:
    scene = make_scene()
    path = write_scannet(tmp_path / "scene0000_00", scene)
    (path / "pose" / "5.txt").write_text("-inf " * 16)
    ds = open_dataset(path)
    assert ds.format == "scannet" and ds.indices == [0, 1, 2, 3, 4]  # lost tracking: skipped
    assert ds[0].rgb.shape == (48, 64, 3)
    np.testing.assert_allclose(ds.intrinsics(0), scene.K)
    check(ds, scene, depth_atol=5e-4, rgb_exact=False)


def test_content_digest_sees_files_under_symlinked_folders(tmp_path: Path) -> None:
    """A scene whose folders link elsewhere: re-exported depth there changes the digest that caches
    are keyed by (it was walked without following links, so stale caches were served); a link to
    an ancestor does not loop."""
    scene = make_scene()
    real = write_scannet(tmp_path / "export", scene)
    path = tmp_path / "scene0000_00"
    path.mkdir()
    for folder in ("color", "depth", "pose", "intrinsic"):
        (path / folder).symlink_to(real / folder)
    (path / "depth" / "loop").symlink_to(path)
    before = open_dataset(path).content_digest()
    write_png(real / "depth" / "2.png", mm(scene.depth[2] * 1.1))
    assert open_dataset(path).content_digest() != before



def test_content_digest_sees_a_file_replaced_with_its_size_and_mtime(tmp_path: Path) -> None:
    """A depth image replaced by one of the same size with the old mtime kept (`cp -p`, `rsync -t`)
    changes the digest: ctime counts, which no copy can set."""
    scene = make_scene()
    path = write_scannet(tmp_path / "scene0000_00", scene)
    depth = path / "depth" / "2.png"
    old = depth.stat()
    before = open_dataset(path).content_digest()
    time.sleep(0.01)  # a coarse-clock file system would give the rewrite the same ctime
    depth.write_bytes(bytes(b ^ 0xFF for b in depth.read_bytes()))
    os.utime(depth, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert depth.stat().st_size == old.st_size and depth.stat().st_mtime_ns == old.st_mtime_ns
    assert open_dataset(path).content_digest() != before


def test_matterport(tmp_path: Path) -> None:
    scene = make_scene()
    path = write_matterport(tmp_path / "17DRP5sb8fy", scene)
    ds = open_dataset(path)
    assert ds.format == "matterport" and len(ds) == 6
    assert ds[4].frame_id.endswith("_i1_0")
    check(ds, scene, depth_atol=2e-4, rgb_exact=False)  # JPEG colour
    conf = next(path.rglob("*.conf"))
    conf.write_text(conf.read_text().replace("intrinsics_matrix", "intrinsics_matrix x", 1))
    with pytest.raises(FormatError, match=r"17DRP5sb8fy\.conf:5: malformed line"):
        open_dataset(path)
    conf.write_text(conf.read_text().replace("intrinsics_matrix x 60", "intrinsics_matrix 0", 1))
    with pytest.raises(FormatError, match=r"17DRP5sb8fy\.conf:5: not a pinhole intrinsics matrix"):
        open_dataset(path)
    conf.write_text(conf.read_text(), encoding="utf-16")
    with pytest.raises(FormatError, match=r"17DRP5sb8fy\.conf: not a text file"):
        open_dataset(path)


def test_matterport_with_several_scans_in_one_folder(tmp_path: Path) -> None:
    """Two scans' zips unpacked into one folder: the first .conf was read alone, silently, with the
    images of both scans pooled by name."""
    path = write_matterport(tmp_path / "scans", make_scene(n=3), scan="17DRP5sb8fy")
    write_matterport(path, make_scene(n=3, seed=1), scan="1LXtFkjw3qL")
    with pytest.raises(FormatError, match=r"scans/undistorted_camera_parameters: 2 \.conf files "
                                          r"\(17DRP5sb8fy\.conf, 1LXtFkjw3qL\.conf\): open one scan's folder"):
        open_dataset(path)


def test_matterport_with_its_inner_folders_linked(tmp_path: Path) -> None:
    """Each zip unpacked elsewhere and its inner <scan> folder linked into the scan: the .conf and
    the images are found through the links (rglob does not follow them: 'no .conf file')."""
    real = write_matterport(tmp_path / "unpacked" / "17DRP5sb8fy", make_scene())
    path = tmp_path / "17DRP5sb8fy"
    for folder in ("undistorted_camera_parameters", "undistorted_color_images", "undistorted_depth_images"):
        (path / folder).mkdir(parents=True)
        (path / folder / "17DRP5sb8fy").symlink_to(real / folder / "17DRP5sb8fy")
    (path / "undistorted_color_images" / "loop").symlink_to(path)
    ds = open_dataset(path)
    assert len(ds) == 6 and ds[4].frame_id.endswith("_i1_0")
