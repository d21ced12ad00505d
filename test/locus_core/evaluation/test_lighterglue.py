"""XFeat + LighterGlue baseline: keypoint lifting on depth maps with holes."""

from __future__ import annotations

import numpy as np
import pytest

from locus_core.evaluation.lighterglue import keypoint_depth


def test_keypoint_depth_takes_the_median_of_valid_neighbours() -> None:
    depth = np.full((10, 10), 2.0, dtype=np.float32)
    depth[4:7, 4:7] = np.nan  # a hole under the keypoint
    depth[3, 3] = 0.0  # invalid, not a depth of zero
    depth[2, 2] = 9.0  # one outlier does not move a median
    z = keypoint_depth(depth, np.array([[5.0, 5.0], [0.0, 0.0], [9.4, 9.4]]), radius=2)
    assert z.tolist() == [2.0, 2.0, 2.0]


def test_keypoint_depth_is_nan_without_valid_depth_around() -> None:
    depth = np.full((10, 10), np.nan, dtype=np.float32)
    depth[0, 0] = 1.5
    z = keypoint_depth(depth, np.array([[8.0, 8.0], [1.0, 1.0]]), radius=1)
    assert np.isnan(z[0]) and z[1] == 1.5
    assert keypoint_depth(depth, np.zeros((0, 2))).shape == (0,)


def test_keypoint_depth_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="uv"):
        keypoint_depth(np.zeros((4, 4)), np.zeros((3, 3)))
