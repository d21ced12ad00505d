"""Task 4: segmentation by k-NN label transfer from labelled frames to held-out frames.

Every patch of a held-out frame takes the majority label of its k most similar patches in the
labelled frames (similarity-weighted vote). Semantic labels → mIoU over the classes present in the
ground truth or the prediction, class 0 (background, or unlabelled: ``PosedFrame.semantic``)
included, as VOC counts its background; instance labels (synthetic scenes) → re-identification
accuracy: the share of object patches whose nearest labelled object patch belongs to the same instance.
"""

from __future__ import annotations

import numpy as np
import torch


def patch_labels(labels: np.ndarray, stride: int) -> np.ndarray:
    """(h*w,) majority label of each stride x stride patch (row-major, h = H // stride, w = W // stride).

    Args:
        labels: (H, W) integer label map.
    """
    if labels.ndim != 2 or stride < 1:
        raise ValueError(f"labels (H, W) and stride >= 1 expected, got {labels.shape}, {stride}")
    h, w = labels.shape[0] // stride, labels.shape[1] // stride
    blocks = labels[: h * stride, : w * stride].reshape(h, stride, w, stride).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(h * w, stride * stride)
    classes, inverse = np.unique(blocks, return_inverse=True)
    counts = np.zeros((h * w, len(classes)), dtype=np.int32)
    np.add.at(counts, (np.repeat(np.arange(h * w), stride * stride), inverse.reshape(-1)), 1)
    return classes[counts.argmax(1)]


def knn_transfer(
    train_features: torch.Tensor, train_labels: np.ndarray, query_features: torch.Tensor, k: int = 5,
    chunk: int = 4096,
) -> np.ndarray:
    """Label of each query patch by a similarity-weighted vote of its k nearest labelled patches.

    Args:
        train_features: (M, D) L2-normalised; train_labels: (M,) int.
        query_features: (Q, D) L2-normalised.
    Returns:
        (Q,) predicted labels.
    """
    if len(train_features) != len(train_labels) or len(train_features) == 0:
        raise ValueError(f"need as many labels as labelled features (> 0), got {len(train_labels)}, "
                         f"{len(train_features)}")
    classes, codes = np.unique(np.asarray(train_labels), return_inverse=True)
    codes_t = torch.from_numpy(codes.reshape(-1))
    k = min(k, len(train_features))
    out = np.empty(len(query_features), dtype=classes.dtype)
    for s in range(0, len(query_features), chunk):
        sim = query_features[s : s + chunk].float() @ train_features.float().T
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(sim), len(classes))
        votes.scatter_add_(1, codes_t[idx], top.clamp(min=0) + 1e-6)
        out[s : s + chunk] = classes[votes.argmax(1).numpy()]
    return out


def mean_iou(prediction: np.ndarray, target: np.ndarray, ignore: int | None = None) -> tuple[float, dict[int, float]]:
    """mIoU over the classes that occur in ``target`` or ``prediction``, 0 (background) among them
    unless it is ``ignore`` (pixels labelled ``ignore`` skipped).

    Returns:
        (mIoU, {class: IoU}).
    """
    prediction = np.asarray(prediction).reshape(-1)
    target = np.asarray(target).reshape(-1)
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target sizes differ: {prediction.shape} vs {target.shape}")
    if ignore is not None:
        keep = target != ignore
        prediction, target = prediction[keep], target[keep]
    per_class = {}
    for c in np.union1d(np.unique(prediction), np.unique(target)):
        inter = np.sum((prediction == c) & (target == c))
        union = np.sum((prediction == c) | (target == c))
        per_class[int(c)] = float(inter / union)
    return (float(np.mean(list(per_class.values()))) if per_class else float("nan")), per_class


def reidentification_accuracy(
    train_features: torch.Tensor, train_instances: np.ndarray, query_features: torch.Tensor,
    query_instances: np.ndarray,
) -> tuple[float, int]:
    """Share of query object patches (instance > 0, whose instance also appears among the labelled
    patches) whose nearest labelled object patch has the same instance id.

    Returns:
        (accuracy, number of query patches counted); accuracy NaN when none.
    """
    train_instances = np.asarray(train_instances).reshape(-1)
    query_instances = np.asarray(query_instances).reshape(-1)
    objects = train_instances > 0
    queries = (query_instances > 0) & np.isin(query_instances, train_instances[objects])
    if not objects.any() or not queries.any():
        return float("nan"), 0
    predicted = knn_transfer(train_features[torch.from_numpy(objects)], train_instances[objects],
                             query_features[torch.from_numpy(queries)], k=1)
    return float(np.mean(predicted == query_instances[queries])), int(queries.sum())
