"""PNG figures of ``locus eval``: PR curves, pose error CDFs, PCA colouring of the feature maps and a
match visualisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

LABELS = {"model": "LoCUS (ours)", "backbone": "raw backbone", "lighterglue": "XFeat + LighterGlue"}
MAX_DRAWN = 400  # match lines per method in the matches figure


def pca_colours(features: torch.Tensor) -> np.ndarray:
    """(N, h, w, 3) RGB in [0, 1] from the first three principal components of (N, D, h, w) features,
    fitted jointly over the N maps so colours are comparable between frames."""
    n, d, h, w = features.shape
    x = features.permute(0, 2, 3, 1).reshape(-1, d).double()
    x = x - x.mean(0)
    _, _, v = torch.linalg.svd(x[:: max(1, len(x) // 20000)], full_matrices=False)
    y = x @ v[:3].T
    lo, hi = y.quantile(0.01, dim=0), y.quantile(0.99, dim=0)
    y = ((y - lo) / (hi - lo).clamp(min=1e-9)).clamp(0, 1)
    return y.reshape(n, h, w, 3).numpy()


def write_figures(
    out: Path, feats: dict[str, Any], data: dict[str, Any], model_label: str = LABELS["model"]
) -> list[Path]:
    """Write the PNGs of the tasks in ``data``; ``model_label`` names the evaluated model (a raw backbone
    is not "LoCUS")."""
    labels = {**LABELS, "model": model_label}
    if feats.get("backbone") is feats["model"]:  # a raw model is its own baseline: draw it once
        del labels["backbone"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    if "retrieval" in data:
        r = data["retrieval"]
        fig, ax = plt.subplots(figsize=(5, 4))
        for name, curve in r["curves"].items():
            if name not in labels:
                continue
            ax.plot(r["recall"], curve, label=f"{labels[name]} (AP {r['ap'][name]:.3f})")
        ax.set(xlabel="recall", ylabel="interpolated precision", title="Patch retrieval", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend()
        files.append(_save(fig, out / "retrieval_pr.png"))
    if "pose" in data:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for name, e in data["pose"]["errors"].items():
            if name not in labels:
                continue
            e = np.asarray(e).reshape(-1, 2)
            for k, (ax, limit) in enumerate(zip(axes, (0.5, 30.0))):
                values = np.sort(e[:, k])
                ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=labels[name])
                ax.set_xlim(0, limit)
        axes[0].set(xlabel="translation error (m)", ylabel="fraction of pairs", title="Relative pose (3D–3D)")
        axes[1].set(xlabel="rotation error (deg)", title="Relative pose (3D–3D)")
        axes[0].legend()
        files.append(_save(fig, out / "pose_cdf.png"))
        example = data["pose"]["example"]
        if example:
            files.append(_matches(plt, example, out / "matches.png", labels))
    files.append(_pca(plt, feats, out / "features_pca.png", labels))
    return files


def _pca(plt: Any, feats: dict[str, Any], path: Path, labels: dict[str, str]) -> Path:
    n = len(feats["model"].frames)
    pick = sorted({0, n // 2, n - 1})
    names = [name for name in feats if name in labels]
    colours = {name: pca_colours(feats[name].features[pick]) for name in names}
    fig, axes = plt.subplots(len(pick), 1 + len(names), figsize=(3.2 * (1 + len(names)), 2.6 * len(pick)), squeeze=False)
    for row, k in enumerate(pick):
        frame = feats["model"].frames[k]
        axes[row, 0].imshow(frame.rgb)
        axes[row, 0].set_title(frame.frame_id, fontsize=8)
        for col, name in enumerate(names, 1):
            axes[row, col].imshow(colours[name][row], interpolation="nearest")
            axes[row, col].set_title(f"PCA: {labels[name]}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    return _save(fig, path)


def _matches(plt: Any, ex: dict[str, Any], path: Path, labels: dict[str, str]) -> Path:
    """The lowest-overlap pose pair, one row per method: its matches, RANSAC inliers green."""
    a, b = ex["a"], ex["b"]
    canvas = np.concatenate([a, b], axis=1)
    methods = [name for name in labels if name in ex]
    fig, axes = plt.subplots(len(methods), 1, figsize=(10, 4 * len(methods)), squeeze=False)
    shift = a.shape[1]
    for ax, name in zip(axes[:, 0], methods):
        m = ex[name]
        inl = np.asarray(m["inliers"], bool)
        drawn = np.arange(len(inl))
        if len(drawn) > MAX_DRAWN:  # a seeded sample: thousands of lines hide the image and each other
            drawn = np.sort(np.random.default_rng(0).choice(len(drawn), MAX_DRAWN, replace=False))
        ax.imshow(canvas)
        for (ua, va), (ub, vb), ok in zip(m["uv_a"][drawn], m["uv_b"][drawn], inl[drawn]):
            ax.plot([ua, ub + shift], [va, vb], color="lime" if ok else "red", linewidth=0.6,
                    alpha=0.8 if ok else 0.3)
        sample = f", {len(drawn)} drawn" if len(drawn) < len(inl) else ""
        ax.set_title(f"{labels[name]}, co-visibility {ex['covisibility']:.0%}: "
                     f"{int(inl.sum())} RANSAC inliers (green) of {len(inl)} matches{sample}", fontsize=9)
        ax.axis("off")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
