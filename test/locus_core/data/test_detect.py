"""open_dataset's format detection: forced format names and what an unrecognised path lacks."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from rgbd_scene import make_scene, mm, write_png, write_tsdf

from locus_core.data import DataFileError, FormatError, open_dataset
from locus_core.data.detect import FORMATS, REQUIREMENTS


def _blank_first_depth(path: Path) -> None:
    """A near-blank first depth image: too few valid pixels to recognise the encoding from."""
    raw = np.zeros((48, 64), np.uint16)
    raw[0, :10] = 8000
    write_png(path / "frame-000000.depth.png", raw)


def test_a_forced_alias_implies_its_depth_encoding_and_is_reported(tmp_path: Path) -> None:
    scene = make_scene(n=3, plane_z=0.6)
    path = write_tsdf(tmp_path / "shelf", scene, labelfusion=True)
    _blank_first_depth(path)
    assert open_dataset(path, "0:1").format == "7scenes"  # guessed from the blank frame alone: millimetres
    ds = open_dataset(path, format="labelfusion")
    assert ds.format == "labelfusion" and ds[1:].format == "labelfusion"
    np.testing.assert_allclose(ds[1].depth, scene.depth[1], atol=2e-4)
    # the user's own encoding wins over the one the name implies
    assert np.nanmedian(open_dataset(path, format="labelfusion", depth_encoding="mm")[1].depth) > 40


@pytest.mark.parametrize("name", ["7scenes", "synthetic"])
def test_forced_millimetre_aliases(tmp_path: Path, name: str) -> None:
    scene = make_scene(n=2, plane_z=30.0)  # 30 m in mm, multiples of 8: label-fusion to the guess
    path = tmp_path / "seq"
    write_tsdf(path, scene)
    for k, depth in enumerate(scene.depth):
        write_png(path / f"frame-{k:06d}.depth.png", mm(depth) // 8 * 8)
    assert open_dataset(path).format == "labelfusion"
    ds = open_dataset(path, format=name)
    assert ds.format == name
    assert 29 < np.nanmedian(ds[0].depth) < 32


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_requirements_are_what_the_detectors_look_for(tmp_path: Path, fmt: str) -> None:
    detect = importlib.import_module(f"locus_core.data.formats.{FORMATS[fmt]}").detect
    entries = REQUIREMENTS[fmt][1]

    def folder(without: str | None) -> Path:
        path = tmp_path / f"{fmt}-without-{without}"
        path.mkdir()
        for entry in entries:
            if entry == without:
                continue
            if entry.endswith("/"):
                (path / entry).mkdir()
            else:
                (path / entry.replace("*", "000000")).write_text("")
        return path

    assert detect(folder(None))
    for entry in entries:
        assert not detect(folder(entry)), entry


@pytest.mark.parametrize(("entries", "message"), [
    (["rgb.txt", "rgb/"], r"TUM RGB-D \(rgb.txt \+ depth.txt: missing depth.txt\)"),
    (["pose.txt", "color/"], r"slambook \(pose.txt \+ color/ \+ depth/: missing depth/\)"),
    (["color/", "depth/", "pose/"], r"ScanNet export \(color/ \+ depth/ \+ pose/ \+ intrinsic/: missing intrinsic/\)"),
    ([], r"\(contents: empty\).*7-Scenes/tsdf-fusion \(frame-\*.pose.txt\); TUM RGB-D \(rgb.txt \+ depth.txt\)"),
])
def test_an_unknown_folder_names_what_each_format_lacks(tmp_path: Path, entries: list[str], message: str) -> None:
    path = tmp_path / "near-miss"
    path.mkdir()
    for entry in entries:
        (path / entry).mkdir() if entry.endswith("/") else (path / entry).write_text("")
    with pytest.raises(FormatError, match=f"near-miss: unknown data format .*{message}"):
        open_dataset(path)


def test_an_unknown_file_is_not_called_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FormatError, match=r"notes.txt: unknown data format: a file, but not a ROS bag file "
                                          r"\(.bag, .mcap, .db3\)$"):
        open_dataset(tmp_path / "notes.txt")


@pytest.mark.parametrize(("fmt", "entries", "message"), [
    ("scannet", [], r"seq/pose: folder not found"),
    ("slambook", ["depth/", "pose.txt"], r"seq/color: folder not found"),
    ("slambook", ["color/", "depth/"], r"seq/pose\.txt: file not found"),
    ("tsdf", ["camera-intrinsics.txt"], r"seq/camera-intrinsics\.txt: folder not found"),
])
def test_a_forced_format_names_what_the_folder_lacks(tmp_path: Path, fmt: str, entries: list[str],
                                                     message: str) -> None:
    """A format forced on a folder its detector would refuse (a 7-Scenes folder here): its reader
    listed folders unchecked, a FileNotFoundError or NotADirectoryError traceback."""
    path = write_tsdf(tmp_path / "seq", make_scene(n=2))
    for entry in entries:
        (path / entry).mkdir() if entry.endswith("/") else (path / entry).write_text("0 0 0 0 0 0 1\n")
    if fmt == "tsdf":
        path = path / entries[0]  # a file
    with pytest.raises(DataFileError, match=message):
        open_dataset(path, format=fmt)


def test_a_folder_that_looks_like_two_formats_is_ambiguous(tmp_path: Path) -> None:
    """A capture's own metadata.yaml beside 7-Scenes frames: the folder was opened as a rosbag2 bag
    ('cannot open bag', a missing key), the frames never looked at."""
    path = write_tsdf(tmp_path / "seq", make_scene(n=2))
    (path / "metadata.yaml").write_text("sensor: D435\n")
    with pytest.raises(FormatError, match=r"seq: ambiguous data format: it looks like rosbag2 \(metadata.yaml\) and "
                                          r"7-Scenes/tsdf-fusion \(frame-\*.pose.txt\); say which with format=rosbag "
                                          r"or format=tsdf"):
        open_dataset(path)
    assert open_dataset(path, format="tsdf").format == "7scenes"
