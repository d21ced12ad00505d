"""The training loop: head on cached backbone features, loss 1 − mean-over-scales VSAP, Adam.

Determinism: the model is initialised from ``seed``; batch ``t`` and its landmarks are functions of
(seed, t); checkpoints carry the optimiser and torch RNG states. A resumed run therefore computes
the same losses as an uninterrupted one, and a DDP run the same losses as a single process.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from locus_core.config import config_to_dict, load_config, save_config
from locus_core.training import distributed
from locus_core.training.checkpoint import (
    latest_checkpoint, list_checkpoints, load_state, remove_stale, save_checkpoint,
)
from locus_core.training.config import TrainConfig, learning_rate, validate_config, validation_scale
from locus_core.training.errors import TrainingError
from locus_core.training.landmarks import BatchMasks, batch_masks, seed_for
from locus_core.training.logs import RunLog, scale_field
from locus_core.training.sampler import MixedSampler, OverlapSampler
from locus_core.training.scenes import Scene, load_source, load_training_scenes
from locus_core.training.validation import patch_retrieval_ap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    model_path: Path
    steps: int
    skipped: int
    final_loss: float
    val_ap: float | None
    val_ap_raw: float | None
    seconds: float


class _Head(nn.Module):
    """The trainable part as a module of its own, so DDP wraps (and syncs) only the head."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.model.head(feats)


def step_loss(
    feats: torch.Tensor, masks: BatchMasks, temperature: float
) -> tuple[torch.Tensor, list[float]]:
    """1 − mean VSAP over the scales that have positives.

    Args:
        feats: (B, S, D, h, w) head output of the whole batch.
        masks: the batch's landmarks and masks (flat indices over B*h*w patches).
    Returns:
        loss (0-d), VSAP per scale (NaN for a scale without positives).
    """
    from locus_core.losses import vectorized_smooth_ap

    B, S, D, h, w = feats.shape
    flat = feats.permute(1, 0, 3, 4, 2).reshape(S, B * h * w, D)
    values, per_scale = [], []
    for s in range(S):
        if not masks.positive[s].any():
            per_scale.append(float("nan"))
            continue
        ap = vectorized_smooth_ap(
            flat[s, masks.landmark_index], flat[s, masks.patch_index],
            masks.positive[s], masks.candidates[s], temperature=temperature,
        )
        values.append(ap)
        per_scale.append(float(ap.detach()))
    return 1.0 - torch.stack(values).mean(), per_scale


class Trainer:
    """One run of ``config`` in ``config.run_dir`` (fresh, or resumed from its last checkpoint)."""

    def __init__(self, config: TrainConfig, *, resume: bool = False) -> None:
        from locus_core.models import LocusModel

        self.world = distributed.init_from_env()
        validate_config(config, world_size=self.world.size)
        torch.set_num_threads(config.threads)
        self.config = config
        self.run_dir = Path(config.run_dir).expanduser()  # a YAML value or --set=~/x: no shell expanded it
        if self.world.is_main:
            remove_stale(self.run_dir)
        self.checkpoint = self._checkpoint_to_resume(resume)
        torch.manual_seed(config.seed)
        self.model = LocusModel(config.model)
        if self.checkpoint is not None:
            self.model = LocusModel.load(self.checkpoint / "model.pt")
            if self.model.config != config.model:
                raise TrainingError(f"{self.checkpoint}: model config differs from the run's config")
        self.scenes: list[Scene] = load_training_scenes(self.model, config)
        self.val = load_source(config.data.val, self.model, config) if config.data.val else None
        self.sampler = MixedSampler(
            [OverlapSampler(s.covisibility, config.data.batch_frames, config.data.min_overlap,
                            config.data.max_overlap, name=s.tensors.name) for s in self.scenes],
            [s.weight for s in self.scenes],
        )
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if not self.params:
            raise TrainingError(f"model {config.model.backbone}: nothing to train (no trainable parameters)")
        self.optimizer = torch.optim.Adam(
            self.params, lr=config.optim.lr, weight_decay=config.optim.weight_decay
        )
        self.step = 0
        self.skipped = 0
        self.seconds = 0.0
        self.last_loss = float("nan")  # of the last step that was not skipped
        self.val_ap_raw: float | None = None
        self.val_ap: float | None = None
        if self.checkpoint is not None:
            state = load_state(self.checkpoint)
            self.optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            self.step, self.skipped = int(state["step"]), int(state["skipped"])
            self.seconds = float(state["seconds"])
            # Older checkpoints lack the results: a resumed run then recomputes them as it goes.
            self.last_loss = float(state.get("last_loss", float("nan")))
            self.val_ap, self.val_ap_raw = state.get("val_ap"), state.get("val_ap_raw")
            log.info("resuming %s at step %d", self.checkpoint, self.step)
        head = _Head(self.model)
        if self.world.size > 1:
            head = nn.parallel.DistributedDataParallel(head)
        self.head = head
        self.log = (RunLog(self.run_dir, radii=tuple(config.model.radii), resume_step=self.step)
                    if self.world.is_main else None)

    def _checkpoint_to_resume(self, resume: bool) -> Path | None:
        if not resume:
            existing = list_checkpoints(self.run_dir)  # damaged ones too: they are someone's run
            if existing:
                raise TrainingError(
                    f"run_dir {self.run_dir} already has checkpoints ({existing[-1].name}): "
                    "pass --resume to continue it, or set run_dir to a new folder"
                )
            return None
        found = latest_checkpoint(self.run_dir)
        if found is None:
            log.warning("--resume: no checkpoint in %s; starting from scratch", self.run_dir)
            return None
        saved = load_config(TrainConfig, found / "train_config.yaml")
        # Where and how often the run saves does not change what it trains: a run of the shipped
        # config may be resumed with ship_to=null, or with checkpoints closer together.
        c = self.config
        saved = replace(saved, steps=c.steps, checkpoint_every=c.checkpoint_every,
                        keep_checkpoints=c.keep_checkpoints, ship_to=c.ship_to)
        changed = _changed_keys(config_to_dict(saved), config_to_dict(c))
        if changed:
            raise TrainingError(
                f"--resume: {found / 'train_config.yaml'} differs from this run's config in "
                f"{', '.join(changed)} (only steps, checkpoint_every, keep_checkpoints and ship_to "
                "may change when resuming)"
            )
        done = int(load_state(found)["step"])
        if done > c.steps:  # the run would end at once, shipping the later model as this config's
            raise TrainingError(f"--resume: steps={c.steps}: {found} is already at step {done}")
        return found

    # -- one step -----------------------------------------------------------------------------
    def masks_for(self, step: int) -> tuple[Scene, list[int], BatchMasks]:
        batch = self.sampler.batch(self.config.seed, step)
        scene = self.scenes[batch.scene]
        idx = list(batch.frames)
        t = scene.tensors
        lm = self.config.landmarks
        masks = batch_masks(
            t.points[idx], t.depth[idx], t.K[idx], t.T_world_cam[idx],
            radii=tuple(self.config.model.radii), kappa=lm.kappa, landmarks=lm.landmarks,
            min_separation=lm.min_separation, patch_keep=lm.patch_keep,
            visibility_tolerance=lm.visibility_tolerance, seed=seed_for(self.config.seed, step),
        )
        return scene, idx, masks

    def train_step(self, step: int) -> dict[str, Any]:
        """Run optimisation step ``step``; returns its log record (``skipped`` = 1 when no update)."""
        scene, idx, masks = self.masks_for(step)
        record: dict[str, Any] = {
            "step": step, "scene": scene.tensors.name, "landmarks": int(masks.landmark_index.numel()),
            "patches": int(masks.patch_index.numel()), "positives": masks.num_positives,
        }
        if masks.num_positives == 0:
            log.warning("step %d (%s frames %s): no landmark with a positive; batch skipped",
                        step, scene.tensors.name, idx)
            return {**record, "loss": float("nan"), "skipped": 1}
        share = len(idx) // self.world.size
        local = idx[self.world.rank * share : (self.world.rank + 1) * share]
        self.head.train()
        feats = distributed.gather_shards(self.head(scene.tensors.feats[local]))
        # Checked before the loss, which refuses them: raising would end the run at this batch, and
        # a resumed run (same batches) at the same one again.
        if not torch.isfinite(feats).all():
            log.warning("step %d (%s frames %s): non-finite features; batch skipped",
                        step, scene.tensors.name, idx)
            return {**record, "loss": float("nan"), "skipped": 1}
        loss, per_scale = step_loss(feats, masks, self.config.optim.temperature)
        lr = learning_rate(self.config.optim, step, self.config.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.optim.grad_clip)
        self.optimizer.step()
        record.update({"loss": float(loss.detach()), "skipped": 0, "lr": lr})
        record.update({scale_field(r): v for r, v in zip(self.config.model.radii, per_scale)})
        return record

    # -- validation and checkpoints -----------------------------------------------------------
    def validate(self, raw: bool = False) -> float | None:
        """Patch-retrieval AP on ``data.val`` of the scale of ``validation.radius`` at that radius
        (``raw``: of the backbone features)."""
        if self.val is None:
            return None
        v = self.config.validation
        scale = validation_scale(self.config)
        with torch.no_grad():
            if raw:
                feats = torch.nn.functional.normalize(self.val.feats, dim=1)
            else:
                self.model.eval()
                feats = torch.cat([self.model.head(self.val.feats[i : i + 8])[:, scale]
                                   for i in range(0, len(self.val), 8)])
        return patch_retrieval_ap(feats, self.val.points, radius=self.config.model.radii[scale],
                                  kappa=self.config.landmarks.kappa, queries=v.queries, seed=v.seed)

    def save(self, step: int) -> Path | None:
        if not self.world.is_main:
            return None
        state = {
            "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
            "skipped": self.skipped, "seconds": self.seconds,
            # so that resuming a finished run writes its results again, not None
            "last_loss": self.last_loss, "val_ap": self.val_ap, "val_ap_raw": self.val_ap_raw,
        }
        return save_checkpoint(self.run_dir, step, self.model, state, self.config,
                               keep=self.config.keep_checkpoints)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        from tqdm import tqdm

        cfg = self.config
        if self.world.is_main:
            save_config(cfg, self.run_dir / "train_config.yaml")
            if self.val_ap_raw is None:  # not restored from a checkpoint
                self.val_ap_raw = self.validate(raw=True)
            if self.val_ap_raw is not None:
                log.info("validation AP of the raw %s features: %.4f", cfg.model.backbone, self.val_ap_raw)
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", mininterval=10,
                   disable=not self.world.is_main)
        while self.step < cfg.steps:
            start = time.perf_counter()
            record = self.train_step(self.step)
            self.step += 1
            self.skipped += record["skipped"]
            self.seconds += time.perf_counter() - start
            record.update({"epoch": (self.step - 1) // cfg.steps_per_epoch, "seconds": round(self.seconds, 3)})
            if not record["skipped"]:
                self.last_loss = record["loss"]
            if self.log is not None:
                self.log.write_step(record)
            bar.update(1)
            bar.set_postfix(loss=f"{self.last_loss:.4f}", refresh=False)
            epoch_end = self.step % cfg.steps_per_epoch == 0 or self.step == cfg.steps
            if epoch_end and self.world.is_main:
                self.val_ap = self.validate()
                if self.val_ap is not None and self.log is not None:
                    self.log.write_val({"step": self.step, "epoch": record["epoch"], "val_ap": self.val_ap,
                                        "val_ap_raw": self.val_ap_raw, "seconds": round(self.seconds, 3)})
                    bar.write(f"step {self.step}: validation AP {self.val_ap:.4f} (raw {self.val_ap_raw:.4f})")
            if epoch_end or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                self.save(self.step)
                distributed.barrier()
        bar.close()
        model_path = self.run_dir / "model.pt"
        if self.world.is_main:
            self._save_final(model_path)
        distributed.barrier()
        return TrainResult(self.run_dir, model_path, self.step, self.skipped, self.last_loss, self.val_ap,
                           self.val_ap_raw, self.seconds)

    def _save_final(self, path: Path) -> None:
        summary = {"steps": self.step, "skipped": self.skipped,
                   "final_loss": None if math.isnan(self.last_loss) else self.last_loss,
                   "val_ap": self.val_ap, "val_ap_raw": self.val_ap_raw, "train_seconds": round(self.seconds, 1),
                   "train_config": config_to_dict(self.config)}
        self.model.save(path, metadata={"training": summary})
        save_config(self.config, path.with_name("train_config.yaml"))
        if self.log is not None:
            self.log.write_summary(summary)
        if self.config.ship_to:
            ship = Path(self.config.ship_to).expanduser()
            if self.skipped >= self.step:  # the head is still its random initialisation
                raise TrainingError(
                    f"ship_to={str(ship)!r}: not replaced: all {self.step} steps were skipped "
                    f"(see the warnings); the untrained model is only in {path}"
                )
            self.model.save(ship, metadata={"training": summary})
            log.info("shipped model written to %s", ship)
        if not math.isnan(self.last_loss):
            log.info("done: %d steps, final loss %.4f, %s", self.step, self.last_loss, path)


def _changed_keys(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """``key (saved value, now current value)`` for every dotted key whose value differs."""
    changed = []
    for key, old in saved.items():
        new = current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += _changed_keys(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(f"{prefix}{key} ({old!r}, now {new!r})")
    return changed


def train(config: TrainConfig, *, resume: bool = False) -> TrainResult:
    return Trainer(config, resume=resume).run()
