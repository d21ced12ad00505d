from __future__ import annotations

import numpy as np
import pytest
import torch

from locus_core.evaluation.segmentation import knn_transfer, mean_iou, patch_labels, reidentification_accuracy


def test_mean_iou_known_answer() -> None:
    target = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    miou, per_class = mean_iou(pred, target)
    assert per_class == {0: 0.5, 1: pytest.approx(2 / 3)}
    assert miou == pytest.approx((0.5 + 2 / 3) / 2)
    assert mean_iou(target, target)[0] == 1.0


def test_patch_labels_majority() -> None:
    labels = np.zeros((4, 6), dtype=np.int32)
    labels[:2, :2] = 7
    labels[2:, 4:] = 3
    labels[3, 5] = 0
    assert patch_labels(labels, 2).tolist() == [7, 0, 0, 0, 0, 3]


def test_knn_transfer_and_reid() -> None:
    train = torch.eye(3)
    labels = np.array([5, 6, 7])
    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0], [0, 0.2, 1]]), dim=-1)
    assert knn_transfer(train, labels, q, k=1).tolist() == [5, 7]
    acc, n = reidentification_accuracy(train, np.array([1, 2, 0]), q, np.array([1, 1]))
    assert n == 2 and acc == 0.5
