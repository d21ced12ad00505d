from __future__ import annotations

import torch

from locus_core.bench.memory import peak_tensor_bytes

MB = 2**20


def test_peak_counts_tensors_alive_together_not_their_sum() -> None:
    def two_at_once() -> None:
        a = torch.ones(MB // 4)  # 1 MiB of float32
        b = torch.ones(MB // 4)
        del a, b

    def one_after_another() -> None:
        for _ in range(4):
            a = torch.ones(MB // 4)
            del a

    assert 2 * MB <= peak_tensor_bytes(two_at_once) < 2.1 * MB
    assert 1 * MB <= peak_tensor_bytes(one_after_another) < 1.1 * MB


def test_existing_tensors_cost_nothing() -> None:
    big = torch.ones(4 * MB)
    assert peak_tensor_bytes(lambda: big.sum()) < 1024
