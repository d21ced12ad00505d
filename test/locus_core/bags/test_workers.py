"""``WorkerPool`` start-up: a worker that fails or hangs while loading is reported, never waited for."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from locus_core.bags import workers
from locus_core.bags.errors import BagError
from locus_core.bags.workers import WorkerPool


def _hang(*initargs: object) -> None:
    """A worker initialiser that never finishes loading (imported by name in the spawned worker)."""
    time.sleep(600)


def test_a_worker_that_cannot_start_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="a localization worker failed to start"):
        WorkerPool(1, "backbone:test", tmp_path / "no-map", device="cpu")


@pytest.mark.timeout(120)  # before the fix, construction joined the hung worker forever
def test_a_worker_that_hangs_while_starting_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "_start", _hang)
    start = time.monotonic()
    with pytest.raises(BagError, match=r"failed to start \(not ready after 3 s\)"):
        WorkerPool(2, "backbone:test", tmp_path / "map", device="cpu", ready_timeout_s=3.0)
    assert time.monotonic() - start < 60
