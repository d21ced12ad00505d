from __future__ import annotations

import numpy as np
import pytest
import torch

from locus_core.evaluation.segmentation import (
    knn_transfer, linear_probe, mean_iou, patch_labels, reidentification_accuracy,
)


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


def _clusters(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Two linearly separable classes (labels 3 and 9) in 4-D."""
    g = torch.Generator().manual_seed(seed)
    labels = np.array([3, 9] * (n // 2))
    centres = torch.tensor([[2.0, 0.0, 0.0, 0.0], [-2.0, 0.0, 0.0, 0.0]])
    return centres[torch.from_numpy((labels == 9).astype(np.int64))] + 0.3 * torch.randn(n, 4, generator=g), labels


def test_linear_probe_labels_separable_classes_and_is_deterministic() -> None:
    train, labels = _clusters(40, 0)
    query, truth = _clusters(20, 1)
    predicted = linear_probe(train, labels, query, epochs=200)
    assert predicted.tolist() == truth.tolist()
    np.testing.assert_array_equal(linear_probe(train, labels, query, epochs=50, seed=4),
                                  linear_probe(train, labels, query, epochs=50, seed=4))


def test_linear_probe_trains_under_inference_mode() -> None:
    train, labels = _clusters(40, 0)
    with torch.inference_mode():  # features extracted in inference mode are inference tensors
        train, query = train.clone(), train.clone()
        assert linear_probe(train, labels, query, epochs=100).tolist() == labels.tolist()


def test_linear_probe_rejects_bad_input() -> None:
    train, labels = _clusters(4, 0)
    with pytest.raises(ValueError, match="M labels"):
        linear_probe(train, labels[:3], train)
    with pytest.raises(ValueError, match=r"query features must be \(Q, 4\)"):
        linear_probe(train, labels, train[:, :2])
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        linear_probe(train, labels, train, epochs=0)
