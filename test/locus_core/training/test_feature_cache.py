from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from locus_core.data import resize_frame
from locus_core.data.dataset import PosedDataset
from locus_core.models.model import LocusModel
from locus_core.training.config import SourceConfig, TrainConfig
from locus_core.training.errors import TrainingError
from locus_core.training.feature_cache import load_scene
from locus_core.training.scenes import load_source


def test_a_changed_source_is_not_served_from_the_cache(
    synthetic_scene: Path, tiny_config: TrainConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scene = shutil.copytree(synthetic_scene, tmp_path / "scene")
    source = SourceConfig(path=str(scene), frames="0:4")
    model = LocusModel(tiny_config.model)
    first = load_source(source, model, tiny_config)
    # re-run SLAM (a corrected pose) and a re-recorded depth image, written to the same path
    pose_file = scene / "frame-000001.pose.txt"
    pose = np.loadtxt(pose_file)
    pose[0, 3] += 0.5
    np.savetxt(pose_file, pose)
    (scene / "frame-000002.depth.png").write_bytes((scene / "frame-000003.depth.png").read_bytes())
    with caplog.at_level(logging.INFO, logger="locus_core.training.feature_cache"):
        second = load_source(source, model, tiny_config)
        assert "computing test features of 4 frames" in caplog.text
        caplog.clear()
        load_source(source, model, tiny_config)
        assert "computing" not in caplog.text  # an unchanged source is read from the cache
    assert second.T_world_cam[1, 0, 3] == pytest.approx(float(first.T_world_cam[1, 0, 3]) + 0.5)
    torch.testing.assert_close(second.depth[2], first.depth[3], equal_nan=True)


def test_a_source_without_poses_is_rejected(tiny_config: TrainConfig, tmp_path: Path) -> None:
    model = LocusModel(tiny_config.model)
    dataset = PosedDataset(path=tmp_path, name="unposed", format="tum", indices=[0, 1], poses=None,
                           intrinsics=np.eye(3), image_size=(48, 64), loader=lambda k: None)
    with pytest.raises(TrainingError, match=r"^unposed\[:\]: the data set has no camera poses"):
        load_scene(dataset, name="unposed[:]", dataset_key=str(tmp_path), backbone=model.backbone,
                   backbone_name="test", stride=model.stride, input_size=(48, 64), cache_dir=tmp_path,
                   resize=resize_frame)


def test_a_feature_file_that_cannot_be_written_leaves_no_temporary(
    synthetic_scene: Path, tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk mid-cache: the cut-short temporary was left in the cache folder
    cache = tmp_path / "cache"
    monkeypatch.setenv("LOCUS_CACHE", str(cache))

    def full(obj: object, f: Path) -> None:
        Path(f).write_bytes(b"half a record")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="No space left"):
        load_source(SourceConfig(path=str(synthetic_scene), frames="0:4"), LocusModel(tiny_config.model), tiny_config)
    written = [p for p in cache.rglob("*") if p.is_file()]
    assert not [p for p in written if p.name.startswith(".") or p.suffix == ".pt"], written
