from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from locus_core.config import load_config
from locus_core.models.model import LocusModel
from locus_core.training.checkpoint import latest_checkpoint, list_checkpoints
from locus_core.training.config import TrainConfig
from locus_core.training.errors import TrainingError
from locus_core.training.trainer import Trainer, train

ROOT = Path(__file__).resolve().parents[3]


def _losses(run_dir: Path) -> list[tuple[int, float]]:
    with (run_dir / "train_log.csv").open() as f:
        return [(int(r["step"]), float(r["loss"] or "nan")) for r in csv.DictReader(f)]


def test_three_steps_write_model_logs_and_checkpoints(tiny_config: TrainConfig) -> None:
    result = train(tiny_config)
    run = Path(tiny_config.run_dir)
    assert result.steps == 3 and result.skipped == 0
    losses = _losses(run)
    assert [s for s, _ in losses] == [0, 1, 2] and all(math.isfinite(v) and 0 <= v <= 1 for _, v in losses)
    model = LocusModel.load(run / "model.pt")
    assert model.config == tiny_config.model and model.metadata["training"]["steps"] == 3
    assert result.val_ap is not None and 0 < result.val_ap <= 1 and 0 < result.val_ap_raw <= 1
    assert [p.name for p in list_checkpoints(run)] == ["step-00000002", "step-00000003"]
    state = torch.load(latest_checkpoint(run) / "state.pt", weights_only=True)
    assert state["step"] == 3 and "optimizer" in state
    assert load_config(TrainConfig, latest_checkpoint(run) / "train_config.yaml") == tiny_config
    assert len((run / "val_log.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert any((run / "events").iterdir())


def test_resume_continues_exactly(tiny_config: TrainConfig, tmp_path: Path) -> None:
    config = dataclasses.replace(tiny_config, steps=4, checkpoint_every=1,
                                 optim=dataclasses.replace(tiny_config.optim, schedule="constant"))
    full = dataclasses.replace(config, run_dir=str(tmp_path / "full"))
    train(full)
    half = dataclasses.replace(config, run_dir=str(tmp_path / "half"), steps=2)
    train(half)
    train(dataclasses.replace(half, steps=4), resume=True)
    assert _losses(Path(half.run_dir)) == _losses(Path(full.run_dir))
    a = LocusModel.load(Path(full.run_dir) / "model.pt")
    b = LocusModel.load(Path(half.run_dir) / "model.pt")
    assert a.hash == b.hash


PARK_IN_THIRD_CHECKPOINT = textwrap.dedent(
    """
    import runpy
    import sys
    import threading
    from pathlib import Path

    from locus_core.training import checkpoint

    parked = Path(sys.argv.pop(1))
    replace_folder = checkpoint.replace_folder

    def park_before_the_third(tmp, final, aside):
        # checkpoint 3's files are written and synced, not yet in place: wait here to be killed
        if final.name == "step-00000003":
            parked.write_text("parked")
            threading.Event().wait()
        replace_folder(tmp, final, aside)

    checkpoint.replace_folder = park_before_the_third
    sys.argv[0] = "locus"
    runpy.run_module("locus_core.cli.main", run_name="__main__", alter_sys=True)
    """
)


def test_killed_run_resumes_from_its_last_checkpoint(tiny_config: TrainConfig, tmp_path: Path) -> None:
    config = dataclasses.replace(tiny_config, steps=12, steps_per_epoch=12, checkpoint_every=1)
    reference = dataclasses.replace(config, run_dir=str(tmp_path / "reference"))
    train(reference)
    killed = dataclasses.replace(config, run_dir=str(tmp_path / "killed"))
    config_file = tmp_path / "killed.yaml"
    from locus_core.config import config_to_dict

    config_file.write_text(yaml.safe_dump(config_to_dict(killed)))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = ["train", "--config", str(config_file)]
    # The run parks inside its third checkpoint write until killed there: polling for a checkpoint
    # and killing the run then raced its remaining second of steps, lost when this process was
    # scheduled late.
    parked = tmp_path / "parked"
    proc = subprocess.Popen([sys.executable, "-c", PARK_IN_THIRD_CHECKPOINT, str(parked), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not parked.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:  # never left parked, whatever happens here
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert parked.exists(), "the run was not killed mid-checkpoint"
    checkpoints = Path(killed.run_dir) / "checkpoints"
    assert [p.name for p in list_checkpoints(Path(killed.run_dir))] == ["step-00000001", "step-00000002"]
    assert list(checkpoints.glob(".step-00000003.tmp-*")), "the third checkpoint was not half-written"
    assert not (Path(killed.run_dir) / "model.pt").exists()
    done = subprocess.run([sys.executable, "-m", "locus_core.cli.main", *args, "--resume"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not list(checkpoints.glob(".*")), "the killed run's temporary folder was left"
    assert _losses(Path(killed.run_dir)) == _losses(Path(reference.run_dir))
    assert LocusModel.load(Path(killed.run_dir) / "model.pt").hash == LocusModel.load(
        Path(reference.run_dir) / "model.pt").hash


def test_half_written_checkpoint_is_ignored(tiny_config: TrainConfig) -> None:
    train(tiny_config)
    run = Path(tiny_config.run_dir)
    (run / "checkpoints" / ".step-00000009.tmp-123").mkdir()
    (run / "checkpoints" / "step-00000010").mkdir()  # no state.pt: incomplete
    assert latest_checkpoint(run).name == "step-00000003"


def test_resuming_a_finished_run_keeps_its_results(tiny_config: TrainConfig, tmp_path: Path) -> None:
    config = dataclasses.replace(tiny_config, ship_to=str(tmp_path / "shipped" / "model.pt"))
    first = train(config)
    run = Path(config.run_dir)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_loss"] is not None and summary["val_ap"] is not None
    again = train(config, resume=True)
    assert (again.final_loss, again.val_ap, again.val_ap_raw) == (first.final_loss, first.val_ap, first.val_ap_raw)
    assert json.loads((run / "summary.json").read_text()) == summary
    for path in (run / "model.pt", Path(config.ship_to)):
        assert LocusModel.load(path).metadata["training"] == summary


def test_resume_falls_back_past_a_damaged_checkpoint(tiny_config: TrainConfig) -> None:
    train(tiny_config)
    run = Path(tiny_config.run_dir)
    reference = LocusModel.load(run / "model.pt").hash
    (latest_checkpoint(run) / "state.pt").write_bytes(b"")  # step 3, as an OS crash can leave it
    stale = run / "checkpoints" / f".step-00000003.tmp-{_dead_pid()}"
    stale.mkdir()
    result = train(tiny_config, resume=True)
    assert result.steps == 3 and LocusModel.load(run / "model.pt").hash == reference
    assert [s for s, _ in _losses(run)] == [0, 1, 2] and not stale.exists()
    assert torch.load(latest_checkpoint(run) / "state.pt", weights_only=True)["step"] == 3


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_validation_scores_the_scale_of_its_radius(tiny_config: TrainConfig) -> None:
    from locus_core.training.validation import patch_retrieval_ap

    config = dataclasses.replace(tiny_config, validation=dataclasses.replace(tiny_config.validation, radius=0.6))
    trainer = Trainer(config)
    with torch.no_grad():
        feats = trainer.model.eval().head(trainer.val.feats)
    expected = [patch_retrieval_ap(feats[:, s], trainer.val.points, radius=0.6, queries=40) for s in (0, 1)]
    assert expected[0] != pytest.approx(expected[1])
    assert trainer.validate() == pytest.approx(expected[1])


def test_existing_run_needs_resume_and_the_same_config(tiny_config: TrainConfig) -> None:
    train(tiny_config)
    with pytest.raises(TrainingError, match="already has checkpoints .*--resume"):
        Trainer(tiny_config)
    changed = dataclasses.replace(tiny_config, optim=dataclasses.replace(tiny_config.optim, lr=0.1))
    with pytest.raises(TrainingError, match=r"differs from this run's config in optim\.lr \(0\.005, now 0\.1\)"):
        Trainer(changed, resume=True)
    for folder in list_checkpoints(tiny_config.run_dir):
        (folder / "state.pt").write_bytes(b"")  # none loads: still somebody's run
    with pytest.raises(TrainingError, match="already has checkpoints .*--resume"):
        Trainer(tiny_config)


def test_batch_without_landmarks_is_skipped(tiny_config: TrainConfig, caplog: pytest.LogCaptureFixture) -> None:
    # kappa barely above the radius and landmarks far apart: still fine; but a radius no patch
    # reaches (1 mm) leaves every landmark without positives.
    config = dataclasses.replace(
        tiny_config, model=dataclasses.replace(tiny_config.model, radii=(0.001,)), steps=2)
    result = train(config)
    assert result.skipped == 2 and math.isnan(result.final_loss)
    assert "no landmark with a positive; batch skipped" in caplog.text
    assert all(math.isnan(v) for _, v in _losses(Path(config.run_dir)))


def test_resume_refuses_a_run_whose_checkpoints_all_fail_to_load(tiny_config: TrainConfig) -> None:
    train(tiny_config)
    run = Path(tiny_config.run_dir)
    for folder in list_checkpoints(run):
        (folder / "state.pt").write_bytes(b"")  # e.g. a full disk
    log_before = (run / "train_log.csv").read_text()
    with pytest.raises(TrainingError, match=r"step-00000003/state\.pt: unreadable training state"):
        Trainer(tiny_config, resume=True)
    # starting over would have deleted the logs, then replaced the checkpoints one by one
    assert (run / "train_log.csv").read_text() == log_before
    assert [p.name for p in list_checkpoints(run)] == ["step-00000002", "step-00000003"]


def test_resume_may_change_where_and_how_often_the_run_saves(tiny_config: TrainConfig, tmp_path: Path) -> None:
    train(tiny_config)
    ship = tmp_path / "shipped" / "model.pt"
    resumed = dataclasses.replace(tiny_config, steps=5, ship_to=str(ship), checkpoint_every=1, keep_checkpoints=3)
    assert train(resumed, resume=True).steps == 5
    assert [p.name for p in list_checkpoints(tiny_config.run_dir)] == [
        "step-00000003", "step-00000004", "step-00000005"]
    assert LocusModel.load(ship).hash == LocusModel.load(Path(tiny_config.run_dir) / "model.pt").hash


def test_a_run_that_never_updated_the_model_does_not_replace_the_shipped_one(
    tiny_config: TrainConfig, tmp_path: Path
) -> None:
    shipped = tmp_path / "weights" / "model.pt"
    shipped.parent.mkdir()
    shipped.write_bytes(b"the shipped model")
    config = dataclasses.replace(  # no patch within 1 mm of a landmark: every batch is skipped
        tiny_config, model=dataclasses.replace(tiny_config.model, radii=(0.001,)), steps=2, ship_to=str(shipped))
    with pytest.raises(TrainingError, match=r"ship_to='.*model\.pt': not replaced: all 2 steps were skipped"):
        train(config)
    assert shipped.read_bytes() == b"the shipped model"
    assert LocusModel.load(Path(config.run_dir) / "model.pt").metadata["training"]["skipped"] == 2


def test_a_batch_with_non_finite_features_is_skipped(
    tiny_config: TrainConfig, caplog: pytest.LogCaptureFixture
) -> None:
    trainer = Trainer(tiny_config)
    scene, idx, _ = trainer.masks_for(0)
    before = [p.detach().clone() for p in trainer.params]
    scene.tensors.feats[idx[0]] = float("nan")  # e.g. a backbone that overflowed on one frame
    record = trainer.train_step(0)  # raised LossInputError: the run, resumed, died at this step again
    assert record["skipped"] == 1 and math.isnan(record["loss"])
    assert f"frames {idx}" in caplog.text and "non-finite features; batch skipped" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.params))


def test_resume_refuses_fewer_steps_than_the_run_has_done(tiny_config: TrainConfig) -> None:
    train(tiny_config)
    with pytest.raises(TrainingError, match=r"steps=2: .*step-00000003 is already at step 3"):
        Trainer(dataclasses.replace(tiny_config, steps=2), resume=True)  # gave the step-3 model as steps=2's


def test_run_dir_and_ship_to_expand_the_home_folder(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # run_dir: ~/runs/x in a YAML file (or --set run_dir=~/x) trained into a folder named '~' here
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = train(dataclasses.replace(tiny_config, run_dir="~/runs/x", ship_to="~/shipped.pt"))
    assert result.model_path == tmp_path / "home" / "runs" / "x" / "model.pt" and result.model_path.is_file()
    assert (tmp_path / "home" / "shipped.pt").is_file() and not (tmp_path / "~").exists()
