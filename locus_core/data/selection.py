"""``START:STOP[:STEP]`` frame selections, applied to source frame indices (not positions)."""

from __future__ import annotations

from collections.abc import Sequence

from locus_core.data.errors import SelectionError


def parse_frames(spec: str) -> slice:
    """``"600:1000:10"`` → ``slice(600, 1000, 10)``; empty fields are open (``":100"``, ``"::5"``)."""
    parts = spec.strip().split(":")
    if not 2 <= len(parts) <= 3:
        raise SelectionError(f"frames {spec!r}: expected START:STOP[:STEP], e.g. 600:1000:10")
    try:
        start, stop, *rest = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise SelectionError(f"frames {spec!r}: START, STOP and STEP must be integers") from None
    step = rest[0] if rest else None
    if step is not None and step <= 0:
        raise SelectionError(f"frames {spec!r}: STEP must be positive, got {step}")
    if (start is not None and start < 0) or (stop is not None and stop < 0):
        raise SelectionError(f"frames {spec!r}: frame indices are never negative")
    return slice(start, stop, step)


def select(indices: Sequence[int], spec: str | None, *, source: str = "data set") -> list[int]:
    """Positions (into ``indices``) of the frames whose index value ``spec`` selects.

    Python slice semantics on the index *value*: ``600:1000:10`` keeps indices 600, 610, ... 990
    that exist, so on a sequence stored every 2nd frame it keeps 600, 610, ... (not every 10th file).
    Raises SelectionError when nothing is selected.
    """
    if spec is None:
        if not indices:
            raise SelectionError(f"{source}: no frames found")
        return list(range(len(indices)))
    sl = parse_frames(spec)
    start = 0 if sl.start is None else sl.start
    step = 1 if sl.step is None else sl.step
    positions = [
        p for p, idx in enumerate(indices)
        if idx >= start and (sl.stop is None or idx < sl.stop) and (idx - start) % step == 0
    ]
    if not positions:
        span = f"{min(indices)}..{max(indices)}" if indices else "none"
        raise SelectionError(f"{source}: frames {spec!r} select nothing (frame indices present: {span})")
    return positions


def describe(indices: Sequence[int]) -> str:
    """The selection that picks exactly ``indices`` (sorted frame index values) again: ``START:STOP``
    or ``START:STOP:STEP`` when they are evenly spaced, else ``FIRST..LAST`` (no selection picks
    them; the count says how many); "" for none."""
    if not indices:
        return ""
    first, last = indices[0], indices[-1]
    steps = {b - a for a, b in zip(indices, indices[1:])}
    if len(steps) > 1:
        return f"{first}..{last}"
    step = steps.pop() if steps else 1
    return f"{first}:{last + 1}" + (f":{step}" if step > 1 else "")
