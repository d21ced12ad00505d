from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from locus_core.cli.main import main
from locus_core.config import load_config
from locus_core.errors import LocusError
from locus_core.training.config import (
    OptimConfig, TrainConfig, learning_rate, validate_config, validation_scale,
)
from locus_core.training.errors import TrainingError
from locus_core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[3]


def test_shipped_config_loads_and_validates() -> None:
    config = load_config(TrainConfig, ROOT / "config" / "train_xfeat.yaml")
    validate_config(config)
    assert config.model.backbone == "xfeat" and config.data.train[0].frames == "0:600"
    assert config.data.val is not None and config.data.val.frames == "600:1000:10"


def test_paper_config_loads_and_validates() -> None:
    config = load_config(TrainConfig, ROOT / "config" / "train_dino_vitb8.yaml")
    validate_config(config)
    assert config.model.backbone == "dino_vitb8" and config.model.radii == (0.2, 0.6)
    assert config.landmarks.landmarks == 64


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["data.batch_frames=1"], r"data.batch_frames=1: need >= 2"),
        (["data.min_overlap=0.9", "data.max_overlap=0.5"], r"min_overlap < max_overlap"),
        (["landmarks.kappa=0.1"], r"landmarks.kappa=0.1: must exceed the largest radius 0.2"),
        (["landmarks.patch_keep=0"], r"landmarks.patch_keep=0.0: must be in \(0, 1\]"),
        (["landmarks.landmarks=0"], r"landmarks.landmarks=0: must be >= 1"),
        (["optim.lr=-1"], r"optim.lr=-1.0: must be in \(0, 1\)"),
        (["optim.temperature=0"], r"optim.temperature=0.0: must be > 0"),
        (["steps=0"], r"steps=0: must be >= 1"),
        (["seed=-1"], r"seed=-1: must be >= 0"),
        (["data.synthetic.seed=-2"], r"data.synthetic.seed=-2: must be >= 0"),
        (["data.train=[]", "data.synthetic.scenes=0"], r"no training data"),
        (["data.train=[{path: x, weight: 0}]"], r"data.train\[0\].weight=0.0: must be > 0"),
        (["data.val.path="], r"data.val.path='': empty path"),
        (["data.synthetic.frames=4"], r"data.synthetic.frames=4: fewer than data.batch_frames \(6\)"),
        (["validation.radius=0.1"], r"validation.radius=0.1: must be one of model.radii \[0.2, 0.05\]"),
        (["data.val.frames=500:1000:10"],
         r"data.val=\('\.\./shared/data/7scenes-redkitchen', '500:1000:10'\): validation frames must not be "
         r"training frames: data.train\[0\] \('\.\./shared/data/7scenes-redkitchen', '0:600'\) selects frame 500"),
        (["data.val.frames=null"], r"data.train\[0\] .*'0:600'\) selects frame 0 "),
        (["data.train=[{path: ../shared/data/7scenes-redkitchen, frames: '2:900:4'}]"],
         r"data.train\[0\] .*'2:900:4'\) selects frame 610 "),
    ],
)
def test_bad_values_are_named(overrides: list[str], match: str) -> None:
    config = load_config(TrainConfig, ROOT / "config" / "train_xfeat.yaml", overrides)
    with pytest.raises(TrainingError, match=match):
        validate_config(config)


@pytest.mark.parametrize(
    "overrides",
    [
        ["data.train=[{path: ../shared/data/7scenes-redkitchen, frames: '1:900:2'}]"],  # odd vs even
        ["data.train=[{path: ../shared/data/7scenes-redkitchen, frames: '605:1000:10'}]"],  # interleaved
        ["data.train=[{path: ../shared/data/7scenes-redkitchen}]", "data.val.path=../shared/data/other"],
    ],
)
def test_disjoint_validation_frames_are_accepted(overrides: list[str]) -> None:
    validate_config(load_config(TrainConfig, ROOT / "config" / "train_xfeat.yaml", overrides))


def test_validation_radius_picks_its_scale() -> None:
    config = load_config(TrainConfig, ROOT / "config" / "train_xfeat.yaml")
    assert validation_scale(config) == 0
    assert validation_scale(dataclasses.replace(
        config, validation=dataclasses.replace(config.validation, radius=0.05))) == 1


def test_unknown_backbone_and_keys_fail_at_load() -> None:
    with pytest.raises(LocusError, match="unknown 'nope'; valid: .*xfeat"):
        load_config(TrainConfig, None, ["model.backbone=nope"])
    with pytest.raises(LocusError, match="unknown key.*optim.lrr"):
        load_config(TrainConfig, None, ["optim.lrr=0.1"])
    with pytest.raises(LocusError, match="optim.schedule: 'step' is not one of"):
        load_config(TrainConfig, None, ["optim.schedule=step"])


def test_missing_data_fails_before_training(tiny_config: TrainConfig, tmp_path: Path) -> None:
    data = dataclasses.replace(tiny_config.data, train=(dataclasses.replace(tiny_config.data.train[0],
                                                                            path=str(tmp_path / "absent")),))
    with pytest.raises(TrainingError, match="absent' not found"):
        Trainer(dataclasses.replace(tiny_config, data=data))
    assert not (Path(tiny_config.run_dir) / "train_log.csv").exists()


def test_cli_reports_config_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 0\n")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("locus train: error:") and "no training data" in err and "\n" not in err
    assert main(["train", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_learning_rate_schedule() -> None:
    cosine = OptimConfig(lr=1e-3, schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    lrs = [learning_rate(cosine, s, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05)
    assert learning_rate(dataclasses.replace(cosine, schedule="constant"), 50, 100) == 1e-3


def test_ship_to_a_folder_fails_before_training(tmp_path: Path) -> None:
    config = load_config(TrainConfig, ROOT / "config" / "train_xfeat.yaml", [f"ship_to={tmp_path}"])
    with pytest.raises(TrainingError, match=r"ship_to='.*': is a folder"):  # not an OSError after the run
        validate_config(config)
