"""Image readers: pixels as stored, whatever the file's metadata says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from locus_core.data.io import depth_from_raw, read_rgb

EXIF_ORIENTATION = 0x0112


def test_rgb_ignores_exif_orientation(tmp_path: Path) -> None:
    """Depth is read as stored, so RGB must be too: a rotated view would not align with it."""
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[:4, :8] = 255  # top left, at the bottom right if the 180° orientation were applied
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 3
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    read = read_rgb(tmp_path / "rotated.jpg")
    assert read.shape == (8, 16, 3)
    np.testing.assert_allclose(read.astype(float), rgb, atol=8)


def test_depth_from_raw_marks_every_invalid_code_and_short_ranges_missing() -> None:
    raw = np.array([[0, 500, 65535], [1000, 90, 4000]], np.uint16)
    depth = depth_from_raw(raw, 1000.0, invalid=(0, 65535), min_depth=0.1)
    np.testing.assert_array_equal(np.isnan(depth), [[True, False, True], [False, True, False]])
    np.testing.assert_allclose(depth[~np.isnan(depth)], [0.5, 1.0, 4.0])
    assert depth.dtype == np.float32 and np.isnan(depth_from_raw(raw, 1000.0)).sum() == 1
