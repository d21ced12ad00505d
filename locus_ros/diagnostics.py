"""Counters the node keeps and their rendering as diagnostic_msgs/DiagnosticStatus.

Everything here is updated from the executor and the worker thread, so it takes a lock; rendering
is a pure function of a snapshot, testable without a node.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

# How far back input rates and latency percentiles look.
WINDOW_S = 5.0
LATENCY_SAMPLES = 200
# The node's state error (and ~/status message) until its model and map are in.
STARTING = "loading the model"
# How long a bad input message keeps the inputs status WARN (its count stays in the values).
BAD_WINDOW_S = 60.0
BAD_KINDS = ("bad_message", "unknown_encoding")


class RateMeter:
    """Messages per second over the last ``WINDOW_S`` seconds of wall time."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self.total = 0

    def tick(self, now: float) -> None:
        self._times.append(now)
        self.total += 1

    def rate(self, now: float) -> float:
        while self._times and self._times[0] < now - WINDOW_S:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(now - self._times[0], 1e-9)


@dataclass
class NodeStats:
    """What /diagnostics and ~/status report. Mutate only through the methods (they lock)."""

    inputs: dict[str, RateMeter] = field(default_factory=dict)
    stamps: dict[str, float] = field(default_factory=dict)  # input topic -> header stamp (s) of its newest message
    frames_received: int = 0  # synchronised sets handed to the worker
    frames_processed: int = 0
    frames_dropped: int = 0  # replaced in the worker queue by a newer frame
    frames_localized: int = 0
    frames_tracked: int = 0  # of frames_localized, posed by tracking (locus_core.mapping.tracking)
    keyframes_inserted: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason kind -> count (bad message, tf, ...)
    incompatible_qos: dict[str, str] = field(default_factory=dict)  # input topic -> why a publisher's messages never reach it
    last_error: str = ""
    last_reason: str = ""  # why the last processed frame gave no pose ("" when it did)
    localized: bool = False
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    bad_times: deque = field(default_factory=lambda: deque(maxlen=1000))  # time.monotonic() of bad input messages
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def message_in(self, topic: str, stamp: float) -> None:
        with self._lock:
            self.inputs.setdefault(topic, RateMeter()).tick(time.monotonic())
            self.stamps[topic] = stamp

    def incompatible(self, topic: str, reason: str) -> None:
        with self._lock:
            self.incompatible_qos[topic] = reason

    def skip(self, kind: str, error: str) -> None:
        with self._lock:
            self.skipped[kind] += 1
            self.last_error = error
            if kind in BAD_KINDS:
                self.bad_times.append(time.monotonic())

    def count(self, attribute: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, attribute, getattr(self, attribute) + n)

    def processed(self, *, localized: bool, reason: str, latency_ms: float, tracked: bool = False) -> None:
        with self._lock:
            self.frames_processed += 1
            self.frames_localized += int(localized)
            self.frames_tracked += int(localized and tracked)
            self.localized = localized
            self.last_reason = reason
            self.latencies_ms.append(latency_ms)

    def snapshot(self) -> dict:
        """Plain values (a consistent copy) for rendering."""
        now = time.monotonic()
        with self._lock:
            latencies = np.asarray(self.latencies_ms, dtype=np.float64)
            return {
                "rates": {topic: meter.rate(now) for topic, meter in self.inputs.items()},
                "totals": {topic: meter.total for topic, meter in self.inputs.items()},
                "stamps": dict(self.stamps),
                "bad_recent": sum(t >= now - BAD_WINDOW_S for t in self.bad_times),
                "frames_received": self.frames_received,
                "frames_processed": self.frames_processed,
                "frames_dropped": self.frames_dropped,
                "frames_localized": self.frames_localized,
                "frames_tracked": self.frames_tracked,
                "keyframes_inserted": self.keyframes_inserted,
                "skipped": dict(self.skipped),
                "incompatible_qos": dict(self.incompatible_qos),
                "last_error": self.last_error,
                "last_reason": self.last_reason,
                "localized": self.localized,
                "last_latency_ms": float(self.latencies_ms[-1]) if self.latencies_ms else 0.0,
                "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies.size else float("nan"),
                "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies.size else float("nan"),
            }


def _kv(values: dict) -> list[KeyValue]:
    def text(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    return [KeyValue(key=k, value=text(v)) for k, v in values.items()]


def render(snapshot: dict, *, node_name: str, inputs: list[str], sync: dict, state: dict) -> list[DiagnosticStatus]:
    """Two statuses: ``<node>: inputs`` (rates, synchronisation, bad messages) and ``<node>: localization``.

    ``inputs`` lists the subscribed topics (a missing one shows rate 0 and makes the status WARN);
    ``sync`` holds the synchroniser's counters; ``state`` the node's mode, map and model facts and
    ``error`` (a non-empty one makes the localization status ERROR: no map, model failed; WARN while
    ``starting``).
    """
    rates = snapshot["rates"]
    silent = [t for t in inputs if rates.get(t, 0.0) == 0.0]
    bad = snapshot["bad_recent"]
    input_level, input_msg = DiagnosticStatus.OK, "receiving"
    if silent:
        why = {t: f" ({r})" for t, r in snapshot["incompatible_qos"].items()}
        input_level, input_msg = DiagnosticStatus.WARN, f"no messages in {WINDOW_S:.0f} s on {', '.join(t + why.get(t, '') for t in silent)}"
    elif sync.get("emitted") == 0 and sync.get("dropped", 0) > 0:
        # Every input arrives, yet every set was dropped: stamps on clocks apart (a driver's hardware
        # clock beside the system's, camera_info stamped 0) show only here.
        newest = ", ".join(f"{snapshot['stamps'].get(t, float('nan')):.3f} on {t}" for t in inputs)
        input_level, input_msg = DiagnosticStatus.WARN, f"no rgb, depth and camera_info set within sync_max_interval: newest stamps {newest}"
    elif bad:
        input_level, input_msg = DiagnosticStatus.WARN, f"{bad} bad message(s) in {BAD_WINDOW_S:.0f} s; last: {snapshot['last_error']}"
    input_values = {f"rate_hz {t}": rates.get(t, 0.0) for t in inputs}
    input_values.update({f"received {t}": snapshot["totals"].get(t, 0) for t in inputs})
    input_values.update({f"sync_{k}": v for k, v in sync.items()})
    input_values.update({f"skipped_{k}": v for k, v in sorted(snapshot["skipped"].items())})
    input_values["last_error"] = snapshot["last_error"]

    if state.get("error"):
        # loading the model and the map takes seconds at every start: not a fault yet
        level, msg = DiagnosticStatus.WARN if state.get("starting") else DiagnosticStatus.ERROR, state["error"]
    elif snapshot["frames_processed"] == 0:
        level, msg = DiagnosticStatus.WARN, "no frame processed yet"
    elif state.get("mode") == "localization" and not snapshot["localized"]:
        level, msg = DiagnosticStatus.WARN, f"not localized: {snapshot['last_reason']}"
    elif snapshot["last_reason"]:
        # Localized but map->odom not published, or (mapping) a frame that was not inserted for any
        # reason: only a TF failure was reported, so mapping said OK while every frame failed.
        level, msg = DiagnosticStatus.WARN, snapshot["last_reason"]
    else:
        level, msg = DiagnosticStatus.OK, "localized" if state.get("mode") == "localization" else "mapping"
    values = {k: v for k, v in state.items() if k != "error"}
    values.update(
        {
            k: snapshot[k]
            for k in (
                "frames_received", "frames_processed", "frames_dropped", "frames_localized", "frames_tracked",
                "keyframes_inserted", "latency_p50_ms", "latency_p95_ms", "localized", "last_reason",
            )
        }
    )
    values["tf_errors"] = snapshot["skipped"].get("tf", 0)
    return [
        DiagnosticStatus(level=input_level, name=f"{node_name}: inputs", message=input_msg,
                         hardware_id=node_name, values=_kv(input_values)),
        DiagnosticStatus(level=level, name=f"{node_name}: localization", message=msg,
                         hardware_id=node_name, values=_kv(values)),
    ]
