"""``WorkerPool`` start-up: a worker that fails or hangs while loading is reported, never waited for."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from locus_core.bags import workers
from locus_core.bags.errors import BagError
from locus_core.bags.workers import WorkerPool


def _hang(*initargs: object) -> None:
    """A worker initialiser that never finishes loading (imported by name in the spawned worker)."""
    time.sleep(600)


def _hang_ignoring_sigterm(*initargs: object) -> None:
    """A worker stuck where SIGTERM is not acted on (ignored here, as under some CI runners)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
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


@pytest.mark.timeout(120)
# a worker that does not heed SIGINT (native code) stays hung; one may not act on SIGTERM either
@pytest.mark.parametrize("initializer", [_hang, _hang_ignoring_sigterm])
def test_an_interrupt_while_the_workers_start_stops_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, initializer: Callable[..., None]
) -> None:
    monkeypatch.setattr(workers, "_start", initializer)
    before = set(multiprocessing.active_children())
    threading.Timer(5.0, os.kill, (os.getpid(), signal.SIGINT)).start()  # Ctrl-C, to this process only
    with pytest.raises(KeyboardInterrupt):
        WorkerPool(2, "backbone:test", tmp_path / "map", device="cpu", ready_timeout_s=60.0)
    started = set(multiprocessing.active_children()) - before
    try:  # before the fix, they were left loading, and Python's exit joined them
        assert not any(process.is_alive() for process in started)
    finally:
        for process in started:
            process.kill()


@pytest.mark.timeout(120)
def test_an_interrupt_just_after_a_worker_is_spawned_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class InterruptedAfterSpawn(ProcessPoolExecutor):
        def _spawn_process(self) -> None:
            # the executor starts a process, then records it: Ctrl-C may land between the two
            self._mp_context.Process(target=_hang).start()
            raise KeyboardInterrupt

    monkeypatch.setattr(workers, "ProcessPoolExecutor", InterruptedAfterSpawn)
    before = set(multiprocessing.active_children())
    try:
        with pytest.raises(KeyboardInterrupt):
            WorkerPool(1, "backbone:test", tmp_path / "map", device="cpu")
        started = set(multiprocessing.active_children()) - before
        for process in started:
            process.join(10)
        assert not any(process.is_alive() for process in started)
    finally:
        for process in set(multiprocessing.active_children()) - before:
            process.kill()
