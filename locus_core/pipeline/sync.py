"""Approximate time synchronisation of N streams (rgb, depth, camera_info): the node's (message_filters
is not in the PyPI ROS wheels) and offline bag replay's, so both pair messages the same way.

Policy: each stream keeps a bounded queue; when a message arrives, the message of every other
stream closest in time to it is chosen, and if all chosen stamps lie within ``max_interval`` the
set is emitted and everything up to and including it is removed (older messages can no longer
form a better set). Messages that leave a queue unmatched are counted as dropped. A stamp older
than the last emitted set by more than ``max_interval`` means time went backwards (a looped bag,
a restarted driver): the queues are cleared and the jump is counted, instead of stalling forever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class SyncStats:
    emitted: int = 0
    dropped: int = 0  # messages that left a queue without being part of an emitted set
    time_jumps: int = 0  # times the input went backwards in time and the queues were reset


class ApproximateTimeSynchronizer:
    """Calls ``callback(*messages)`` (one per stream, in stream order) for each matched set.

    Args:
        streams: number of input streams (>= 1).
        max_interval: largest spread (s) between the stamps of one set.
        queue_size: messages kept per stream while waiting for partners.
        callback: receives the messages; it runs in the thread that called ``add``.
    """

    def __init__(self, streams: int, max_interval: float, queue_size: int, callback: Callable[..., None]) -> None:
        if streams < 1:
            raise ValueError(f"streams must be >= 1, got {streams}")
        if max_interval < 0:
            raise ValueError(f"max_interval must be >= 0 s, got {max_interval}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.max_interval = max_interval
        self.queue_size = queue_size
        self.stats = SyncStats()
        self._callback = callback
        self._queues: list[list[tuple[float, Any]]] = [[] for _ in range(streams)]  # sorted by stamp
        self._last_emitted: float | None = None
        self._lock = threading.Lock()

    def add(self, stream: int, stamp: float, msg: Any) -> None:
        """Offer one message of ``stream`` with its stamp in seconds."""
        with self._lock:
            matched = self._add(stream, stamp, msg)
        if matched is not None:
            self._callback(*matched)

    def reset(self) -> None:
        with self._lock:
            self._clear()
            self._last_emitted = None

    def _clear(self) -> None:
        for queue in self._queues:
            self.stats.dropped += len(queue)
            queue.clear()

    def _add(self, stream: int, stamp: float, msg: Any) -> Sequence[Any] | None:
        if self._last_emitted is not None and stamp < self._last_emitted - self.max_interval:
            self._clear()
            self._last_emitted = None
            self.stats.time_jumps += 1
        queue = self._queues[stream]
        position = next((i for i, (s, _) in enumerate(queue) if s >= stamp), len(queue))
        if position < len(queue) and queue[position][0] == stamp:
            queue[position] = (stamp, msg)  # a duplicate stamp replaces the earlier message
            self.stats.dropped += 1
        else:
            queue.insert(position, (stamp, msg))
        if len(queue) > self.queue_size:
            del queue[0]
            self.stats.dropped += 1
        chosen: list[int] = []
        for other in self._queues:
            if not other:
                return None
            chosen.append(min(range(len(other)), key=lambda i: abs(other[i][0] - stamp)))
        stamps = [q[i][0] for q, i in zip(self._queues, chosen)]
        if max(stamps) - min(stamps) > self.max_interval:
            return None
        matched = [q[i][1] for q, i in zip(self._queues, chosen)]
        for q, i in zip(self._queues, chosen):
            self.stats.dropped += i  # older than the chosen one: never emitted
            del q[: i + 1]
        self.stats.emitted += 1
        self._last_emitted = max(stamps)
        return matched
