"""Every set in ../shared/data loads, and its depth, intrinsics and poses agree (skips when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from locus_core.data import FormatError, open_dataset
from locus_core.data.consistency import reprojection_median

SETS = {
    # name: (format, frames, selection for the check)
    "7scenes-redkitchen": ("7scenes", 500, "600:640"),
    "realsense-desk": ("7scenes", 50, None),
    "labelfusion-shelf": ("labelfusion", 15, None),
    "slambook-room": ("slambook", 5, None),
}


@pytest.mark.parametrize("name", sorted(SETS))
def test_shared_set_loads(shared_data: Path, name: str) -> None:
    fmt, count, _ = SETS[name]
    ds = open_dataset(shared_data / name)
    assert ds.format == fmt and len(ds) == count and ds.image_size == (480, 640)
    frame = ds[len(ds) // 2]
    assert frame.rgb.shape == (480, 640, 3) and 0.2 < np.isfinite(frame.depth).mean() <= 1
    assert 0.3 < np.nanmedian(frame.depth) < 5
    if name == "labelfusion-shelf":
        assert set(np.unique(frame.semantic)) <= {0, 48, 132}


@pytest.mark.parametrize("name", ["7scenes-redkitchen", "realsense-desk", "labelfusion-shelf"])
def test_depth_reprojects_between_nearby_frames(shared_data: Path, name: str) -> None:
    _, _, selection = SETS[name]
    ds = open_dataset(shared_data / name, selection)
    frames = [ds[k] for k in range(min(len(ds), 10))]
    assert reprojection_median(frames) <= 0.02


def test_bag_without_images_is_refused_by_name(shared_data: Path) -> None:
    with pytest.raises(FormatError, match=r"nav2_turtlebot\.mcap: no colour image topic \(topics: /odom"):
        open_dataset(shared_data / "bags" / "nav2_turtlebot.mcap")
