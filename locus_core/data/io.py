"""Reading images and small text files, with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from locus_core.data.errors import DataFileError, FormatError


def _imread(path: Path, flags: int) -> np.ndarray:
    import cv2

    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    with path.open("rb") as f:
        head = f.read(2)
        f.seek(max(0, path.stat().st_size - 64))
        tail = f.read()
    # OpenCV decodes a JPEG cut short (a recording stopped by a full disk) as a partly grey image,
    # warning on stderr only. Its compressed data cannot hold FFD9, so the marker's absence is proof.
    if head == b"\xff\xd8" and b"\xff\xd9" not in tail:
        raise DataFileError(f"{path}: truncated JPEG (no end-of-image marker)")
    image = cv2.imread(str(path), flags)
    if image is None:
        raise DataFileError(f"{path}: cannot read image (corrupt or unsupported)")
    return image


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any image OpenCV reads (grey images are replicated).

    Pixels are as stored: a JPEG's EXIF orientation is not applied, since depth images (read as
    stored) are registered to the stored pixels, not to the rotated view.
    """
    import cv2

    image = _imread(Path(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return np.ascontiguousarray(image[:, :, ::-1])


def read_raw(path: Path) -> np.ndarray:
    """Pixel values as stored (e.g. uint16 depth or labels), single channel."""
    import cv2

    image = _imread(Path(path), cv2.IMREAD_UNCHANGED)
    if image.ndim == 3:
        raise DataFileError(f"{path}: expected a single-channel image, got {image.shape[2]} channels")
    return image


def read_depth_raw(path: Path) -> np.ndarray:
    """A depth image's integer codes, single channel (every format here stores them in 16 bits)."""
    raw = read_raw(path)
    # 8 bits cannot hold depth in millimetres (a normalised preview?), and float is metres, not codes
    if raw.dtype != np.uint16:
        raise DataFileError(f"{path}: depth must be a 16-bit image, got {raw.dtype}")
    return raw


def depth_from_raw(raw: np.ndarray, scale: float, *, invalid: tuple[int, ...] = (0,),
                   min_depth: float = 0.0) -> np.ndarray:
    """Integer depth image → float32 metres (``raw / scale``), NaN at ``invalid`` codes or < min_depth."""
    depth = raw.astype(np.float32) / np.float32(scale)
    bad = (depth < min_depth) | ~np.isfinite(depth)
    for code in invalid:  # a few codes: a comparison each is several times faster than np.isin
        bad |= raw == code
    depth[bad] = np.nan
    return depth


def depth_to_mm(depth: np.ndarray) -> np.ndarray:
    """(H, W) metres → uint16 millimetres as RGB-D drivers publish them, 0 = invalid: NaN, <= 0, and
    beyond 65.535 m (clipped, it would be a false reading at the range's end)."""
    mm = np.round(np.nan_to_num(np.asarray(depth, np.float64), nan=0.0, posinf=0.0, neginf=0.0) * 1000.0)
    return np.where((mm > 0) & (mm <= 65535), mm, 0).astype(np.uint16)


def read_labels(path: Path) -> np.ndarray:
    """(H, W) int32 label image (uint8 or uint16 PNG)."""
    return read_raw(path).astype(np.int32)


def read_text(path: Path) -> str:
    """``path``'s text; FormatError naming it when it does not decode (UTF-16 from PowerShell's ``>``)."""
    try:
        return path.read_text()
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not a text file ({exc})") from None


def read_matrix(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A whitespace-separated numeric matrix of ``shape`` (float64)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except ValueError as exc:
        raise FormatError(f"{path}: not a numeric matrix ({exc})") from None
    if values.size != shape[0] * shape[1]:
        raise FormatError(f"{path}: expected {shape[0]}x{shape[1]} numbers, found {values.size}")
    return values.reshape(shape)


def read_intrinsics(path: Path) -> np.ndarray:
    """3x3 K from a text file holding a 3x3 or 4x4 matrix (ScanNet writes 4x4)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    count = len(read_text(path).split())
    return check_intrinsics(read_matrix(path, (4, 4) if count == 16 else (3, 3))[:3, :3], str(path))


def check_intrinsics(K: np.ndarray, source: str) -> np.ndarray:
    """``K`` if it is a pinhole matrix (finite, positive focal lengths), else FormatError naming ``source``.
    Readers check at open: each frame's own check would refuse every frame, naming frames, not the file."""
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1:
        raise FormatError(f"{source}: not a pinhole intrinsics matrix: {K.tolist()}")
    return K


def intrinsics_from_values(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)


def parse_intrinsics_option(value: str | Path | np.ndarray) -> np.ndarray:
    """The ``intrinsics=`` option: a 3x3 array, a file path, or ``"fx,fy,cx,cy"``."""
    if isinstance(value, np.ndarray):
        return np.asarray(value, dtype=np.float64).reshape(3, 3)
    text = str(value)
    parts = text.replace(" ", "").split(",")
    if len(parts) == 4:
        try:
            return check_intrinsics(intrinsics_from_values(*map(float, parts)), f"intrinsics {text!r}")
        except ValueError:
            pass
    if Path(text).is_file():
        return read_intrinsics(Path(text))
    raise FormatError(f"intrinsics {text!r}: expected a file or fx,fy,cx,cy")


def files_under(folder: Path) -> list[Path]:
    """The files under ``folder``, also under symlinked subfolders (a scene whose color/ or depth/,
    or a scan's inner folders, link to where they were unpacked; ``Path.rglob`` does not follow
    them), each real folder once so that a link to an ancestor does not loop; dangling links left out."""
    files, seen = [], set()
    for sub, subfolders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(sub)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        files += [Path(sub, name) for name in names]
    return [f for f in files if f.is_file()]
