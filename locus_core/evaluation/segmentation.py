"""Task 4: segmentation, labels carried from labelled frames to held-out frames, two ways.

A linear probe (the paper's protocol): one linear layer on the frozen features, trained on the
labelled patches, labels every patch of a held-out frame. k-NN label transfer: every patch takes the
majority label of its k most similar labelled patches (similarity-weighted vote). Semantic labels →
mIoU over the classes present in the ground truth or the prediction, class 0 (background, or
unlabelled: ``PosedFrame.semantic``) included, as VOC counts its background; instance labels
(synthetic scenes) → re-identification accuracy: the share of object patches whose nearest labelled
object patch belongs to the same instance.
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


def linear_probe(
    train_features: torch.Tensor, train_labels: np.ndarray, query_features: torch.Tensor, *, epochs: int = 1000,
    lr: float = 0.01, seed: int = 0,
) -> np.ndarray:
    """Label of each query patch by a linear classifier trained on the labelled patches.

    The protocol of the LoCUS paper's code (dakloepfer/locus, ``test.py --task segmentation``): a
    1x1 linear layer on the frozen features, cross-entropy, Adam at lr 0.01 for 1000 epochs of
    32-image batches. Here every epoch is one full-batch step, the same as the paper's where the
    labelled frames fit in one of its batches (8 on the shelf, 30 in the synthetic scene), and the
    layer's initialisation is seeded: the same inputs give the same labels.

    Args:
        train_features: (M, D); train_labels: (M,) int; query_features: (Q, D).
    Returns:
        (Q,) predicted labels, each one of ``train_labels``'.
    """
    if train_features.ndim != 2 or len(train_features) != len(train_labels) or len(train_features) == 0:
        raise ValueError(f"need (M, D) labelled features (M > 0) and M labels, got {tuple(train_features.shape)} "
                         f"and {len(train_labels)}")
    if query_features.ndim != 2 or query_features.shape[1] != train_features.shape[1]:
        raise ValueError(f"query features must be (Q, {train_features.shape[1]}), got {tuple(query_features.shape)}")
    if epochs < 1 or not lr > 0:
        raise ValueError(f"epochs must be >= 1 and lr > 0, got {epochs}, {lr}")
    classes, codes = np.unique(np.asarray(train_labels), return_inverse=True)
    generator = torch.Generator().manual_seed(seed)
    bound = train_features.shape[1] ** -0.5  # nn.Linear's default initialisation, seeded
    # Trained under autograd even when called in inference mode (autograd cannot save inference
    # tensors: the features are copied, the targets made here).
    with torch.inference_mode(False), torch.enable_grad():
        weight = ((torch.rand(len(classes), train_features.shape[1], generator=generator) * 2 - 1) * bound).requires_grad_()
        bias = ((torch.rand(len(classes), generator=generator) * 2 - 1) * bound).requires_grad_()
        optimizer = torch.optim.Adam([weight, bias], lr=lr)
        inputs = train_features.detach().float().clone()
        targets = torch.from_numpy(codes.reshape(-1))
        for _ in range(epochs):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(torch.addmm(bias, inputs, weight.T), targets).backward()
            optimizer.step()
    with torch.no_grad():
        return classes[torch.addmm(bias, query_features.float(), weight.T).argmax(1).numpy()]


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
