"""Peak memory of a PyTorch call, CPU (from the profiler's allocation events) and CUDA.

The CPU allocator keeps no statistics (unlike CUDA's), ``tracemalloc`` does not see torch's
allocations, and RSS deltas hide anything smaller than what malloc already holds. The profiler with
``profile_memory=True`` records every tensor allocation and free with its size and time; replaying
them in time order gives the peak of tensor bytes alive at once, above what was alive before the
call. Python objects are not counted (they are negligible next to tensors here).
"""

from __future__ import annotations

from collections.abc import Callable


def peak_tensor_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of CPU tensors allocated by ``fn()`` and alive at the same time (>= 0).

    Counts only allocations made during the call (inputs that already exist cost nothing), and
    includes whatever the call returns or leaves behind (e.g. ``.grad`` of its inputs).
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type().name == "CPU"]
    events.sort(key=lambda e: e.start_ns())
    alive = peak = 0
    for event in events:
        alive += event.nbytes()
        peak = max(peak, alive)
    return peak


def peak_cuda_bytes(fn: Callable[[], object], device: object = None) -> int:
    """Peak bytes of CUDA tensors on ``device`` allocated by ``fn()`` (>= 0), as
    :func:`peak_tensor_bytes` counts them on the CPU: above what was alive before the call, so a
    model's resident weights and inputs cost nothing (``max_memory_allocated`` alone includes them).
    """
    import torch

    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
