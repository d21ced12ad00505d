"""Image readers: pixels as stored, whatever the file's metadata says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from locus_core.data.errors import DataFileError
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


def test_a_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    """A JPEG cut short (a recording stopped by a full disk): OpenCV decodes what is there and greys
    the rest, with a warning on stderr only, so half an image was read as a frame."""
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "frame.jpg", quality=95)
    data = (tmp_path / "frame.jpg").read_bytes()
    assert read_rgb(tmp_path / "frame.jpg").shape == (48, 64, 3)
    (tmp_path / "frame.jpg").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataFileError, match=r"frame\.jpg: truncated JPEG \(no end-of-image marker\)"):
        read_rgb(tmp_path / "frame.jpg")
