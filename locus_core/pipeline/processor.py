"""The core objects behind the node and bag replay: model engine, landmark map, localizer.

Callers convert their inputs to ``PosedFrame`` and hand them here; everything that touches the
model or the map happens in this class, under one lock, so that requests (save, load, set mode)
and a worker thread never see a half-updated map, and no map replaces keyframes mapped since the
last save. ``counts`` alone reads without the lock: a diagnostics timer must not wait out an
inference.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.data.frame import PosedFrame
from locus_core.pipeline.errors import PipelineError


class FrameProcessor:
    """Loads the model once, on the runtime ``device`` resolves to; holds the current map and a
    localizer over it.

    Args:
        model_spec: what ``locus_core.models.load_model`` accepts ("default", a path, "backbone:NAME").
        device: auto | cpu | cuda | onnxruntime | tensorrt (``locus_core.runtime.create_engine``:
            an unavailable runtime falls back to the next one; ``runtime`` and ``fallbacks`` say
            what was used and why).
        localizer_config: YAML file of LocalizerConfig overrides, or "" for the defaults.
        precision: fp32 | bf16 | int8 (``create_engine``: int8 runs ONNX Runtime with int8
            MatMul/Gemm layers, bf16 eager PyTorch under autocast, where they are available).
        overrides: "KEY=VALUE" LocalizerConfig overrides applied over ``localizer_config``.

    Raises:
        LocusError: the model cannot be loaded, ``device`` or ``precision`` is unknown, the config
            is invalid.
    """

    def __init__(
        self,
        model_spec: str,
        device: str = "auto",
        localizer_config: str | Path = "",
        precision: str = "fp32",
        *,
        overrides: Sequence[str] = (),
    ) -> None:
        from locus_core.config import load_config
        from locus_core.mapping import LocalizerConfig
        from locus_core.models import load_model
        from locus_core.runtime import create_engine

        self.lock = threading.RLock()
        self.config = load_config(LocalizerConfig, _path(localizer_config) if localizer_config else None, list(overrides))
        self.model = load_model(model_spec).eval()
        self.engine = create_engine(self.model, device, precision=precision)
        self.map: Any = None  # locus_core.mapping.LandmarkMap
        self.map_path: Path | None = None
        self._localizer: Any = None
        self._tracker: Any = None  # locus_core.mapping.tracking.Tracker over _localizer
        self._counts = (0, 0)  # (keyframes, landmarks), set under the lock whenever the map changes
        self._unsaved = 0  # keyframes inserted since the map was made, loaded or last saved

    @property
    def runtime(self) -> str:
        """The runtime the model runs on (cpu, cuda, onnxruntime, tensorrt, onnxruntime-int8, cpu-bf16, ...)."""
        return self.engine.name

    @property
    def fallbacks(self) -> list[str]:
        """Why faster runtimes than ``runtime`` were not used ("runtime: reason"), in order."""
        return list(self.engine.fallbacks)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the model reads: ``localize`` resizes frames to it first (``models.extract.model_input``)."""
        return (int(self.engine.input_size[0]), int(self.engine.input_size[1]))

    @property
    def has_map(self) -> bool:
        return self.map is not None

    @property
    def unsaved_keyframes(self) -> int:
        """Keyframes inserted since the map was made, loaded or last saved: what replacing the map
        (``load_map``, ``use_map``, ``new_map``) would lose, so those refuse while there are any."""
        return self._unsaved

    def _refuse_to_lose_keyframes(self) -> None:
        if self._unsaved:
            n = self._unsaved
            raise PipelineError(f"{n} keyframe{'s' * (n > 1)} mapped since the map was last saved would be lost; "
                                f"save them first")

    def load_map(self, path: str | Path, *, to_localize: bool = False) -> None:
        """Replace the map by the one at ``path``; on failure the current map stays (LocusError raised).
        ``to_localize``: a map without keyframes is refused (PipelineError) before it replaces any."""
        from locus_core.mapping import LandmarkMap

        self._refuse_to_lose_keyframes()  # before reading the map, too: ``_use`` would refuse it after
        landmark_map = LandmarkMap.load(_path(path), expected_model_hash=self.model.hash)
        if to_localize and len(landmark_map.keyframes) == 0:
            raise PipelineError(f"{path}: the map has no keyframes, nothing to localize in")
        self.use_map(landmark_map, _path(path))

    def use_map(self, landmark_map: Any, path: Path | None = None) -> None:
        """Replace the map by ``landmark_map`` (a loaded ``LandmarkMap`` of this model, read from ``path``)."""
        from locus_core.mapping import Localizer

        localizer = Localizer(landmark_map, self.engine, self.config)
        with self.lock:
            self._use(landmark_map, localizer, path)

    def new_map(self, save_to: str | Path | None = None) -> None:
        """An empty map for mapping mode (keyframes are inserted as posed frames arrive).

        Raises:
            MapError: the map could not be saved to ``save_to`` (a folder that is not a map): said
                before mapping starts rather than when the map is saved.
        """
        from locus_core.mapping import LandmarkMap, Localizer

        self._refuse_to_lose_keyframes()
        if save_to:
            self.check_save_target(save_to)
        # The same identity build_map records, so maps made by the node and by `locus map build` mix.
        empty = LandmarkMap.for_model(self.model)
        empty.sources.append({"name": "locus_localizer mapping mode"})
        with self.lock:
            self._use(empty, Localizer(empty, self.engine, self.config), None)

    def _use(self, landmark_map: Any, localizer: Any, path: Path | None) -> None:
        from locus_core.mapping.tracking import Tracker

        self._refuse_to_lose_keyframes()  # again under the lock: a keyframe may have come in meanwhile
        self.map, self._localizer, self.map_path = landmark_map, localizer, path
        self._unsaved = 0
        self._tracker = Tracker(localizer)  # a new map: the last pose means nothing in it
        self._recount()

    @staticmethod
    def holds_map(path: str | Path) -> bool:
        """Whether ``path`` holds a saved map (to load or extend), not a place for a new one; an
        empty path (an emptied ``map_path``) holds none."""
        from locus_core.mapping.store import is_map

        return bool(str(path)) and is_map(_path(path))

    @staticmethod
    def check_save_target(path: str | Path) -> None:
        """Raise a ``MapError`` naming ``path`` unless a map may be saved there (absent, empty, or a
        map: saving replaces the folder whole)."""
        from locus_core.mapping.store import check_replaceable

        check_replaceable(_path(path))

    def save_map(self, path: str | Path) -> Path:
        with self.lock:
            if self.map is None:
                raise PipelineError("no map to save: load one or switch to mapping mode first")
            if self._localizer is not None:
                self._localizer.finish_mapping()
            self.map.save(_path(path))
            self.map_path = _path(path)
            self._unsaved = 0
            return self.map_path

    def localize(self, frame: PosedFrame, odometry: np.ndarray | None = None) -> Any:
        """``locus_core.mapping.Localization`` of ``frame``, the next frame of a stream (``frame.stamp``:
        tracked from the previous one's pose, moved by ``odometry`` (T_odom_cam at its stamp) where
        given, where LocalizerConfig.track_period_s allows). Never raises for a bad image."""
        with self.lock:
            if self._localizer is None:
                raise PipelineError("no map loaded: set map_path or call ~/load_map")
            return self._tracker.localize(frame, odometry)

    def warm_up(self) -> None:
        """Localize and track one synthetic frame (noise, a wall 2 m away) and forget it: a model
        runtime's first run allocates its buffers, and thread pools and modules start on first use, so
        a fresh process's first frame took 0.3-0.7 s instead of ~60 ms. For callers that time what
        follows (a bag replay's clock, a robot's first frame)."""
        h, w = self.input_size
        frame = PosedFrame(
            rgb=np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8),
            depth=np.full((h, w), 2.0, np.float32),
            K=np.array([[w, 0.0, (w - 1) / 2], [0.0, w, (h - 1) / 2], [0.0, 0.0, 1.0]]),
            T_world_cam=None,
            frame_id="warm-up",
        )
        with self.lock:
            if self._localizer is None:
                raise PipelineError("no map loaded: load one before warming up")
            self._localizer.localize(frame)
            self._localizer.track(frame, np.eye(4))

    def reset_tracking(self) -> None:
        """The next frame is localized in full: the stream was reset or left (the node's ~/reset, a
        mode change), so the last frame's pose says nothing of the next one's."""
        with self.lock:
            if self._tracker is not None:
                self._tracker.reset()

    def insert_keyframe(self, frame: PosedFrame) -> bool:
        """Mapping mode: add ``frame`` (posed in the map frame) when it shows a new viewpoint."""
        with self.lock:
            if self._localizer is None:
                raise PipelineError("no map to insert into: switch to mapping mode first")
            before = len(self.map.keyframes)
            try:
                return bool(self._localizer.insert_keyframe(frame))
            finally:  # a failed insert may have changed the map all the same
                self._recount()
                self._unsaved += self._counts[0] - before

    def counts(self) -> tuple[int, int]:
        """(keyframes, landmarks) of the current map; zeros without one. Does not wait for the lock
        (a running inference holds it): the counts as of the map's last change."""
        return self._counts

    def _recount(self) -> None:
        self._counts = (len(self.map.keyframes), int(self.map.num_landmarks))

    def geometry(self, max_points: int) -> tuple[np.ndarray, np.ndarray]:
        """Landmark positions (<= max_points, evenly subsampled) and keyframe positions, map frame."""
        from locus_core.mapping.landmarks import REMOVED

        with self.lock:
            if self.map is None:
                return np.zeros((0, 3)), np.zeros((0, 3))
            active = np.flatnonzero(self.map.landmarks.anchor != REMOVED)
            points = self.map.positions(active) if active.size else np.zeros((0, 3))
            keyframes = self.map.keyframes.centres.copy()
        step = max(1, int(np.ceil(len(points) / max_points)))
        return points[::step], keyframes


def _path(path: str | Path) -> Path:
    """``path`` with ``~`` expanded: paths from ROS parameter files and service requests reach here
    without a shell (as ``load_model`` does for checkpoints)."""
    return Path(path).expanduser()
