from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from locus_core.config import config_to_dict
from locus_core.models.head import LocusHead
from locus_core.models.model import LocusModel
from locus_core.training import distributed
from locus_core.training.config import TrainConfig
from locus_core.training.errors import TrainingError
from locus_core.training.landmarks import batch_masks
from locus_core.training.trainer import step_loss, train

ROOT = Path(__file__).resolve().parents[3]
B, C, H, W = 4, 16, 6, 8


def _problem() -> tuple[LocusHead, torch.Tensor, object]:
    """A head, backbone features of B frames and masks over B*H*W patches on a random point cloud."""
    torch.manual_seed(0)
    head = LocusHead(C, dim=8, hidden=16, layers=1, heads=2, scales=2)
    feats = torch.randn(B, C, H, W)
    g = torch.Generator().manual_seed(1)
    points = torch.rand(B, H * W, 3, generator=g)
    # depth/K/T such that every landmark is visible everywhere (depth far behind every point)
    depth = torch.full((B, 16, 16), 100.0)
    K = torch.tensor([[1e-3, 0, 8], [0, 1e-3, 8], [0, 0, 1]]).expand(B, 3, 3).contiguous()
    T = torch.eye(4).expand(B, 4, 4).contiguous()
    masks = batch_masks(points, depth, K, T, radii=(0.2, 0.4), kappa=10.0, landmarks=8,
                        min_separation=0.1, patch_keep=0.5, visibility_tolerance=0.05, seed=5)
    return head, feats, masks


def _worker(rank: int, out: str) -> None:
    os.environ.update(WORLD_SIZE="2", RANK=str(rank))
    torch.set_num_threads(1)
    # A file store, not a TCP port found free beforehand: another process may take that port first.
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=2)
    try:
        head, feats, masks = _problem()
        ddp = torch.nn.parallel.DistributedDataParallel(head)
        share = B // 2
        gathered = distributed.gather_shards(ddp(feats[rank * share : (rank + 1) * share]))
        loss, _ = step_loss(gathered, masks, 0.01)
        loss.backward()
        grads = {k: p.grad.clone() for k, p in head.named_parameters()}
        torch.save({"loss": loss.detach(), "grads": grads}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_give_the_single_process_loss_and_gradients(tmp_path: Path) -> None:
    head, feats, masks = _problem()
    assert masks.num_positives > 0
    loss, _ = step_loss(head(feats), masks, 0.01)
    loss.backward()
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
        for name, p in head.named_parameters():
            torch.testing.assert_close(got["grads"][name], p.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_torchrun_cli_matches_a_single_process_run(make_config: Callable[[Path], TrainConfig], tmp_path: Path) -> None:
    train(make_config(tmp_path / "single"))
    config_file = tmp_path / "ddp.yaml"
    config_file.write_text(yaml.safe_dump(config_to_dict(make_config(tmp_path / "ddp"))))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # --standalone: torchrun binds a free port itself and its workers use that store (a port found
    # free beforehand could be taken by another process before torchrun bound it); on the loopback
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1",
           "--nproc_per_node=2", "-m", "locus_core.cli.main", "train", "--config", str(config_file)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    def losses(run: Path) -> list[float]:
        with (run / "train_log.csv").open() as f:
            return [float(r["loss"]) for r in csv.DictReader(f)]

    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "single"), rel=1e-5)
    a = LocusModel.load(tmp_path / "ddp" / "model.pt").head.state_dict()
    b = LocusModel.load(tmp_path / "single" / "model.pt").head.state_dict()
    for name in a:
        x, y = a[name], b[name]
        if name.endswith("in_proj_bias"):
            # The attention key bias cannot change the softmax: its gradient is rounding noise,
            # which Adam normalises into full-size steps of arbitrary sign. Compare q and v only.
            third = x.numel() // 3
            x, y = torch.cat([x[:third], x[2 * third :]]), torch.cat([y[:third], y[2 * third :]])
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6, msg=name)


def test_global_batch_must_split_evenly(tiny_config: TrainConfig) -> None:
    from locus_core.training.config import validate_config

    with pytest.raises(TrainingError, match="batch_frames=4.*divisible by the number of processes \\(3\\)"):
        validate_config(tiny_config, world_size=3)
