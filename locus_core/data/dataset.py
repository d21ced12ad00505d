"""``PosedDataset``: a lazy sequence of posed RGB-D frames, the same for every source format."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import overload

import numpy as np

from locus_core.data.errors import DataError, FrameError
from locus_core.data.frame import PosedFrame
from locus_core.data.io import files_under

FrameLoader = Callable[[int], PosedFrame]


class PosedDataset(Sequence[PosedFrame]):
    """Frames of one sequence; images are read on ``__getitem__``, poses and intrinsics up front.

    Attributes:
        path: the folder or bag file it was opened from.
        name: a short name (the folder or file stem).
        format: the detected format ("7scenes", "labelfusion", "synthetic", "slambook", "tum",
            "scannet", "matterport", "rosbag").
        indices: source frame index of each item (what ``frames="A:B:S"`` selected on).
    """

    def __init__(
        self,
        *,
        path: Path,
        name: str,
        format: str,
        indices: Sequence[int],
        poses: np.ndarray | None,
        intrinsics: np.ndarray,
        image_size: tuple[int, int],
        loader: FrameLoader,
    ) -> None:
        """``loader(k)`` reads the k-th item (0 <= k < len(indices)); poses (N,4,4) or None,
        intrinsics (N,3,3) or (3,3) when shared; image_size (H, W) of every frame."""
        self.path = Path(path)
        self.name = name
        self.format = format
        self.indices = [int(i) for i in indices]
        n = len(self.indices)
        self._poses = None if poses is None else np.asarray(poses, dtype=np.float64).reshape(n, 4, 4)
        K = np.asarray(intrinsics, dtype=np.float64)
        self._intrinsics = np.broadcast_to(K, (n, 3, 3)) if K.shape == (3, 3) else K.reshape(n, 3, 3)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self._loader = loader

    def __len__(self) -> int:
        return len(self.indices)

    @overload
    def __getitem__(self, item: int) -> PosedFrame: ...
    @overload
    def __getitem__(self, item: slice) -> PosedDataset: ...

    def __getitem__(self, item: int | slice) -> PosedFrame | PosedDataset:
        if isinstance(item, slice):
            return self.subset(range(len(self))[item])
        k = int(item)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"{self.name}: item {item} out of range for {len(self)} frames")
        frame = self._loader(k)
        # The intrinsics are for image_size: a frame of another size (a second recording in the folder)
        # would be used with them, every 3D point off.
        if (frame.height, frame.width) != self.image_size:
            H, W = self.image_size
            raise FrameError(f"{frame.frame_id}: {frame.width}x{frame.height}, but the data set's images are "
                             f"{W}x{H}, the size its intrinsics are for")
        return frame

    def subset(self, positions: Sequence[int]) -> PosedDataset:
        """A dataset of the items at ``positions`` (sharing this one's reader)."""
        positions = list(positions)
        loader = self._loader
        return PosedDataset(
            path=self.path, name=self.name, format=self.format,
            indices=[self.indices[p] for p in positions],
            poses=None if self._poses is None else self._poses[positions],
            intrinsics=self._intrinsics[positions], image_size=self.image_size,
            loader=lambda k: loader(positions[k]),
        )

    def poses(self) -> np.ndarray:
        """(N, 4, 4) float64 camera-to-world poses, without reading any image."""
        if self._poses is None:
            raise DataError(f"{self.path}: this {self.format} data set has no camera poses")
        return self._poses.copy()

    @property
    def has_poses(self) -> bool:
        return self._poses is not None

    def intrinsics(self, i: int) -> np.ndarray:
        """(3, 3) float64 K of item i (at ``image_size``)."""
        return self._intrinsics[i].copy()

    def content_digest(self) -> str:
        """16 hex chars over the selected frames' poses and intrinsics and the name, size, mtime and
        ctime of the source's file, or of every file under its folder: what caches of computations on
        these frames are keyed by, so that a re-run SLAM, re-fused depth or a scene regenerated into
        the same folder is not served old results. ctime too: a copy that keeps the mtime (`cp -p`,
        `rsync -t`) of a file of the same size still changes it. The data set does not say which file
        each frame comes from, so every file counts; stat only, no image is read."""
        digest = hashlib.sha256()
        if self._poses is not None:
            digest.update(np.ascontiguousarray(self._poses).tobytes())
        digest.update(np.ascontiguousarray(self._intrinsics).tobytes())
        root = self.path.resolve()
        if root.is_file():
            files, base = [root], root.parent
        else:
            # through symlinked subfolders too: images re-exported under a linked depth/ count
            files, base = files_under(root), root
        for name, stat in sorted((str(file.relative_to(base)), file.stat()) for file in files):
            digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def __repr__(self) -> str:
        h, w = self.image_size
        return f"PosedDataset({self.format}, {self.path}, {len(self)} frames, {w}x{h})"
