"""Approximate time synchronisation of N streams (rgb, depth, camera_info): the node's (message_filters
is not in the PyPI ROS wheels) and offline bag replay's, so both pair messages the same way.

Policy: stream 0 (the colour image) is the reference. Each of its messages, oldest first, takes the
message of every other stream closest in time to it, once that choice is certain: the stream holds a
message at or after the reference stamp (later ones can only be farther), or its newest message is
within half the stream's own period of the reference (its next one will be farther); and only if
no later reference, closer to that message, takes it as its own closest (else this reference's own
partner was lost, and it is dropped). A set whose stamps lie within ``max_interval`` is emitted
and everything up to it removed; a reference whose partners are farther is dropped. Waiting for
certainty keeps one lost message from shifting every later pair by a frame (at 30 Hz a 50 ms
tolerance admits the neighbouring frame's messages).
Stamps that differ by about half a period are ambiguous: each message goes with the reference
nearest in time (a depth image stamped 17 ms after its colour image, at 30 Hz, is nearer the next one).
Messages that leave a queue unmatched are counted as dropped. A stream whose stamp falls more than
``max_interval`` behind its own newest means time went backwards (a looped bag, a restarted driver):
the queues are cleared and the jump counted, instead of stalling forever.
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
        streams: number of input streams (>= 1); stream 0 is the reference (see the module).
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
        self._newest: list[float | None] = [None] * streams  # per stream, since the last reset
        self._period: list[float | None] = [None] * streams  # per stream: its shortest step between stamps
        self._lock = threading.Lock()

    def add(self, stream: int, stamp: float, msg: Any) -> None:
        """Offer one message of ``stream`` with its stamp in seconds."""
        with self._lock:
            matched = self._add(stream, stamp, msg)
        for messages in matched:
            self._callback(*messages)

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def flush(self) -> None:
        """The input has ended (a recording's last message): every reference still waiting takes its
        closest partners, as no later message will come; what is left is counted as dropped."""
        with self._lock:
            matched = self._drain(final=True)
            self._clear()
        for messages in matched:
            self._callback(*messages)

    def _clear(self) -> None:
        for queue in self._queues:
            self.stats.dropped += len(queue)
            queue.clear()
        self._newest = [None] * len(self._queues)
        self._period = [None] * len(self._queues)

    def _add(self, stream: int, stamp: float, msg: Any) -> list[Sequence[Any]]:
        newest = self._newest[stream]
        if newest is not None and stamp < newest - self.max_interval:
            self._clear()
            self.stats.time_jumps += 1
            newest = None
        if newest is not None and stamp > newest:
            # The shortest step, not the last: after a lost message the last step is two periods,
            # and "the next one is due a period after the newest" would then declare the newest
            # certain while the lost one's successor, closer, is still to come.
            period = self._period[stream]
            self._period[stream] = stamp - newest if period is None else min(period, stamp - newest)
        self._newest[stream] = stamp if newest is None else max(newest, stamp)
        queue = self._queues[stream]
        position = next((i for i, (s, _) in enumerate(queue) if s >= stamp), len(queue))
        if position < len(queue) and queue[position][0] == stamp:
            queue[position] = (stamp, msg)  # a duplicate stamp replaces the earlier message
            self.stats.dropped += 1
        else:
            queue.insert(position, (stamp, msg))
        if len(queue) > self.queue_size:
            # the one farthest from the newest arrival: the oldest, or a straggler from before a jump
            del queue[max(range(len(queue)), key=lambda i: abs(queue[i][0] - stamp))]
            self.stats.dropped += 1
        return self._drain()

    def _drain(self, final: bool = False) -> list[Sequence[Any]]:
        """Every set the queues now decide, oldest first (dropping the references that have none)."""
        matched = []
        while (found := self._match_oldest_reference(final)) is not None:
            if found:
                matched.append(found)
        return matched

    def _match_oldest_reference(self, final: bool = False) -> Sequence[Any] | None:
        """Emit or drop the oldest reference message once its partners are certain (``final``: the
        input has ended): the set, [] when it was dropped, None while waiting."""
        references = self._queues[0]
        if not references:
            return None
        stamp = references[0][0]
        chosen = [0]
        for stream in range(1, len(self._queues)):
            index = self._certain_partner(stream, stamp, final)
            if index is None:
                return None
            owner = self._certain_reference(self._queues[stream][index][0], final)
            if owner is None:
                return None
            if owner > 0:  # a later reference is closer to it: does that one take it?
                rival = self._certain_partner(stream, references[owner][0], final)
                if rival is None:
                    return None
                if rival == index:  # yes: this reference's own partner was lost
                    del references[0]
                    self.stats.dropped += 1
                    return []
            chosen.append(index)
        stamps = [q[i][0] for q, i in zip(self._queues, chosen)]
        if max(stamps) - min(stamps) > self.max_interval:
            del references[0]
            self.stats.dropped += 1
            return []
        matched = [q[i][1] for q, i in zip(self._queues, chosen)]
        for q, i in zip(self._queues, chosen):
            self.stats.dropped += i  # older than the chosen one: never emitted
            del q[: i + 1]
        self.stats.emitted += 1
        return matched

    def _certain_partner(self, stream: int, stamp: float, final: bool) -> int | None:
        """Index of ``stream``'s message closest to ``stamp`` if no later message can be closer."""
        queue = self._queues[stream]
        if not queue:
            return None
        closest = min(range(len(queue)), key=lambda i: abs(queue[i][0] - stamp))
        return None if self._later_may_be_closer(stream, stamp, final) else closest

    def _certain_reference(self, stamp: float, final: bool) -> int | None:
        """Index of the reference message closest to a partner stamped ``stamp`` if no later
        reference can be closer (ties go to the older one). Only whether it is the oldest matters:
        with two or more references queued, a later one already is, or may be, closer."""
        references = self._queues[0]
        closest = min(range(len(references)), key=lambda i: (abs(references[i][0] - stamp), i))
        if closest > 0 or len(references) > 1:
            return closest
        return None if self._later_may_be_closer(0, stamp, final) else closest

    def _later_may_be_closer(self, stream: int, stamp: float, final: bool) -> bool:
        """Whether a message of ``stream`` still to come may be closer to ``stamp`` than its queued
        (non-empty) ones: not once the input has ended, nor when the newest is at or after the stamp
        (later ones are farther), nor when the newest is within half the stream's period before it
        (the next one is due a period after the newest, farther still)."""
        newest = self._queues[stream][-1][0]
        if final or newest >= stamp:
            return False
        period = self._period[stream]
        return period is None or stamp - newest >= period / 2
