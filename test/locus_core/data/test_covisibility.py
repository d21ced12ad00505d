from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rgbd_scene import make_scene, write_tsdf

from locus_core.data import open_dataset
from locus_core.data.covisibility import covisibility_matrix


def test_overlap_of_a_plane_seen_while_moving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    ds = open_dataset(write_tsdf(tmp_path / "seq", make_scene(n=6)))
    M = covisibility_matrix(ds, stride=4, size=(48, 64))
    assert M.shape == (6, 6) and M.dtype == np.float32
    assert np.allclose(np.diag(M), 1)
    assert (M >= 0).all() and (M <= 1).all()
    # The camera slides sideways: overlap shrinks with distance along the sequence.
    assert M[0, 1] > M[0, 3] > M[0, 5] and M[0, 1] > 0.8
    # Cached: a second call reads the file (proved by planting a different matrix there).
    (cached,) = (tmp_path / "cache").glob("covisibility-seq-*.npy")
    np.save(cached, np.full((6, 6), 0.5, np.float32))
    assert (covisibility_matrix(ds, stride=4, size=(48, 64)) == 0.5).all()
    # Other parameters or another selection are another entry.
    assert covisibility_matrix(ds, stride=4, size=(48, 64), tolerance=0.1)[0, 1] > 0.8
    assert covisibility_matrix(ds[:3], stride=4, size=(48, 64)).shape == (3, 3)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3


def test_occluded_points_do_not_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    scene = make_scene(n=2)
    scene.poses[1] = scene.poses[0].copy()
    scene.depth[1] = scene.depth[0].copy()
    scene.depth[1][:, :32] = 0.5  # something close in front of the left half in frame 1
    ds = open_dataset(write_tsdf(tmp_path / "seq", scene))
    M = covisibility_matrix(ds, stride=4, size=(48, 64), cache=False)
    assert M[0, 1] == pytest.approx(0.5, abs=0.01)
    assert M[1, 0] == pytest.approx(1.0)  # what frame 1 sees lies in front of frame 0's surface


def test_cache_is_not_reused_for_other_depth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Depth regenerated into the same folder with the same poses: the cached matrix is stale."""
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    scene = make_scene(n=2)
    scene.poses[1] = scene.poses[0].copy()
    scene.depth[1] = scene.depth[0].copy()
    seq = write_tsdf(tmp_path / "seq", scene)
    assert covisibility_matrix(open_dataset(seq), stride=4, size=(48, 64))[0, 1] == pytest.approx(1.0)
    scene.depth[1][:, :32] = 0.5  # re-fused: something close now hides the left half in frame 1
    write_tsdf(seq, scene)
    M = covisibility_matrix(open_dataset(seq), stride=4, size=(48, 64))
    assert M[0, 1] == pytest.approx(0.5, abs=0.01)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_a_cache_file_that_cannot_be_written_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A full disk: the cut-short tmpXXXX.npy of NamedTemporaryFile(delete=False) was left in the cache
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    ds = open_dataset(write_tsdf(tmp_path / "seq", make_scene(n=2)))

    def full(file: object, array: np.ndarray, *args: object, **kwargs: object) -> None:
        file.write(b"\x93NUMPY")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(OSError, match="No space left"):
        covisibility_matrix(ds, stride=4, size=(48, 64))
    assert list((tmp_path / "cache").iterdir()) == []
