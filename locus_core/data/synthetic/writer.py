"""Write a synthetic scene to disk in the 7-Scenes-style layout the data loaders read."""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from locus_core.data.formats.tsdf import PARTIAL_SCENE_FILE, SCENE_FILE
from locus_core.data.synthetic.config import SceneConfig
from locus_core.data.synthetic.errors import SyntheticError
from locus_core.data.synthetic.scene import GENERATOR, SyntheticScene, check_size

FRAME_FILE = re.compile(r"frame-\d{6}\.(color\.png|depth\.png|pose\.txt|segm\.png|instance\.png)")
DEPTH_SCALE = 1000.0  # depth PNG units per metre (uint16 millimetres, 0 = invalid)
WORKERS = 2


def generate_scene(out_dir: str | os.PathLike[str], *, seed: int = 0, rooms: int = 3, frames: int = 120,
                   size: tuple[int, int] = (240, 320), config: SceneConfig | None = None) -> Path:
    """Render ``frames`` views along the scene's loop into ``out_dir`` and return it.

    Files: ``camera-intrinsics.txt`` (3x3), per frame ``frame-%06d.color.png`` (RGB),
    ``.depth.png`` (uint16 mm, 0 = invalid), ``.pose.txt`` (4x4 camera-to-world, OpenCV axes),
    ``.segm.png`` (uint16 class ids) and ``.instance.png`` (uint16 instance ids, 0 = none), and
    ``scene.json`` written last. ``scene.json.tmp`` is there from before the first file is
    removed or written until then: an interrupted run leaves a folder the readers refuse and a
    re-run rewrites. ``seed`` and ``rooms`` override those of ``config``. An existing synthetic
    scene in ``out_dir`` (complete or interrupted) is replaced; any other non-empty folder is refused.

    Raises:
        SyntheticError: bad rooms/frames/size, ``out_dir`` holds something else or cannot be written.
    """
    import cv2

    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise SyntheticError(f"frames must be a positive integer, got {frames!r}")
    H, W = check_size(size)
    out = Path(out_dir).expanduser()  # --out=~/x: no shell expanded it
    scene = SyntheticScene(seed, rooms, config)
    # a file where a folder is needed, no permission, a full disk: the folder named, not a traceback
    try:
        _prepare(out)
        K = scene.intrinsics((H, W))
        np.savetxt(out / "camera-intrinsics.txt", K, fmt="%.10f")
        png = [cv2.IMWRITE_PNG_COMPRESSION, 1]

        def write(i: int, T: np.ndarray) -> None:
            rgb, depth, semantic, instance = scene.render(T, K, (H, W))
            stem = out / f"frame-{i:06d}"
            millimetres = np.nan_to_num(depth * DEPTH_SCALE, nan=0.0)
            millimetres = np.where(millimetres < 65535.5, np.round(millimetres), 0).astype(np.uint16)
            for suffix, image in ((".color.png", np.ascontiguousarray(rgb[..., ::-1])),
                                  (".depth.png", millimetres),
                                  (".segm.png", semantic.astype(np.uint16)),
                                  (".instance.png", instance.astype(np.uint16))):
                if not cv2.imwrite(f"{stem}{suffix}", image, png):
                    raise SyntheticError(f"{stem}{suffix}: could not write the image")
            np.savetxt(f"{stem}.pose.txt", T, fmt="%.10f")

        # numpy and libpng release the GIL: two frames at a time use both cores of a small machine
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for _ in pool.map(write, range(frames), scene.trajectory(frames)):
                pass
        meta = scene.describe() | {"frames": int(frames), "size": [H, W], "depth_scale": DEPTH_SCALE,
                                   "intrinsics": K.tolist()}
        partial = out / PARTIAL_SCENE_FILE
        partial.write_text(json.dumps(meta, indent=1))
        os.replace(partial, out / SCENE_FILE)
    except OSError as exc:
        raise SyntheticError(f"{out}: cannot write the scene ({exc.strerror or exc})") from None
    return out


def _is_scene(out: Path, names: set[str]) -> bool:
    """Whether ``out`` holds a synthetic scene, complete (our scene.json) or interrupted (the marker)."""
    if PARTIAL_SCENE_FILE in names:
        return True
    try:
        return json.loads((out / SCENE_FILE).read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):  # none, unreadable, or not a JSON object
        return False


def _prepare(out: Path) -> None:
    """Make ``out`` a folder to write a scene into: new, empty, or a previous synthetic scene
    (cleared), marked as a scene in progress."""
    if out.exists() and not out.is_dir():
        raise SyntheticError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    names = {p.name for p in out.iterdir()}
    if names and not _is_scene(out, names):
        raise SyntheticError(f"{out}: folder is not empty and holds no synthetic scene; "
                             "choose a new or empty folder")
    # The marker before anything is removed: from here until scene.json is renamed into place, an
    # interruption leaves a folder that readers refuse and the next run recognises as its own.
    (out / PARTIAL_SCENE_FILE).write_text(json.dumps({"generator": GENERATOR}))
    (out / SCENE_FILE).unlink(missing_ok=True)
    for name in names:
        if FRAME_FILE.fullmatch(name) or name == "camera-intrinsics.txt":
            (out / name).unlink()
