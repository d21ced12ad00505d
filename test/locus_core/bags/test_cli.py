"""``locus bag``: the commands end to end on a tiny synthetic scene, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from locus_core.bags.errors import BagError
from locus_core.bags.play import play
from locus_core.cli.main import main
from locus_core.data.synthetic import generate_scene


def test_convert_and_eval_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    scene = generate_scene(tmp_path / "scene", frames=8, size=(48, 64))
    assert main(["map", "build", "--model", "backbone:test", "--data", str(scene), "--frames", "0:8:2",
                 "--out", str(tmp_path / "map")]) == 0
    assert main(["bag", "convert", str(scene), "--frames", "1:8:2", "--out", str(tmp_path / "bag"),
                 "--storage", "sqlite3", "--compressed"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["bag", "eval", str(tmp_path / "bag"), "--map", str(tmp_path / "map"), "--rgb",
                 "/camera/color/image_raw/compressed", "--set", "sync_queue_size=5", "--max-rate", "1000", "--rectified",
                 "--out", str(tmp_path / "ev")]) == 0
    assert "x real time" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["replay"]["topics"]["rgb"] == "/camera/color/image_raw/compressed" and metrics["queries"] == 4
    config = (tmp_path / "ev" / "config.yaml").read_text()
    assert "sync_queue_size: 5" in config and "max_rate_hz: 1000.0" in config and "min_inliers" in config
    assert "rectified: true" in config and "track_period_s: 0.0" in config
    assert main(["bag", "eval", str(tmp_path / "bag"), "--map", str(tmp_path / "map"), "--track-period", "2",
                 "--out", str(tmp_path / "tracked")]) == 0
    assert "track_period_s: 2.0" in (tmp_path / "tracked" / "config.yaml").read_text()


def test_play_feeds_a_localizer_by_default_and_passes_the_player_options(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    player = pytest.importorskip("locus_ros.player")
    calls: list[list[str]] = []
    monkeypatch.setattr(player, "main", lambda argv: calls.append(argv) or 0)
    assert main(["bag", "play", str(tmp_path)]) == 0
    # odom -> base_link, so that a node in localization mode (publish_tf) finds odom -> camera
    assert calls[-1] == ["locus_player", str(tmp_path), "--rate", "1.0", "--tf", "odom", "--wait", "10.0"]
    assert main(["bag", "play", str(tmp_path), "--tf", "map", "--frames", "0:10:2", "--wait", "0", "--loop"]) == 0
    assert calls[-1] == ["locus_player", str(tmp_path), "--rate", "1.0", "--tf", "map", "--wait", "0.0",
                         "--frames", "0:10:2", "--loop"]


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["bag", "eval", str(tmp_path / "missing"), "--map", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert main(["bag", "play", str(tmp_path / "missing")]) == 2
    assert main(["bag", "play", str(tmp_path), "--rate", "0"]) == 2
    assert main(["bag", "play", str(tmp_path), "--wait", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("locus bag: error:") for line in err)
    assert "--rate must be > 0" in err[2] and "--wait must be >= 0, got -1.0" in err[3]
    with pytest.raises(BagError, match="--tf must be one of odom, map, none, got 'world'"):
        play(tmp_path, tf="world")
