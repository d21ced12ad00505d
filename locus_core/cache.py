"""Where LoCUS keeps what it can make again (exported graphs, TensorRT engines, backbone features,
co-visibility, synthetic scenes, benchmark maps): one root for all of them."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$LOCUS_CACHE``, or ``~/.cache/locus`` when it is unset or empty (an empty value would
    otherwise be the working directory)."""
    return Path(os.environ.get("LOCUS_CACHE") or Path.home() / ".cache" / "locus")
