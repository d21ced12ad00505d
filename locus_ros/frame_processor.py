"""The processor lives in ``locus_core.pipeline.processor`` (shared with ``locus bag eval``); these
names stay for existing imports."""

from __future__ import annotations

from locus_core.pipeline.errors import PipelineError
from locus_core.pipeline.processor import FrameProcessor
from locus_ros.params import DEVICES

__all__ = ["FrameProcessor", "resolve_device"]


def resolve_device(requested: str, *, cuda_available: bool) -> tuple[str, str]:  # noqa: ARG001  (kept signature)
    """``requested`` checked and passed through, with no note: the runtime is now chosen (and any
    fallback logged) by ``FrameProcessor`` through ``locus_core.runtime.create_engine``."""
    if requested not in DEVICES:
        raise PipelineError(f"unknown device {requested!r} ({', '.join(DEVICES)})")
    return requested, ""
