"""The record every front end produces and every algorithm consumes: one posed RGB-D frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class PosedFrame:
    """One RGB-D frame with its calibration and (where known) its camera pose.

    Attributes:
        rgb: (H, W, 3) uint8, RGB order.
        depth: (H, W) float32 metres, NaN where invalid; None when the source has no depth.
        K: (3, 3) float64 pinhole intrinsics of ``rgb`` (depth is registered to it).
        T_world_cam: (4, 4) float64 camera-to-world pose, OpenCV camera axes (x right, y down,
            z forward); None when unknown (a query frame on a robot).
        frame_id: a name for messages and errors, e.g. ``frame-000600``.
        index: the frame's index in its source sequence (what ``--frames A:B:S`` selects on).
        stamp: time in seconds.
        semantic: (H, W) int32 class ids, 0 = background or unlabelled; None when unlabelled.
        instance: (H, W) int32 instance ids, 0 = none; None when unlabelled.
    """

    rgb: np.ndarray
    depth: np.ndarray | None
    K: np.ndarray
    T_world_cam: np.ndarray | None
    frame_id: str
    index: int = 0
    stamp: float = 0.0
    semantic: np.ndarray | None = None
    instance: np.ndarray | None = None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def has_depth(self) -> bool:
        return self.depth is not None

    @property
    def has_pose(self) -> bool:
        return self.T_world_cam is not None

    def validate(self) -> PosedFrame:
        """Check dtypes, shapes, intrinsics and pose rigidity. Depth may be missing everywhere (a
        covered or blinded camera, a depth stream still starting): such a frame is kept, with no
        3D points, as the node localizes it from RGB alone; a data set is not refused for it.

        Returns self, so readers can ``return PosedFrame(...).validate()``.
        Raises:
            FrameError: naming ``frame_id`` and what is wrong.
        """
        from locus_core.data.errors import FrameError
        from locus_core.data.poses import check_pose

        name = self.frame_id
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise FrameError(f"{name}: rgb must be (H, W, 3) uint8, got {self.rgb.shape} {self.rgb.dtype}")
        size = self.rgb.shape[:2]
        for label, image in (("depth", self.depth), ("semantic", self.semantic), ("instance", self.instance)):
            if image is not None and image.shape != size:
                raise FrameError(f"{name}: {label} is {image.shape[1]}x{image.shape[0]} but rgb is "
                                 f"{size[1]}x{size[0]}")
        if self.depth is not None:
            if self.depth.dtype != np.float32:
                raise FrameError(f"{name}: depth must be float32 metres, got {self.depth.dtype}")
        K = self.K
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise FrameError(f"{name}: intrinsics must be a finite 3x3 with positive focal lengths, got {K!r}")
        if self.T_world_cam is not None:
            check_pose(self.T_world_cam, name)
        return self
