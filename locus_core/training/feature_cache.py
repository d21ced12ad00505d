"""Backbone features of every training frame, computed once and cached on disk.

The backbone is frozen, so its output for a frame never changes: caching it lets training run the
head only (this is what makes CPU training feasible). The price is that images cannot be augmented
per step. Files are keyed by backbone (name + a digest of its weights), input size, dataset path,
the data set's content (``PosedDataset.content_digest``) and frame id, and written atomically, so
concurrent runs and killed runs never read half a file.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from locus_core import geometry
from locus_core.data.dataset import PosedDataset
from locus_core.data.frame import PosedFrame
from locus_core.durable import atomic_write
from locus_core.errors import torch_load_failure
from locus_core.training.errors import TrainingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneTensors:
    """Everything training needs from one sequence, at the model's input size.

    Attributes:
        name: for logs and errors.
        feats: (N, C, h, w) float32 backbone features.
        depth: (N, H, W) float32 metres, NaN = invalid (resized with nearest neighbour).
        K: (N, 3, 3) float32 intrinsics of the resized frames.
        T_world_cam: (N, 4, 4) float32 camera-to-world poses.
        points: (N, h*w, 3) float32 world points of the patch centres, NaN = no valid depth.
        frame_ids: N frame ids.
    """

    name: str
    feats: torch.Tensor
    depth: torch.Tensor
    K: torch.Tensor
    T_world_cam: torch.Tensor
    points: torch.Tensor
    frame_ids: tuple[str, ...]

    def __len__(self) -> int:
        return self.feats.shape[0]


def backbone_digest(backbone: torch.nn.Module) -> str:
    """12 hex chars over the backbone's parameters and buffers (cache key: same name, other weights)."""
    h = hashlib.sha256()
    for key, value in sorted(backbone.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _image_tensor(frame: PosedFrame) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame.rgb)).permute(2, 0, 1).float() / 255.0


def load_scene(
    dataset: PosedDataset,
    *,
    name: str,
    dataset_key: str,
    backbone: torch.nn.Module,
    backbone_name: str,
    stride: int,
    input_size: tuple[int, int],
    cache_dir: Path,
    resize: Callable[[PosedFrame, tuple[int, int]], PosedFrame],
    batch_size: int = 8,
    progress: bool = False,
) -> SceneTensors:
    """Cached features + resized depth/K/pose of every frame of ``dataset``; computes what is missing.

    Args:
        dataset: posed RGB-D frames (each needs depth and a pose).
        name: shown in errors; dataset_key: identifies the sequence in the cache (its resolved path;
            its content by ``PosedDataset.content_digest``).
        backbone: frozen, ``forward(images (B,3,H,W) in [0,1]) -> (B,C,H//s,W//s)``.
        resize: ``locus_core.data.resize_frame``.
    Raises:
        TrainingError: a data set without poses, a frame without depth or pose.
    """
    if not dataset.has_poses:
        raise TrainingError(f"{name}: the data set has no camera poses; training needs posed RGB-D frames")
    H, W = input_size
    folder = (
        Path(cache_dir) / "features" / f"{backbone_name}-{backbone_digest(backbone)}-{H}x{W}"
        / f"{hashlib.sha256(dataset_key.encode()).hexdigest()[:16]}-{dataset.content_digest()}"
    )
    records: list[dict | None] = []
    missing: list[int] = []
    for i, frame_id in enumerate(_frame_ids(dataset)):
        path = folder / f"{frame_id}.pt"
        record = None
        if path.exists():
            try:
                record = torch.load(path, weights_only=True)
            except Exception as exc:  # a corrupt cache entry is recomputed, not fatal
                log.warning("feature cache %s unreadable (%s); recomputing", path, torch_load_failure(exc))
        records.append(record)
        if record is None:
            missing.append(i)
    if missing:
        log.info("%s: computing %s features of %d frames (cache: %s)", name, backbone_name, len(missing), folder)
        _compute(dataset, missing, records, folder, backbone, input_size, resize, batch_size, name, progress)
    feats = torch.stack([r["feats"] for r in records])
    depth = torch.stack([r["depth"] for r in records])
    K = torch.stack([r["K"] for r in records]).float()
    T = torch.stack([r["T_world_cam"] for r in records]).float()
    points = geometry.lift_patches(depth.double(), K.double(), T.double(), stride).float()
    if feats.shape[-2:] != (H // stride, W // stride):
        raise TrainingError(f"{name}: cached features {tuple(feats.shape)} do not match stride {stride}")
    return SceneTensors(name, feats, depth, K, T, points, tuple(r["frame_id"] for r in records))


def _frame_ids(dataset: PosedDataset) -> list[str]:
    """Cache names from source frame indices (known without reading images)."""
    return [f"frame-{int(i):06d}" for i in dataset.indices]


def _compute(
    dataset: PosedDataset,
    missing: list[int],
    records: list[dict | None],
    folder: Path,
    backbone: torch.nn.Module,
    input_size: tuple[int, int],
    resize: Callable[[PosedFrame, tuple[int, int]], PosedFrame],
    batch_size: int,
    name: str,
    progress: bool,
) -> None:
    from tqdm import tqdm

    ids = _frame_ids(dataset)
    bar = tqdm(total=len(missing), desc=f"features {name}", disable=not progress, mininterval=5)
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        frames = []
        for i in chunk:
            frame = dataset[i]
            if frame.depth is None or frame.T_world_cam is None:
                raise TrainingError(
                    f"{name}: frame {frame.frame_id} has no {'depth' if frame.depth is None else 'pose'};"
                    " training needs posed RGB-D frames"
                )
            frames.append(resize(frame, input_size))
        with torch.inference_mode():
            feats = backbone(torch.stack([_image_tensor(f) for f in frames]))
        for i, frame, f in zip(chunk, frames, feats):
            record = {
                "feats": f.float().clone(),
                "depth": torch.from_numpy(np.asarray(frame.depth, dtype=np.float32).copy()),
                "K": torch.from_numpy(np.asarray(frame.K, dtype=np.float64).copy()),
                "T_world_cam": torch.from_numpy(np.asarray(frame.T_world_cam, dtype=np.float64).copy()),
                "frame_id": ids[i],
            }
            # whole or absent: a run killed mid-write never leaves a cut-short file the next run loads
            atomic_write(folder / f"{ids[i]}.pt", partial(torch.save, record))
            records[i] = record
        bar.update(len(chunk))
    bar.close()
