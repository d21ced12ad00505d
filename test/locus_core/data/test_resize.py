from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.data import PosedFrame, resize_frame
from locus_core.data.resize import resize_depth


def frame(H: int = 48, W: int = 64) -> PosedFrame:
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 4, (H, W)).astype(np.float32)
    depth[::3, ::5] = np.nan
    K = np.array([[60.0, 0, 31.5], [0, 62.0, 23.5], [0, 0, 1]])
    return PosedFrame(rgb=rng.integers(0, 255, (H, W, 3), dtype=np.uint8), depth=depth, K=K,
                      T_world_cam=np.eye(4), frame_id="f", index=3,
                      semantic=rng.integers(0, 5, (H, W)).astype(np.int32), instance=None)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(4, 120), w=st.integers(4, 160))
def test_resize_keeps_geometry(h: int, w: int) -> None:
    f = frame()
    r = resize_frame(f, (h, w))
    assert r.rgb.shape == (h, w, 3) and r.depth.shape == (h, w) and r.semantic.shape == (h, w)
    assert r.depth.dtype == np.float32 and r.semantic.dtype == np.int32 and r.instance is None
    assert r.index == 3 and r.T_world_cam is f.T_world_cam
    # Nearest neighbour: every output depth/label is a source value at the pixel under its centre,
    # and that pixel is where the scaled K says the same 3D ray lands.
    v, u = np.mgrid[0:h, 0:w]
    ray = np.linalg.solve(r.K, np.stack([u.ravel(), v.ravel(), np.ones(h * w)]))
    src = f.K @ ray
    cols = np.minimum(np.floor(src[0] + 0.5 + 1e-9), 63).astype(int)
    rows = np.minimum(np.floor(src[1] + 0.5 + 1e-9), 47).astype(int)
    np.testing.assert_array_equal(r.depth.ravel(), f.depth[rows, cols])
    np.testing.assert_array_equal(r.semantic.ravel(), f.semantic[rows, cols])
    depth, K = resize_depth(f, (h, w))  # the same geometry without the colour
    np.testing.assert_array_equal(depth, r.depth)
    np.testing.assert_array_equal(K, r.K)


def test_resize_same_size_is_identity() -> None:
    f = frame()
    assert resize_frame(f, (48, 64)) is f


def test_resize_scales_intrinsics_by_half() -> None:
    r = resize_frame(frame(), (24, 32))
    np.testing.assert_allclose(r.K, [[30.0, 0, 15.5], [0, 31.0, 11.5], [0, 0, 1]])
