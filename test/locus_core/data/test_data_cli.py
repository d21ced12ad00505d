from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from rgbd_scene import make_scene, write_tsdf

from locus_core.cli import data as data_cli
from locus_core.data import DataError, SelectionError, open_dataset
from locus_core.data.summary import summarize


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    data_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_info_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_tsdf(tmp_path / "seq", make_scene(n=6))
    assert run(["data", "info", str(path), "--frames", "1:5", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "7scenes" and info["frames"] == 4 and info["image_size"] == [48, 64]
    assert info["reprojection_median_m"] < 0.002 and info["reprojection_pairs"] == 3
    assert 1.9 < info["depth_median_m"] < 2.2 and info["depth_valid_fraction"] == 1.0
    assert info["trajectory_length_m"] > 0.15


def test_info_text_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_tsdf(tmp_path / "seq", make_scene(n=3))
    assert run(["data", "info", str(path), "--option", "intrinsics=60,62,31.5,23.5"]) == 0
    out = capsys.readouterr().out
    assert "7scenes, 3 frames (index 0..2), 64x48" in out and "reprojection" in out
    assert run(["data", "info", str(path), "--option", "intrinsics = 60,62,31.5,23.5"]) == 0  # spaced as in prose
    capsys.readouterr()
    with pytest.raises(SelectionError, match="select nothing"):
        run(["data", "info", str(path), "--frames", "50:60"])
    with pytest.raises(SystemExit):
        run(["data", "info", str(path), "--sample", "-1"])
    assert "--sample: expected an integer >= 0, got -1" in capsys.readouterr().err


def test_summary_of_no_frames(tmp_path: Path) -> None:
    dataset = open_dataset(write_tsdf(tmp_path / "seq", make_scene(n=2)))
    with pytest.raises(DataError, match="seq: no frames to summarise"):
        summarize(dataset[:0])
    with pytest.raises(ValueError, match="sample must be >= 0, got -1"):
        summarize(dataset, sample=-1)
    assert summarize(dataset, sample=0)["depth_median_m"] is None


def test_synth_writes_a_loadable_scene(tmp_path: Path) -> None:
    pytest.importorskip("locus_core.data.synthetic")
    assert run(["data", "synth", "--out", str(tmp_path / "syn"), "--frames", "3", "--rooms", "2",
                "--size", "60", "80"]) == 0
    ds = open_dataset(tmp_path / "syn")
    assert ds.format == "synthetic" and len(ds) == 3 and ds[0].instance is not None
