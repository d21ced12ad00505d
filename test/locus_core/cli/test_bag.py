from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import locus_core.bags.evaluate
from locus_core.cli.main import main


class Ran(Exception):
    pass


def replay_config(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> Any:
    """The ReplayConfig `locus bag eval ARGV` would replay with."""
    seen = {}

    def evaluate_bag(*args: object, config: Any, **kwargs: object) -> None:
        seen["config"] = config
        raise Ran

    monkeypatch.setattr(locus_core.bags.evaluate, "evaluate_bag", evaluate_bag)
    with pytest.raises(Ran):
        main(["bag", "eval", "bag", "--map", "map", "--out", "out", *argv])
    return seen["config"]


def test_flags_override_the_config_file_even_when_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "replay.yaml"
    path.write_text("max_rate_hz: 5.0\ngt_frame: world\n")
    assert replay_config(monkeypatch, ["--config", str(path)]).max_rate_hz == 5.0
    # --max-rate 0 (every frame) was dropped as falsy: the file's 5 Hz ran, silently
    assert replay_config(monkeypatch, ["--config", str(path), "--max-rate", "0"]).max_rate_hz == 0.0
    assert replay_config(monkeypatch, ["--config", str(path), "--set", "max_rate_hz=2", "--max-rate", "3"]).max_rate_hz == 3.0


def test_flag_values_are_taken_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # they were re-read as YAML: a frame named `no` failed as the bool false, `010` became "8"
    config = replay_config(monkeypatch, ["--gt-frame", "no", "--gt-body-frame", "010", "--rgb", "/cam/rgb"])
    assert (config.gt_frame, config.gt_body_frame, config.rgb_topic) == ("no", "010", "/cam/rgb")
    assert replay_config(monkeypatch, ["--set", "gt_frame=odom"]).gt_frame == "odom"
