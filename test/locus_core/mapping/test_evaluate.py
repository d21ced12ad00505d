from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from locus_core.cli.main import main
from locus_core.mapping.evaluate import localization_metrics, summary_line, to_json
from locus_core.mapping.localizer import Localization, PlaceMatch


def result(localized: bool, T: np.ndarray | None, kf: int | None, ms: float) -> Localization:
    matches = [PlaceMatch(kf, 1.0, 30, np.eye(4), np.eye(4))] if kf is not None else []
    stages = {"features": ms / 2, "search": ms / 4} if ms < 35 else {"features": ms / 2}
    return Localization(localized, T, np.eye(6) if localized else None, matches, 30 if localized else 0, ms,
                        latency_breakdown=stages)


def shifted(dx: float) -> np.ndarray:
    T = np.eye(4)
    T[0, 3] = dx
    return T


def test_metrics_keys_and_values() -> None:
    gt = [np.eye(4)] * 4
    results = [
        result(True, shifted(0.02), 0, 10.0),  # correct, top place covisible
        result(True, shifted(1.0), 1, 20.0),  # wrong pose, top place not covisible
        result(False, None, 0, 30.0),  # place right, no pose
        result(False, None, None, 40.0),  # nothing
    ]
    covis = np.array([[0.5, 0.0], [0.4, 0.1], [0.6, 0.0], [0.0, 0.1]])
    m = localization_metrics(results, gt, covis)
    assert m["localized_rate"] == 0.5 and m["precision"] == 0.5
    assert m["place"] == {"recall_at_1": 2 / 3, "queries": 3}
    assert np.isclose(m["pose"]["median_trans_m"], 0.51)
    assert m["covisible"]["queries"] == 3 and np.isclose(m["covisible"]["localized_rate"], 2 / 3)
    assert m["latency_ms"]["p50"] == 25.0
    assert m["latency_ms"]["stages_p50"] == {"features": 12.5, "search": 5.0}
    assert m["tracked"] == 0
    # a tracked pose skipped place recognition: it counts for the pose, not for place recall
    tracked = dataclasses.replace(results[0], matches=[], method="tracked")
    m = localization_metrics([tracked, *results[1:]], gt, covis)
    assert m["tracked"] == 1 and m["localized_rate"] == 0.5 and m["precision"] == 0.5
    assert m["place"] == {"recall_at_1": 1 / 2, "queries": 2}
    assert summary_line(to_json(m)).startswith("localized 0.500 (1 tracked), precision 0.500, recall@1 0.500, median ")
    unseen = to_json(localization_metrics(results[2:], [None, None], None))
    assert summary_line(unseen).startswith("localized 0.000, precision n/a, recall@1 n/a, median n/a m / n/a deg")
    assert unseen["place"]["recall_at_1"] is None and unseen["localized_rate"] == 0.0
    json.dumps(unseen)


def test_cli_build_info_merge_localize(scene: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "map"
    assert main(["map", "build", "--model", "backbone:test", "--data", str(scene), "--frames", "0:24:2",
                 "--out", str(out), "--set", "landmarks_per_keyframe=100"]) == 0
    assert main(["map", "info", str(out)]) == 0
    assert "landmarks" in capsys.readouterr().out
    assert main(["map", "build", "--model", "backbone:test", "--data", str(scene), "--frames", "1:24:4",
                 "--out", str(tmp_path / "map2"), "--set", "landmarks_per_keyframe=100"]) == 0
    assert main(["map", "merge", str(out), str(tmp_path / "map2"), "--out", str(tmp_path / "merged")]) == 0
    assert main(["map", "merge", str(out), str(out), "--out", str(tmp_path / "twice")]) == 2  # the same session twice
    assert main(["map", "localize", "--map", str(out), "--data", str(scene), "--frames", "0:24:6",
                 "--out", str(tmp_path / "loc"), "--set", "min_inlier_ratio=0.05", "--set", "min_inliers=20"]) == 0
    metrics = json.loads((tmp_path / "loc" / "metrics.json").read_text())
    assert metrics["queries"] == 4 and metrics["place"]["queries"] == 4
    assert {"recall_at_1"} <= set(metrics["place"]) and {"p50", "p95"} <= set(metrics["latency_ms"])
    assert (tmp_path / "loc" / "trajectory.png").stat().st_size > 0
    assert (tmp_path / "loc" / "config.yaml").is_file() and (tmp_path / "loc" / "results.csv").is_file()
    assert set(metrics["latency_ms"]["stages_p50"]) == {"features", "search", "verify", "refine"}
    assert main(["map", "info", str(tmp_path / "nothing")]) == 2
    # A rerun into the same folder stopped before its end (Ctrl-C while plotting) leaves no metrics.json
    # beside its new files: metrics.json marks a finished run.
    import locus_core.mapping.evaluate as evaluate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "plot_trajectory", interrupted)
    assert main(["map", "localize", "--map", str(out), "--data", str(scene), "--frames", "0:24:12",
                 "--out", str(tmp_path / "loc")]) == 130
    assert not (tmp_path / "loc" / "metrics.json").exists() and (tmp_path / "loc" / "results.csv").is_file()
    assert "no map directory" in capsys.readouterr().err
    assert main(["map", "localize", "--map", str(out), "--data", str(scene), "--frames", "0:2",
                 "--model", "backbone:xfeat", "--out", str(tmp_path / "loc2")]) == 2
    assert "manifest.json: map was built with model backbone-test" in capsys.readouterr().err


def test_covisibility_of_kept_points_sees_a_frame_from_itself_and_not_from_behind(scene: Path) -> None:
    import dataclasses

    from locus_core.data import open_dataset
    from locus_core.mapping.evaluate import camera_points, covisibility

    frames = open_dataset(scene, frames="0:8:4")
    a = frames[0]
    points = camera_points(a)
    assert points.shape[1] == 3 and len(points) > 0 and np.isfinite(points).all() and (points[:, 2] > 0).all()
    assert camera_points(dataclasses.replace(a, depth=None)).shape == (0, 3)
    # The camera turned around on the spot sees none of what it saw.
    behind = a.T_world_cam @ np.diag([-1.0, 1.0, -1.0, 1.0])
    out = covisibility([(points, a.T_world_cam), (points, behind), (points, None)], [a])
    assert out.shape == (3, 1) and out[0, 0] > 0.95 and out[1, 0] == 0.0 and out[2, 0] == 0.0
    assert covisibility([(points, a.T_world_cam)], []).shape == (1, 0)


def test_source_keyframes_only_from_the_maps_own_data(scene: Path, built_map, tmp_path: Path) -> None:
    from locus_core.mapping.evaluate import source_keyframes

    keyframes = source_keyframes(built_map, scene)
    assert keyframes is not None and len(keyframes) == len(built_map.keyframes)
    assert [k.index for k in keyframes] == [int(i) for i in built_map.keyframes.source_index]
    assert source_keyframes(built_map, tmp_path) is None  # queries from another recording
    built_map.sources[0]["path"] = str(tmp_path / "gone")
    try:
        assert source_keyframes(built_map) is None
    finally:
        built_map.sources[0]["path"] = str(scene)


def test_a_map_without_a_source_path_has_no_source_keyframes(scene: Path, built_map, monkeypatch) -> None:
    """A map made in mapping mode records no data set path: its source was taken as Path(""), the
    working directory, so run from inside a recording the keyframes were read from that one."""
    from locus_core.mapping.evaluate import source_keyframes

    monkeypatch.chdir(scene)
    monkeypatch.setattr(built_map, "sources", [{"name": "locus_localizer mapping mode"}])
    assert source_keyframes(built_map) is None
