from __future__ import annotations

import pytest
import torch

from locus_core.bench.memory import peak_cuda_bytes, peak_tensor_bytes

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


def test_cuda_peak_leaves_out_what_was_alive_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on the CPU: resident weights (here 100 MiB allocated before the call) cost nothing."""
    allocated = {"now": 100 * MB, "peak": 100 * MB}

    def call() -> None:  # allocates 10 MiB and frees it, as a forward pass does with activations
        allocated["peak"] = max(allocated["peak"], allocated["now"] + 10 * MB)

    def reset(device: object = None) -> None:
        allocated["peak"] = allocated["now"]

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated["now"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: allocated["peak"])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", reset)
    assert peak_cuda_bytes(call) == 10 * MB


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_on_a_gpu() -> None:
    resident = torch.ones(16 * MB, device="cuda")  # 64 MiB, like a model's weights

    def one() -> None:
        torch.ones(MB // 4, device="cuda")  # 1 MiB

    assert 1 * MB <= peak_cuda_bytes(one) < 1.1 * MB
    del resident
