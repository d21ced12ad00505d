from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from locus_core.evaluation.pose import match_quality, mutual_nearest, pose_error, select_pairs, summarize


def _T(rotvec_deg, t):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(np.radians(rotvec_deg)).as_matrix()
    T[:3, 3] = t
    return T


def test_pose_error_known_offsets() -> None:
    trans, rot = pose_error(_T([0, 0, 10], [0.3, 0, 0.4]), _T([0, 0, 0], [0, 0, 0]))
    assert trans == pytest.approx(0.5)
    assert rot == pytest.approx(10.0)
    assert pose_error(None, np.eye(4)) == (float("inf"), float("inf"))


def test_summarize_counts_failures_as_infinite() -> None:
    errors = np.array([[0.05, 1.0], [0.2, 1.0], [np.inf, np.inf]])
    s = summarize(errors)
    assert s["median_trans_m"] == pytest.approx(0.2)
    assert s["success_rate"] == pytest.approx(1 / 3)
    assert s["pairs"] == 3
    assert np.isnan(summarize(np.zeros((0, 2)))["median_rot_deg"])


def test_select_pairs_respects_bins() -> None:
    cov = np.array([[1, 0.2, 0.5, 0.9], [0.3, 1, 0.05, 0.8], [0.6, 0.1, 1, 0.45], [0.95, 0.7, 0.5, 1]])
    pairs = select_pairs(cov, bins=(0.1, 0.4, 0.7, 1.0), per_bin=5)
    got = {(p.i, p.j): p.covisibility for p in pairs}
    assert got == {(0, 1): 0.2, (0, 2): 0.5, (0, 3): 0.9, (1, 3): 0.7, (2, 3): 0.45}


def test_mutual_nearest() -> None:
    a = torch.eye(3)
    b = torch.tensor([[0.0, 1, 0], [1, 0, 0], [0.9, 0.1, 0]])
    ia, ib = mutual_nearest(a, torch.nn.functional.normalize(b, dim=-1))
    assert sorted(zip(ia.tolist(), ib.tolist())) == [(0, 1), (1, 0)]


def test_match_quality_pools_pairs() -> None:
    q = match_quality([np.array([0.01, 0.1, 0.3]), np.array([0.02])], inlier_m=0.05, rho=0.2)
    assert q["matches_per_pair"] == 2.0
    assert q["match_median_error_m"] == pytest.approx(0.06)
    assert q["match_within_inlier_m"] == 0.5
    assert q["match_within_rho"] == 0.75


def test_match_quality_without_matches_is_nan() -> None:
    assert np.isnan(match_quality([], 0.05, 0.2)["matches_per_pair"])
    q = match_quality([np.zeros(0)], 0.05, 0.2)
    assert q["matches_per_pair"] == 0 and np.isnan(q["match_within_rho"])
