"""``WorkerPool`` start-up: a worker that fails or hangs while loading is reported, never waited for."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
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


def _running(processes: list[multiprocessing.process.BaseProcess]) -> list[int]:
    """The pids of those that have not exited (is_alive() reports one its executor's thread has
    already reaped as running)."""
    return [process.pid for process in workers._still_running(processes, 0)]


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt, as at a terminal, even where the suite was started with it
    ignored (as a shell without job control starts a command in the background)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def pool_processes(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[multiprocessing.process.BaseProcess]]:
    """The processes the pools of the test started (not other children of this process: the test
    suite's own, whatever they are, are no concern of the pool's)."""
    contexts: list[workers._RecordingContext] = []

    class Spied(workers._RecordingContext):
        def __init__(self, context: object) -> None:
            super().__init__(context)
            contexts.append(self)

    monkeypatch.setattr(workers, "_RecordingContext", Spied)
    return lambda: [p for context in contexts for p in context.processes if p.pid is not None]


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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pool_processes: Callable[[], list], initializer: Callable[..., None],
    ctrl_c_raises: None,
) -> None:
    monkeypatch.setattr(workers, "_start", initializer)
    threading.Timer(5.0, os.kill, (os.getpid(), signal.SIGINT)).start()  # Ctrl-C, to this process only
    with pytest.raises(KeyboardInterrupt):
        WorkerPool(2, "backbone:test", tmp_path / "map", device="cpu", ready_timeout_s=60.0)
    started = pool_processes()
    try:  # before the fix, they were left loading, and Python's exit joined them
        assert started and not _running(started)
    finally:
        for pid in _running(started):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(120)
def test_an_interrupt_just_after_a_worker_is_spawned_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pool_processes: Callable[[], list]
) -> None:
    class InterruptedAfterSpawn(ProcessPoolExecutor):
        def _spawn_process(self) -> None:
            # the executor starts a process, then records it: Ctrl-C may land between the two
            self._mp_context.Process(target=_hang).start()
            raise KeyboardInterrupt

    monkeypatch.setattr(workers, "ProcessPoolExecutor", InterruptedAfterSpawn)
    with pytest.raises(KeyboardInterrupt):
        WorkerPool(1, "backbone:test", tmp_path / "map", device="cpu")
    started = pool_processes()
    try:
        assert len(started) == 1 and not _running(started)
    finally:
        for pid in _running(started):
            os.kill(pid, signal.SIGKILL)
