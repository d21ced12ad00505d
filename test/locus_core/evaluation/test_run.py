"""``locus eval`` end to end on a tiny synthetic scene with the ``test`` backbone, and its error paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from locus_core.cli.main import main
from locus_core.evaluation.config import EvalConfig
from locus_core.evaluation.errors import EvaluationError


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from locus_core.data.synthetic import generate_scene

    return generate_scene(tmp_path_factory.mktemp("scene") / "s", seed=3, rooms=1, frames=12, size=(96, 128))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from locus_core.models.model import LocusModel, ModelConfig

    torch.manual_seed(0)
    model = LocusModel(ModelConfig(backbone="test", input_size=(96, 128), dim=16, hidden=32, layers=1, heads=2))
    return model.save(tmp_path_factory.mktemp("ckpt") / "model.pt")


def test_full_run_writes_every_file(scene: Path, checkpoint: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from locus_core.evaluation import run

    grids = []  # every extraction's patch grid: the backbone baseline must share the 96x128 model's

    def extract(*args, **kwargs) -> run.FeatureSet:
        fs = original(*args, **kwargs)
        grids.append(tuple(fs.features.shape[2:]))
        return fs

    original = run.extract
    monkeypatch.setattr(run, "extract", extract)
    out = tmp_path / "eval"
    code = main(["eval", "--model", str(checkpoint), "--data", str(scene), "--frames", "0:8",
                 "--train-frames", "8:12", "--out", str(out), "--set", "retrieval_queries=40",
                 "--set", "pose_pairs_per_bin=3", "--set", "pose_bins=[0.0,0.4,1.0]",
                 "--set", "lighterglue_keypoints=128"])
    assert code == 0
    assert len(grids) == 4 and set(grids) == {(96 // 8, 128 // 8)}  # model and backbone, test and train frames
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("ap", "ap_backbone"):
        assert 0 <= metrics["retrieval"][key] <= 1
    assert 0 <= metrics["place"]["recall_at_1"] <= 1 and 0 <= metrics["place"]["recall_at_1_backbone"] <= 1
    # 4 database frames: recall@4 is no recall@5
    assert metrics["place"]["recall_at_5"] is None and metrics["place"]["recall_at_5_backbone"] is None
    pose = metrics["pose"]
    assert pose["pairs"] > 0 and set(pose["bins"]) == {"0-40%", "40-100%"}
    for block in (pose, pose["baseline_backbone"], pose["baseline_lighterglue"]):
        assert {"median_trans_m", "median_rot_deg", "success_rate", "pnp", "bins"} <= set(block)
        assert {"matches_per_pair", "match_median_error_m", "match_within_inlier_m", "match_within_rho"} <= set(block)
        assert "match_within_rho" in block["bins"]["0-40%"] and "match_within_rho" not in block["pnp"]
    seg = metrics["segmentation"]
    for key in ("miou", "miou_backbone", "knn_miou", "knn_miou_backbone"):
        assert 0 <= seg[key] <= 1
    assert "linear probe" in seg["protocol"] and "k-NN" in seg["protocol"]
    assert "instance_accuracy" in seg and "instance_accuracy_backbone" in seg
    assert "0 (background) included" in seg["miou_classes"]
    assert "mean_cosine" in metrics["consistency"] and "mean_cosine_backbone" in metrics["consistency"]
    assert metrics["model"]["hash"] and not metrics["model"]["raw"]
    report = (out / "report.md").read_text()
    assert metrics["model"]["hash"] in report and "## Resolved config" in report
    assert "mIoU over every class in the ground truth or the prediction, 0 (background) included" in report
    assert "| mIoU, linear probe (the paper's protocol) |" in report and "| mIoU, k-NN label transfer |" in report
    assert "Success = error within 0.1 m and 5.0°" in report
    for name in ("retrieval_pr", "pose_cdf", "matches", "features_pca"):
        assert (out / f"{name}.png").stat().st_size > 1000
    assert (out / "config.yaml").exists()
    # A rerun into the folder stopped while writing (Ctrl-C) leaves no metrics.json beside its files.
    from locus_core.evaluation import figures

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "write_figures", interrupted)
    assert main(["eval", "--model", str(checkpoint), "--data", str(scene), "--frames", "0:8", "--tasks", "retrieval",
                 "--out", str(out), "--set", "retrieval_queries=40"]) == 130
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("two_stage", [True, False])
def test_multiscale_model_matches_pose_in_two_stages(scene: Path, tmp_path: Path, two_stage: bool) -> None:
    import torch

    from locus_core.models.model import LocusModel, ModelConfig

    torch.manual_seed(0)
    model = LocusModel(ModelConfig(backbone="test", radii=(0.2, 0.05), input_size=(96, 128), dim=16, hidden=32,
                                   layers=1, heads=2))
    checkpoint = model.save(tmp_path / "two_scales.pt")
    out = tmp_path / "eval"
    code = main(["eval", "--model", str(checkpoint), "--data", str(scene), "--frames", "0:8", "--tasks", "pose",
                 "--out", str(out), "--set", "pose_pairs_per_bin=3", "--set", "pose_bins=[0.0,0.4,1.0]",
                 "--set", "lighterglue_keypoints=128", "--set", f"two_stage={str(two_stage).lower()}"])
    assert code == 0
    pose = json.loads((out / "metrics.json").read_text())["pose"]
    assert pose["radius_m"] == 0.05 and pose["pairs"] > 0
    if two_stage:
        assert pose["matching"] == ("mutual nearest neighbours (rho 0.2 m) for a first pose, then the 5 most similar "
                                    "(rho 0.05 m) within 0.3 m of where it puts each patch")
        assert pose["baseline_backbone"]["matching"] == ("mutual nearest neighbours for a first pose, then the 5 "
                                                         "most similar within 0.3 m of where it puts each patch")
    else:
        assert pose["matching"] == pose["baseline_backbone"]["matching"] == "mutual nearest neighbours"
    assert "3D–3D matches by " + pose["matching"] in (out / "report.md").read_text()


def test_pose_bins_count_each_pair_in_the_bin_it_was_drawn_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from locus_core.evaluation import pose, run

    def pair(*args) -> tuple:
        return (0.01, 1.0), (0.01, 1.0), {"uv_a": np.zeros((1, 2)), "uv_b": np.zeros((1, 2)),
                                          "inliers": np.ones(1, bool), "error_m": np.zeros(1)}

    monkeypatch.setattr(run, "_pose_pair", pair)
    monkeypatch.setattr(run, "_lighterglue_pair", pair)
    monkeypatch.setattr("locus_core.evaluation.lighterglue.LighterGlueMatcher", lambda *args: None)
    fs = SimpleNamespace(frames=[SimpleNamespace(rgb=np.zeros((8, 8, 3), np.uint8))] * 3)
    # co-visibility 210 of 300 patches: float32 0.7, drawn in 70-100 %
    cov = np.array([[1, 0.2, 210 / 300], [0.2, 1, 0.05], [210 / 300, 0.05, 1]], np.float32)
    config = EvalConfig(pose_bins=(0.1, 0.4, 0.7, 1.0))
    pairs = pose.select_pairs(cov, config.pose_bins, 5)
    metrics, _ = run.run_pose({"model": fs, "backbone": fs}, pairs, config)
    for block in (metrics, metrics["pnp"], metrics["baseline_lighterglue"]):
        assert {k: b["pairs"] for k, b in block["bins"].items()} == {"10-40%": 1, "40-70%": 0, "70-100%": 1}


def test_raw_backbone_is_its_own_baseline(scene: Path, tmp_path: Path) -> None:
    code = main(["eval", "--model", "backbone:test", "--data", str(scene), "--frames", "0:6",
                 "--tasks", "retrieval,segmentation", "--out", str(tmp_path), "--set", "retrieval_queries=20"])
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["retrieval"]["ap"] == metrics["retrieval"]["ap_backbone"]
    for key in ("miou", "knn_miou"):
        assert metrics["segmentation"][key] == metrics["segmentation"][f"{key}_backbone"]
    assert "place" not in metrics
    from PIL import Image

    # Drawn once, not as "LoCUS" plus an identical "raw backbone": image + one PCA column (3.2 in at 100 dpi each).
    assert Image.open(tmp_path / "features_pca.png").width == 640


def _eval(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["eval", *args]) == 2
    return capsys.readouterr().err


def test_empty_selection_is_an_error(scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _eval(["--model", "backbone:test", "--data", str(scene), "--frames", "500:600", "--out", str(tmp_path / "o")], capsys)
    assert "no frames" in err or "500:600" in err
    assert not (tmp_path / "o").exists()


def test_task_without_needed_data_is_an_error(scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _eval(["--model", "backbone:test", "--data", str(scene), "--tasks", "place", "--out", str(tmp_path / "o")], capsys)
    assert "place cannot run" in err and "--train-frames" in err
    assert not (tmp_path / "o").exists()


def test_overlapping_train_and_test_frames_are_an_error(scene: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    err = _eval(["--model", "backbone:test", "--data", str(scene), "--frames", "0:8", "--train-frames", "6:12",
                 "--out", str(tmp_path / "o")], capsys)
    assert "share 2 frames (first: 6)" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("out", ["file", "file/sub"])
def test_out_that_is_a_file_is_refused_before_work(scene: Path, tmp_path: Path, out: str,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def open_dataset(*args, **kwargs) -> None:
        raise AssertionError("the data set was opened")

    monkeypatch.setattr("locus_core.data.open_dataset", open_dataset)
    (tmp_path / "file").write_text("")
    err = _eval(["--model", "backbone:test", "--data", str(scene), "--tasks", "retrieval",
                 "--out", str(tmp_path / out)], capsys)
    assert f"{tmp_path / 'file'} is a file, not a folder" in err


def test_unknown_task_is_an_error(scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _eval(["--model", "backbone:test", "--data", str(scene), "--tasks", "magic", "--out", str(tmp_path)], capsys)
    assert "unknown magic" in err


@pytest.mark.parametrize("task", ["pose", "consistency"])
def test_no_pose_pairs_is_refused_before_the_model_loads(scene: Path, checkpoint: Path, tmp_path: Path, task: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    def load_model(spec: str) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("locus_core.models.model.load_model", load_model)
    # no two of frames 0-7 share more than 56 % of their view
    err = _eval(["--model", str(checkpoint), "--data", str(scene), "--frames", "0:8", "--tasks", task,
                 "--set", "pose_bins=[0.9,1.0]", "--out", str(tmp_path / "o")], capsys)
    assert f"no frame pairs of the selection '0:8' have co-visibility in 0.9–1.0 (pose_bins); ['{task}']" in err
    assert not (tmp_path / "o").exists()


def test_place_covisibility_covers_only_the_two_selections(scene: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from locus_core.data import covisibility

    seen = []

    def covisibility_matrix(dataset, **kwargs) -> np.ndarray:
        seen.append(dataset.indices)
        return original(dataset, **kwargs)

    original = covisibility.covisibility_matrix
    monkeypatch.setattr(covisibility, "covisibility_matrix", covisibility_matrix)
    code = main(["eval", "--model", "backbone:test", "--data", str(scene), "--frames", "0:2", "--train-frames",
                 "10:12", "--tasks", "place", "--out", str(tmp_path)])
    assert code == 0
    assert seen == [[0, 1, 10, 11]]


def test_one_evaluated_frame_segments_against_the_train_frames(scene: Path, tmp_path: Path) -> None:
    code = main(["eval", "--model", "backbone:test", "--data", str(scene), "--frames", "0:1", "--train-frames",
                 "4:8", "--tasks", "segmentation", "--out", str(tmp_path)])
    assert code == 0
    seg = json.loads((tmp_path / "metrics.json").read_text())["segmentation"]
    assert (seg["labelled_frames"], seg["held_out_frames"]) == (4, 1) and 0 <= seg["miou"] <= 1


def test_one_evaluated_frame_without_train_frames_is_an_error(scene: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    err = _eval(["--model", "backbone:test", "--data", str(scene), "--frames", "0:1", "--tasks", "segmentation",
                 "--out", str(tmp_path / "o")], capsys)
    assert "['segmentation'] need at least two frames, the selection has 1" in err


def test_data_without_labels_or_depth(tmp_path: Path) -> None:
    from locus_core.data.frame import PosedFrame
    from locus_core.evaluation.run import _plan_tasks

    frame = PosedFrame(rgb=np.zeros((8, 8, 3), np.uint8), depth=None, K=np.eye(3), T_world_cam=None, frame_id="f0")
    with pytest.raises(EvaluationError, match="task pose cannot run: no depth, no camera poses"):
        _plan_tasks(EvalConfig(tasks=("pose",)), frame, None, "d")
    with pytest.raises(EvaluationError, match="no task can run"):
        _plan_tasks(EvalConfig(), frame, None, "d")


def test_train_frames_without_labels_cannot_be_segmented() -> None:
    from locus_core.data.frame import PosedFrame
    from locus_core.evaluation.run import _plan_tasks

    def frame(name: str, semantic: np.ndarray | None) -> PosedFrame:
        return PosedFrame(rgb=np.zeros((8, 8, 3), np.uint8), depth=None, K=np.eye(3), T_world_cam=None,
                          frame_id=name, semantic=semantic)

    labelled, unlabelled = frame("held", np.zeros((8, 8), np.int32)), frame("train", None)
    with pytest.raises(EvaluationError, match=r"segmentation cannot run: no semantic labels in the labelled "
                                              r"\(--train-frames\) frames \(train\)"):
        _plan_tasks(EvalConfig(tasks=("segmentation",)), labelled, [unlabelled], "d")
    assert _plan_tasks(EvalConfig(tasks=("segmentation",)), labelled, [labelled], "d") == (["segmentation"], {})


def test_checkpoint_of_another_backbone_is_refused_before_work(scene: Path, checkpoint: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    bad = tmp_path / "bad.pt"
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["backbone"] = "xfeat"
    torch.save(ckpt, bad)
    err = _eval(["--model", str(bad), "--data", str(scene), "--out", str(tmp_path / "o")], capsys)
    assert str(bad) in err or "bad.pt" in err
    assert not (tmp_path / "o").exists()


def test_checkpoint_of_another_format_version_is_refused_before_work(
        scene: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    old = tmp_path / "old.pt"
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["format_version"] = 0
    torch.save(ckpt, old)
    err = _eval(["--model", str(old), "--data", str(scene), "--out", str(tmp_path / "o")], capsys)
    assert "old.pt" in err and "version 0" in err
    assert not (tmp_path / "o").exists()


def test_bad_config_values() -> None:
    with pytest.raises(EvaluationError, match="rho"):
        EvalConfig(rho=20.0)
    with pytest.raises(EvaluationError, match="pose_bins"):
        EvalConfig(pose_bins=(0.5, 0.1))
    with pytest.raises(EvaluationError, match="max_depth_spread must be > 0"):
        EvalConfig(max_depth_spread=-0.1)
    with pytest.raises(EvaluationError, match="guided_radius_m: must be > 0"):
        EvalConfig(guided_radius_m=0.0)
    with pytest.raises(EvaluationError, match="guided_top_k: must be at least 1, got 0"):
        EvalConfig(guided_top_k=0)
    with pytest.raises(EvaluationError, match="probe_epochs: must be at least 1, got 0"):
        EvalConfig(probe_epochs=0)
    with pytest.raises(EvaluationError, match="probe_lr: must be > 0"):
        EvalConfig(probe_lr=0.0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"place_min_covisibility": 0.0}, r"place_min_covisibility: must be in \(0, 1\], got 0.0"),
    ({"place_min_covisibility": 1.5}, r"place_min_covisibility: must be in \(0, 1\], got 1.5"),
    ({"pose_bins": (0.1, 0.4, 0.4, 1.0)}, "pose_bins: need at least two strictly increasing edges in"),
    ({"pose_bins": (-0.1, 0.4)}, r"pose_bins: .* in \[0, 1\], got \(-0.1, 0.4\)"),
    ({"pose_bins": (0.4, 1.2)}, r"pose_bins: .* in \[0, 1\]"),
    ({"pose_bins": (0.4,)}, "pose_bins: need at least two"),
    ({"pose_pairs_per_bin": 0}, "pose_pairs_per_bin: must be at least 1, got 0"),
    ({"pose_pairs_per_bin": -3}, "pose_pairs_per_bin: must be at least 1, got -3"),
    ({"seed": -1}, r"seed: must be in \[0, 2\*\*31\), got -1"),
    ({"seed": 2**31}, r"seed: must be in \[0, 2\*\*31\), got 2147483648"),
    ({"success_trans_m": -0.1}, "success_trans_m: must be > 0, got -0.1"),
    ({"success_rot_deg": 0.0}, "success_rot_deg: must be > 0, got 0.0"),
])
def test_bad_place_and_pose_values(kwargs: dict, match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        EvalConfig(**kwargs)
