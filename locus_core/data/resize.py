"""Resizing a frame to a model's input size while keeping its geometry exact."""

from __future__ import annotations

import dataclasses

import numpy as np

from locus_core.data.frame import PosedFrame


def scale_intrinsics(K: np.ndarray, old: tuple[int, int], new: tuple[int, int]) -> np.ndarray:
    """K for an image resized from ``old`` (H, W) to ``new`` (H, W), pixel centres at integers:
    u' = (u + 0.5) * sx - 0.5."""
    sy, sx = new[0] / old[0], new[1] / old[1]
    K = np.array(K, dtype=np.float64)
    K[0, 0] *= sx
    K[0, 1] *= sx
    K[1, 1] *= sy
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def _nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize by index (each output pixel copies the source pixel under its
    centre), so depth and labels never mix neighbours."""
    H, W = image.shape[:2]
    rows = np.minimum(((np.arange(size[0]) + 0.5) * H / size[0]).astype(np.int64), H - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * W / size[1]).astype(np.int64), W - 1)
    return np.ascontiguousarray(image[rows[:, None], cols[None, :]])


def resize_depth(frame: PosedFrame, size: tuple[int, int]) -> tuple[np.ndarray | None, np.ndarray]:
    """The geometry of ``resize_frame(frame, size)`` without resizing the colour: ``frame``'s depth at
    ``size`` (H, W), nearest-neighbour (None without depth), and K at that size."""
    H, W = int(size[0]), int(size[1])
    if H <= 0 or W <= 0:
        raise ValueError(f"resize: size must be positive (H, W), got {size}")
    old = (frame.height, frame.width)
    if old == (H, W):
        return frame.depth, frame.K
    depth = None if frame.depth is None else _nearest(frame.depth, (H, W))
    return depth, scale_intrinsics(frame.K, old, (H, W))


def resize_frame(frame: PosedFrame, size: tuple[int, int]) -> PosedFrame:
    """``frame`` at ``size`` (H, W): rgb with area (shrinking) or linear (enlarging) filtering,
    depth and labels nearest-neighbour, K scaled. Returns ``frame`` itself if already that size."""
    import cv2

    depth, K = resize_depth(frame, size)
    H, W = int(size[0]), int(size[1])
    old = (frame.height, frame.width)
    if old == (H, W):
        return frame
    shrink = H * W < old[0] * old[1]
    rgb = cv2.resize(frame.rgb, (W, H), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return dataclasses.replace(
        frame,
        rgb=rgb,
        depth=depth,
        semantic=None if frame.semantic is None else _nearest(frame.semantic, (H, W)),
        instance=None if frame.instance is None else _nearest(frame.instance, (H, W)),
        K=K,
    )
