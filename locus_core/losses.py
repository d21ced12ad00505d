"""The Vectorised Smooth-AP loss (LoCUS, ICCV 2023), exact and memory-light.

Definition (per landmark row, the default). With ``s = landmarks @ patches.T`` (n x m), ``P_a`` the
positive and ``C_a`` the candidate patches of landmark ``a`` (``P_a`` is a subset of ``C_a``; patches
outside ``C_a`` are don't-care), for every positive pair ``(a, i)``::

    R_all(a, i) = 1 + sum_{j in C_a, j != i} sigmoid((s_aj - s_ai) / tau)
    R_pos(a, i) = 1 + sum_{j in P_a, j != i} sigmoid((s_aj - s_ai) / tau)
    VSAP        = mean over all positive pairs (a, i) of R_pos(a, i) / R_all(a, i)

i.e. every landmark ranks its own candidate patches (the paper's vectorised form), and the ratios
of all positive pairs are averaged together (a landmark with more positives weighs more). With
``per_row=False`` all candidate pairs of the batch are ranked in one list instead, the literal reading
of "j in C" over pairs.

The naive form materialises a (|P| x m) matrix of sigmoids and keeps several of them for autograd.
Here the forward pass streams over chunks of positives sized by a memory budget and keeps only the
two rank vectors (|P| each); the backward pass recomputes each chunk and applies the analytic
gradient, sigmoid' = g (1 - g) / tau, into dL/ds (n x m). Recomputation makes it exact (no sorting
or histogram approximation), and each chunk stays in cache, which is also what makes it faster.
"""

from __future__ import annotations

import torch

from locus_core.errors import LocusError

# Elements of one chunk's working matrix: 2**17 float32 = 512 KiB stays in a core's L2 cache; on
# 2 cores (threads 1) 2**16..2**18 were within noise of each other at 32x4096 and 8x16384, with 2**14
# 2-3x slower (per-op overhead) and 2**20 ~20 % slower (out of cache).
DEFAULT_CHUNK_ELEMENTS = 2**17


class LossInputError(LocusError, ValueError):
    """The loss was given tensors of the wrong shape, dtype or content."""


def vectorized_smooth_ap(
    landmarks: torch.Tensor,
    patches: torch.Tensor,
    positive: torch.Tensor,
    candidates: torch.Tensor,
    temperature: float = 0.01,
    *,
    per_row: bool = True,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> torch.Tensor:
    """Vectorised Smooth-AP of landmark-to-patch retrieval: a scalar in (0, 1] to maximise.

    Args:
        landmarks: (n, d) float landmark descriptors (L2-normalised by the caller).
        patches: (m, d) float patch descriptors, same dtype and device.
        positive: (n, m) bool, True where patch j is a positive of landmark a.
        candidates: (n, m) bool, True where patch j is ranked for landmark a; must contain
            ``positive``. Pairs outside ``candidates`` are don't-care and never touched.
        temperature: tau > 0 of the sigmoid that smooths the ranking.
        per_row: rank each landmark's patches separately (default) or all pairs together (then
            every positive is compared with all n*m candidate pairs: n times the work).
        chunk_elements: memory budget of the working matrix, in elements (speed/memory trade-off;
            the result does not depend on it beyond float rounding).

    Returns:
        0-d tensor with gradients to ``landmarks`` and ``patches``. With no positive pair at all
        the AP is undefined: it returns 0 with zero gradients (never NaN), so that a caller may
        skip the batch or let it contribute nothing.

    Raises:
        LossInputError: shapes, dtypes or devices disagree, masks are not bool, a positive is not
            a candidate, the similarities divided by ``temperature`` are not finite, or
            ``temperature`` is not positive.
    """
    _check_inputs(landmarks, patches, positive, candidates, temperature, chunk_elements)
    similarity = landmarks @ patches.T
    # s / tau is what gets ranked: finite s can still overflow it (half precision, descriptors that
    # are not normalised), and inf - inf inside the sigmoids would make the loss NaN.
    if not bool(torch.isfinite(similarity / temperature).all()):
        raise LossInputError(
            "landmark/patch similarities / temperature contain NaN or inf (check the descriptors)"
        )
    if not per_row:
        similarity, positive, candidates = (t.reshape(1, -1) for t in (similarity, positive, candidates))
    return _SmoothAP.apply(similarity, positive, candidates, float(temperature), int(chunk_elements))


def _check_inputs(
    landmarks: torch.Tensor,
    patches: torch.Tensor,
    positive: torch.Tensor,
    candidates: torch.Tensor,
    temperature: float,
    chunk_elements: int,
) -> None:
    if landmarks.ndim != 2 or patches.ndim != 2:
        raise LossInputError(
            f"landmarks and patches must be 2-d (n, d) and (m, d), got {tuple(landmarks.shape)} "
            f"and {tuple(patches.shape)}"
        )
    if landmarks.shape[1] != patches.shape[1]:
        raise LossInputError(
            f"descriptor dims differ: landmarks {tuple(landmarks.shape)}, patches {tuple(patches.shape)}"
        )
    if not landmarks.is_floating_point() or landmarks.dtype != patches.dtype:
        raise LossInputError(
            f"landmarks and patches must share one floating dtype, got {landmarks.dtype} and {patches.dtype}"
        )
    if landmarks.device != patches.device:
        raise LossInputError(f"landmarks on {landmarks.device} but patches on {patches.device}")
    expected = (landmarks.shape[0], patches.shape[0])
    for name, mask in (("positive", positive), ("candidates", candidates)):
        if mask.dtype != torch.bool:
            raise LossInputError(f"{name} must be a bool mask, got {mask.dtype}")
        if tuple(mask.shape) != expected:
            raise LossInputError(f"{name} must have shape (n, m) = {expected}, got {tuple(mask.shape)}")
        if mask.device != landmarks.device:
            raise LossInputError(f"{name} on {mask.device} but landmarks on {landmarks.device}")
    outside = int((positive & ~candidates).sum())
    if outside:
        raise LossInputError(f"{outside} positive pairs are not candidates (positive must be a subset)")
    if not temperature > 0:
        raise LossInputError(f"temperature must be > 0, got {temperature}")
    if chunk_elements < 1:
        raise LossInputError(f"chunk_elements must be >= 1, got {chunk_elements}")


def _plan_chunks(pos_rows: torch.Tensor, width: int, chunk_elements: int) -> list[tuple[int, int, int, int, int]]:
    """Chunks of the row-major positive list that never span two rows.

    Returns (row, lo, hi, first, last): anchors lo:hi of ``row``, whose positives are first:last,
    with hi - lo <= chunk_elements / width so that a (hi - lo, width) block fits the budget.
    """
    step = max(1, chunk_elements // max(1, width))
    rows, counts = torch.unique_consecutive(pos_rows, return_counts=True)
    chunks = []
    first = 0
    for row, count in zip(rows.tolist(), counts.tolist()):
        last = first + count
        chunks.extend((row, lo, min(lo + step, last), first, last) for lo in range(first, last, step))
        first = last
    return chunks


def _sigmoid_slope(x: torch.Tensor) -> torch.Tensor:
    """sigmoid'(x) = g (1 - g), computed in place in ``x``."""
    g = x.sigmoid_()
    return g.addcmul_(g, g, value=-1.0)


class _SmoothAP(torch.autograd.Function):
    """VSAP of a similarity matrix (r, m) with masks (r, m); gradients to the similarities only.

    Works row by row: a chunk of one row's positives (k anchors) against that row's candidates is a
    (k, m) block, sigmoid(bank[row] - anchor[:, None]), where the bank holds s/tau with non-candidates
    set to -inf (sigmoid(-inf) = 0 exactly, and so is its derivative), and against that row's
    positives a (k, |P_row|) block. The j == i term is sigmoid(0) = 1/2 in both sums, hence
    1 + sum_{j != i} = 1/2 + sum_j.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        similarity: torch.Tensor,
        positive: torch.Tensor,
        candidates: torch.Tensor,
        temperature: float,
        chunk_elements: int,
    ) -> torch.Tensor:
        pos_rows, pos_cols = positive.nonzero(as_tuple=True)
        ctx.shape, ctx.temperature = similarity.shape, temperature
        if pos_rows.numel() == 0:
            ctx.chunks = []
            return similarity.new_zeros(())
        bank = (similarity / temperature).masked_fill_(~candidates, float("-inf"))
        anchors = bank[pos_rows, pos_cols]
        r_all = torch.empty_like(anchors)
        r_pos = torch.empty_like(anchors)
        ctx.chunks = _plan_chunks(pos_rows, bank.shape[1], chunk_elements)
        for row, lo, hi, first, last in ctx.chunks:
            anchor = anchors[lo:hi, None]
            r_all[lo:hi] = torch.sub(bank[row], anchor).sigmoid_().sum(1).add_(0.5)
            r_pos[lo:hi] = torch.sub(anchors[first:last], anchor).sigmoid_().sum(1).add_(0.5)
        ctx.save_for_backward(bank, pos_rows, pos_cols, anchors, r_all, r_pos)
        return (r_pos / r_all).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        grad_similarity = grad_output.new_zeros(ctx.shape)
        if not ctx.chunks:
            return grad_similarity, None, None, None, None
        bank, pos_rows, pos_cols, anchors, r_all, r_pos = ctx.saved_tensors
        # d(mean R_pos/R_all)/dR_pos = 1/(|P| R_all) and /dR_all = -R_pos/(|P| R_all^2); the chain
        # through s/tau adds the 1/tau.
        w_pos = grad_output / (anchors.numel() * ctx.temperature) / r_all
        w_all = -w_pos * r_pos / r_all
        grad_anchor = torch.zeros_like(anchors)
        for row, lo, hi, first, last in ctx.chunks:
            anchor = anchors[lo:hi, None]
            slope_all = _sigmoid_slope(torch.sub(bank[row], anchor))
            slope_pos = _sigmoid_slope(torch.sub(anchors[first:last], anchor))
            # Each term sigmoid(x_aj - x_ai) pulls s_aj up by its slope and s_ai down by the same.
            grad_similarity[row] += w_all[lo:hi] @ slope_all
            grad_anchor[first:last] += w_pos[lo:hi] @ slope_pos
            grad_anchor[lo:hi] -= slope_all.sum(1).mul_(w_all[lo:hi]).add_(slope_pos.sum(1).mul_(w_pos[lo:hi]))
        grad_similarity.index_put_((pos_rows, pos_cols), grad_anchor, accumulate=True)
        return grad_similarity, None, None, None, None
