"""Localizing a bag's frames in worker processes, for replays of long recordings on many cores.

Each worker runs its own ``FrameProcessor`` (the node's code path) over the same map. Without
tracking the localizer keeps no state from one frame to the next: frames go to the workers in
turn and N workers give the results of one, in the same order; what changes is each frame's
latency, as a worker has 1/N of the CPU threads. A tracking localizer (``track_period_s`` > 0)
poses each frame from the one before, so the stream is cut into windows of ``track_period_s`` of
stream time, each tracked by one worker from a full localization at its start, as one process
relocalizes once a period: a window goes to the worker with the fewest frames waiting (windows
differ in cost: views that tracking cannot pose are localized in full), and as each window starts
afresh its results do not depend on which worker runs it. They are those of one process up to
where the full localizations fall. Processes rather than threads: the localizer's numpy and the
model's runtime each keep a few threads busy, and on 2 cores two single-threaded processes
localize 1.57x the frames of one two-threaded process (two threads in one process: 1.48x, and the
``FrameProcessor`` lock would have to go).
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import connection
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.bags.errors import BagError
from locus_core.data.frame import PosedFrame

READY_TIMEOUT_S = 300.0  # a worker imports torch and loads the model and the map; TensorRT may build an engine
STOP_GRACE_S = 5.0  # after SIGTERM, before SIGKILL: a worker stuck in native code may not act on SIGTERM

_processor: Any = None  # the worker's FrameProcessor
_started: Any = None  # a barrier all workers reach once loaded
_failure = ""  # why the worker could not load, reported by its first task


def _start(
    model_spec: str, map_dir: str, device: str, localizer_config: str, overrides: Sequence[str], precision: str,
    threads: int, started: Any,
) -> None:
    import torch

    from locus_core.pipeline import FrameProcessor

    global _processor, _started, _failure
    _started = started
    torch.set_num_threads(threads)
    try:
        _processor = FrameProcessor(model_spec, device, localizer_config, precision, overrides=overrides)
        _processor.load_map(map_dir)
    except Exception as exc:  # raised from an initializer it would only break the pool, without the reason
        _failure = f"{type(exc).__name__}: {exc}"


def _ready(timeout_s: float) -> tuple[int, int]:
    # Each worker holds one of these until all have taken one: then every worker has loaded.
    if _failure:
        _started.abort()
        raise BagError(f"a localization worker failed to start ({_failure})")
    _started.wait(timeout_s)
    return _processor.input_size


def _localize(frame: PosedFrame, odometry: np.ndarray | None, restart: bool) -> Any:
    if restart:  # a window of the stream starts: tracking must not go on from another window
        _processor.reset_tracking()
    return _processor.localize(frame, odometry)


def _still_running(processes: Sequence[Any], timeout_s: float) -> list[Any]:
    """Those of ``processes`` that have not exited after up to ``timeout_s``. Exits are read from
    their sentinels, not by joining: an executor's thread reaps the same processes, and a join that
    finds one already reaped reports it still running."""
    running = {process.sentinel: process for process in processes}
    deadline = time.monotonic() + timeout_s
    while running:
        exited = connection.wait(list(running), max(0.0, deadline - time.monotonic()))
        if not exited:  # the time is up
            break
        for sentinel in exited:
            del running[sentinel]
    return list(running.values())


class _RecordingContext:
    """A multiprocessing context that keeps every process made through it: an executor records
    its workers only after starting them, so a Ctrl-C in between would leave one running."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self.processes: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def Process(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 (multiprocessing's name)
        process = self._context.Process(*args, **kwargs)
        self.processes.append(process)
        return process


class WorkerPool:
    """``workers`` processes, each localizing frames against the map at ``map_dir`` with
    ``threads`` CPU threads (default: this process's threads shared out, at least one each).

    Construction returns once every worker has loaded the model and the map (what a serial replay
    does before it starts its clock). Use as a context manager, or call ``close``.

    Attributes:
        window_s: a tracking localizer's ``track_period_s``: frames go to workers by windows of this
            much stream time (0: in turn, one frame each).
        max_in_flight: frames to submit before waiting for the oldest: two per worker keep each busy
            with few images in memory; with windows, 48 per worker (~100 MB): the windows ahead
            must be read for a worker to take one while another finishes a long one.

    Raises:
        ValueError: workers < 1 or threads < 1.
        BagError: a worker failed to start (with its reason), or was not ready after ``ready_timeout_s``.
    """

    def __init__(
        self,
        workers: int,
        model_spec: str,
        map_dir: str | Path,
        *,
        device: str = "auto",
        localizer_config: str = "",
        overrides: Sequence[str] = (),
        precision: str = "fp32",
        threads: int | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        import torch

        from locus_core.config import load_config
        from locus_core.mapping import LocalizerConfig

        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        config = load_config(LocalizerConfig, Path(localizer_config) if localizer_config else None, list(overrides))
        self.workers = workers
        self.window_s = config.track_period_s
        self.max_in_flight = (48 if self.window_s > 0 else 2) * workers
        self._submitted = 0
        self._window: int | None = None  # the window of the last frame submitted
        self._worker = 0  # the worker taking that window
        self._pending: list[list[Future]] = [[] for _ in range(workers)]  # with windows: per worker, not done
        self.threads = threads if threads is not None else max(1, torch.get_num_threads() // workers)
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        # spawn, not fork: forking a process that has started torch's and ONNX Runtime's threads can deadlock.
        self._context = context = _RecordingContext(multiprocessing.get_context("spawn"))
        started = context.Barrier(workers)
        # one single-process executor per worker: a frame goes to the worker chosen for it, in order
        self._executors = [
            ProcessPoolExecutor(1, mp_context=context, initializer=_start,
                                initargs=(model_spec, str(map_dir), device, localizer_config, tuple(overrides), precision,
                                          self.threads, started))
            for _ in range(workers)
        ]
        try:  # the submits too: they spawn the workers, seconds on a loaded machine
            ready = [executor.submit(_ready, ready_timeout_s) for executor in self._executors]
            wait(ready, ready_timeout_s)
        except BaseException:  # Ctrl-C: a worker in native code does not heed it, and Python's exit would join it
            self._terminate()
            raise
        outcomes = [f.exception() if f.done() else TimeoutError(f"not ready after {ready_timeout_s:g} s") for f in ready]
        failures = [exc for exc in outcomes if exc is not None]
        if failures:
            self._terminate()
            # A worker's own reason first; the others only saw the barrier break or the pool die.
            failures.sort(key=lambda exc: not isinstance(exc, BagError))
            if isinstance(failures[0], BagError):
                raise failures[0]
            raise BagError(f"a localization worker failed to start ({failures[0] or 'another worker failed'})")
        self.input_size: tuple[int, int] = ready[0].result()  # (H, W) the model reads, as FrameProcessor.input_size

    def _terminate(self) -> None:
        # A worker may hang while starting: shutdown(wait=True) would join it forever.
        # ProcessPoolExecutor has no public way to stop its workers before Python 3.14.
        started = [process for process in self._context.processes if process.pid is not None]
        for process in started:
            process.terminate()
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)
        for process in _still_running(started, STOP_GRACE_S):
            process.kill()
        _still_running(started, STOP_GRACE_S)  # not for ever: one in uninterruptible I/O dies when it returns

    def submit(self, frame: PosedFrame, odometry: np.ndarray | None = None) -> Future:
        """Future of ``frame``'s ``Localization`` (frames in stream order; ``odometry``: as
        ``FrameProcessor.localize`` takes it); a worker that dies fails it with BagError."""
        future: Future = Future()

        def relay(done: Future) -> None:
            if done.cancelled():  # close() dropped it: exception() would raise here, logged once per frame
                future.cancel()
                return
            exc = done.exception()
            if isinstance(exc, BrokenProcessPool):
                future.set_exception(BagError(f"a localization worker died ({exc})"))
            elif exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(done.result())

        restart = False
        if self.window_s <= 0:
            self._worker = self._submitted % self.workers
        else:
            # done ones dropped at every frame, not per window: a window may last the whole bag (stamps all 0)
            self._pending = [[f for f in fs if not f.done()] for fs in self._pending]
            if (window := math.floor(frame.stamp / self.window_s)) != self._window:
                self._window, restart = window, True
                self._worker = min(range(self.workers), key=lambda k: len(self._pending[k]))
        self._submitted += 1
        try:
            done = self._executors[self._worker].submit(_localize, frame, odometry, restart)
            done.add_done_callback(relay)
            if self.window_s > 0:
                self._pending[self._worker].append(done)
        except BrokenProcessPool as exc:
            raise BagError(f"a localization worker died ({exc})") from None
        return future

    def close(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
