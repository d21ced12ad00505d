"""Dense features of posed frames: resize to the model's input size, run it, keep the geometry.

The resized frame is returned with the features because its K and depth are what patch centres
must be lifted with (``locus_core.geometry.lift_patches(depth, K, T, model.stride)``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from locus_core.data.frame import PosedFrame
from locus_core.data.resize import resize_frame
from locus_core.models.errors import ModelError
from locus_core.models.model import LocusModel


def _check_rgb(frames: Sequence[PosedFrame]) -> None:
    for frame in frames:
        rgb = frame.rgb
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or not rgb.size:
            raise ModelError(f"frame {frame.frame_id}: expected rgb (H,W,3) uint8, got {rgb.shape} {rgb.dtype}")


def frames_to_images(frames: Sequence[PosedFrame], device: torch.device) -> torch.Tensor:
    """Same-size frames → (B,3,H,W) float32 RGB in [0,1] on ``device``."""
    _check_rgb(frames)
    rgb = torch.from_numpy(np.stack([frame.rgb for frame in frames])).to(device)
    return rgb.permute(0, 3, 1, 2).float().div_(255.0)


def _check_scale(model: LocusModel, scale: int) -> None:
    if not 0 <= scale < model.scales:
        raise ModelError(f"scale {scale} out of range: model {model.hash} has {model.scales} scale(s)")


def model_input(model: LocusModel, frame: PosedFrame) -> PosedFrame:
    """``frame`` as ``model`` reads it: at ``model.input_size`` (K scaled, depth nearest-neighbour),
    ``frame`` itself when already that size. A frame shrunk this way early (to send it to another
    process) gives the same features and geometry as the original.

    Raises:
        ModelError: rgb is not (H, W, 3) uint8 (cv2 would fail on it with its own error, and after
            resizing the message would give the resized shape, not the frame's).
    """
    _check_rgb([frame])
    return resize_frame(frame, model.input_size)


def extract_features(
    model: LocusModel, frame: PosedFrame, scale: int = 0
) -> tuple[torch.Tensor, PosedFrame]:
    """Features of one frame at ``model.input_size``.

    Returns:
        (D, h, w) unit-norm features (h, w = input size // stride) on the model's device, and the
        frame resized to ``model.input_size`` (K scaled, depth nearest-neighbour).
    """
    features, resized = extract_features_batch(model, [frame], scale)
    return features[0], resized[0]


def extract_features_batch(
    model: LocusModel, frames: Sequence[PosedFrame], scale: int = 0, *, batch_size: int = 8
) -> tuple[torch.Tensor, list[PosedFrame]]:
    """:func:`extract_features` for many frames, ``batch_size`` at a time.

    Returns:
        (N, D, h, w) features on the model's device and the N resized frames.
    """
    _check_scale(model, scale)
    if batch_size < 1:
        raise ModelError(f"batch_size must be positive, got {batch_size}")
    resized = [model_input(model, frame) for frame in frames]
    if not resized:
        h, w = (n // model.stride for n in model.input_size)
        return torch.empty(0, model.config.dim, h, w, device=model.device), []
    outputs = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(resized), batch_size):
                images = frames_to_images(resized[start : start + batch_size], model.device)
                outputs.append(model(images)[:, scale])
    finally:
        model.train(was_training)
    return torch.cat(outputs), resized
