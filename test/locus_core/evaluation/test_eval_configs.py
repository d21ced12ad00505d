"""The benchmark protocol configs in config/eval_*.yaml load as EvalConfig (the README's commands use them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from locus_core.config import load_config
from locus_core.evaluation.config import EvalConfig
from locus_core.evaluation.errors import EvaluationError

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "config").glob("eval_*.yaml"))


def test_protocol_configs_exist() -> None:
    assert {p.stem for p in CONFIGS} >= {"eval_redkitchen", "eval_realsense_desk", "eval_labelfusion_shelf"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_protocol_config_loads(path: Path) -> None:
    config = load_config(EvalConfig, path)
    assert config.frames and config.train_frames
    assert (config.rho, config.kappa, config.place_min_covisibility) == (0.2, 10.0, 0.3)


def test_a_refused_value_names_its_file(tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    path.write_text("frames: 8:15\nrho: 20\n")
    with pytest.raises(EvaluationError, match=r"my.yaml: rho \(20.0\) must be positive and below kappa"):
        load_config(EvalConfig, path)
    path.write_text("frames: 8:15\n")
    config = load_config(EvalConfig, path, ["train_frames=0:8"])  # unquoted ranges, in the file and in --set
    assert (config.frames, config.train_frames) == ("8:15", "0:8")
