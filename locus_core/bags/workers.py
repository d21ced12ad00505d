"""Localizing a bag's frames in worker processes, for replays of long recordings on many cores.

Each worker runs its own ``FrameProcessor`` (the node's code path) over the same map. Without
tracking the localizer keeps no state from one frame to the next: each frame goes to whichever
worker is free and N workers give the results of one, in the same order; what changes is each
frame's latency, as a worker has 1/N of the CPU threads. A tracking localizer (``track_period_s`` >
0) poses each frame from the one before, so the stream is cut into windows of ``track_period_s`` of
stream time, each tracked by one worker from a full localization at its start, as one process
relocalizes once a period; as each window starts afresh its results do not depend on which worker
runs it, and they are those of one process up to where the full localizations fall. Windows differ
in cost (views that tracking cannot pose are localized in full), so they wait here until a worker
is nearly done with its own: given out as they were read, by the frames each worker had waiting,
one worker of two ended with 40 % more work than the other. Processes rather than threads: the localizer's numpy and the
model's runtime each keep a few threads busy, and on 2 cores two single-threaded processes
localize 1.57x the frames of one two-threaded process (two threads in one process: 1.48x, and the
``FrameProcessor`` lock would have to go).
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import connection
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.bags.errors import BagError
from locus_core.data.frame import PosedFrame

SPARE_FRAMES = 2  # a worker with this many frames or fewer left is given the next window: it never waits for one
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
        _processor.warm_up()  # before the replay's clock starts, as the serial replay's processor
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


_Job = tuple[PosedFrame, "np.ndarray | None", Future]  # a frame, its odometry, the future of its result


@dataclass
class _Window:
    """Frames of one window of stream time (of one frame, without tracking) not sent yet."""

    key: int
    jobs: deque[_Job] = field(default_factory=deque)
    worker: int | None = None  # the worker that took it
    sent: int = 0


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
            much stream time (0: each frame to whichever worker is free).
        max_in_flight: frames to submit before waiting for the oldest: two per worker keep each busy
            with few images in memory; with windows, 48 per worker (~30 MB at 256x320): the windows
            ahead must be read for a worker to take one while another finishes a long one.
        input_size: (H, W) the model reads (``FrameProcessor.input_size``): frames sent at that
            size cost a quarter of the bytes of 640x480 ones.

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
        # Frames wait in ``_windows`` until the dispatcher thread sends them; it alone sends, so a
        # worker gets its frames in stream order. The result callbacks (executors' threads) only
        # count: nothing calls into an executor while holding ``_ready``, whatever locks the
        # executors hold while they call back.
        self._ready = threading.Condition()
        self._windows: deque[_Window] = deque()  # not all sent yet, in stream order
        self._busy = [0] * workers  # frames sent to each worker and not done
        self._closing = False
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
        self._dispatcher = threading.Thread(target=self._dispatch, name="worker-pool-dispatch", daemon=True)
        self._dispatcher.start()

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
        # without windows each frame is one: it may go to any worker
        window = math.floor(frame.stamp / self.window_s) if self.window_s > 0 else self._submitted
        self._submitted += 1
        with self._ready:
            if self._closing:
                raise BagError("the localization workers are closed")
            if not self._windows or self._windows[-1].key != window:
                self._windows.append(_Window(window))
            self._windows[-1].jobs.append((frame, odometry, future))
            self._ready.notify()
        return future

    def _dispatch(self) -> None:
        """The dispatcher thread: sends each window's frames to its worker as they come, and gives the
        oldest windows waiting to workers with at most ``SPARE_FRAMES`` frames left of theirs."""
        while True:
            with self._ready:
                while not self._closing and not (sends := self._take()):
                    self._ready.wait()
                if self._closing:
                    return
            for worker, job, restart in sends:
                self._send(worker, job, restart)

    def _take(self) -> list[tuple[int, _Job, bool]]:
        """(worker, job, restart) of the frames to send now, counted as busy (under ``_ready``)."""
        sends = []
        for window in self._windows:
            if window.worker is None:
                worker = min(range(self.workers), key=self._busy.__getitem__)
                if self._busy[worker] > SPARE_FRAMES:
                    break  # later windows wait too: a worker takes them in order
                window.worker = worker
            while window.jobs:
                job = window.jobs.popleft()
                if not job[2].set_running_or_notify_cancel():  # cancelled by its caller while it waited
                    continue
                # a window starts afresh: tracking must not go on from another window
                sends.append((window.worker, job, window.sent == 0))
                window.sent += 1
                self._busy[window.worker] += 1
        while len(self._windows) > 1 and not self._windows[0].jobs:  # the last one may get more frames
            self._windows.popleft()
        return sends

    def _send(self, worker: int, job: _Job, restart: bool) -> None:
        frame, odometry, future = job
        try:
            done = self._executors[worker].submit(_localize, frame, odometry, restart)
        except (BrokenProcessPool, RuntimeError) as exc:  # RuntimeError: shut down after a worker died
            self._finished(worker, future, BagError(f"a localization worker died ({exc})"))
            return
        done.add_done_callback(partial(self._finished, worker, future))

    def _finished(self, worker: int, future: Future, done: Future | BagError) -> None:
        """Relays a worker's result (or why it has none) to the frame's ``future``."""
        with self._ready:
            self._busy[worker] -= 1
            self._ready.notify()
        if isinstance(done, BagError):
            future.set_exception(done)
        elif done.cancelled():  # close() dropped it (exception() would raise here, logged once per frame)
            future.set_exception(CancelledError("the localization workers were closed"))  # running: no cancel()
        elif isinstance(exc := done.exception(), BrokenProcessPool):
            future.set_exception(BagError(f"a localization worker died ({exc})"))
        elif exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(done.result())

    def close(self) -> None:
        with self._ready:
            self._closing = True
            for window in self._windows:
                for _, _, future in window.jobs:  # not sent: still pending
                    future.cancel()
            self._windows.clear()
            self._ready.notify()
        self._dispatcher.join()
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
