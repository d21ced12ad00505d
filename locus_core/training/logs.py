"""Run logs: ``train_log.csv``/``.jsonl`` (one row per step), ``val_log.csv``, TensorBoard events and
``summary.json``.

On resume, rows a killed run wrote after its last checkpoint are dropped, so every step appears
once and the logs read as one uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from locus_core.training.tensorboard import EventWriter

_STEP_FIELDS = ["step", "epoch", "loss", "skipped", "scene", "landmarks", "patches", "positives", "lr", "seconds"]
_VAL_FIELDS = ["step", "epoch", "val_ap", "val_ap_raw", "seconds"]


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def scale_field(radius: float) -> str:
    """The log key of the VSAP of the scale with ``radius``."""
    return f"vsap_r{radius:g}"


class RunLog:
    """Logs of the run in ``run_dir``; ``radii``: the model's, one ``vsap_r*`` column each."""

    def __init__(self, run_dir: Path, *, radii: tuple[float, ...], resume_step: int = 0) -> None:
        # The columns come from the config, not the first record: a skipped first step has no
        # per-scale values, and a CSV keeps the columns of its header.
        self._step_fields = _STEP_FIELDS + sorted(scale_field(r) for r in radii)
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._steps_csv = self.dir / "train_log.csv"
        self._steps_jsonl = self.dir / "train_log.jsonl"
        self._val_csv = self.dir / "val_log.csv"
        for path in (self._steps_csv, self._val_csv, self._steps_jsonl):
            _truncate_after(path, resume_step)
        self._events = EventWriter(self.dir / "events", purge_after=resume_step)

    def write_step(self, record: dict[str, Any]) -> None:
        _append_csv(self._steps_csv, self._step_fields, record)
        with self._steps_jsonl.open("a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        if not record.get("skipped"):
            scalars = {"train/loss": record["loss"], "train/positives": record["positives"]}
            scalars.update({f"train/{k}": v for k, v in record.items() if k.startswith("vsap_")})
            self._events.scalars(record["step"] + 1, scalars)

    def write_val(self, record: dict[str, Any]) -> None:
        _append_csv(self._val_csv, _VAL_FIELDS, record)
        scalars = {"val/ap": record["val_ap"]}
        if record.get("val_ap_raw") is not None:
            scalars["val/ap_raw_backbone"] = record["val_ap_raw"]
        self._events.scalars(record["step"], scalars)

    def write_summary(self, summary: dict[str, Any]) -> None:
        (self.dir / "summary.json").write_text(json.dumps({k: _clean(v) for k, v in summary.items()}, indent=2))


def _append_csv(path: Path, fields: list[str], record: dict[str, Any]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with path.open() as f:
            header = next(csv.reader(f), fields)
        fields = header  # keep the file's columns (same config ⇒ same keys)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: _clean(record.get(k)) for k in fields})


def _truncate_after(path: Path, step: int) -> None:
    """Keep rows of steps done before ``step`` (step indices are 0-based for steps, counts for val)."""
    if not path.exists():
        return
    if step == 0:
        path.unlink()
        return
    lines = path.read_text().splitlines(keepends=True)
    if path.suffix == ".jsonl":
        kept = [ln for ln in lines if (s := _row_step(ln)) is not None and s < step]
    else:
        header, rows = lines[:1], lines[1:]
        fields = next(csv.reader(header)) if header else []
        is_val = path.name.startswith("val")
        kept = header + [
            r for r in rows
            if (s := _row_step(r, fields)) is not None and (s <= step if is_val else s < step)
        ]
    path.write_text("".join(kept))


def _row_step(line: str, fields: list[str] | None = None) -> int | None:
    """The step of a JSONL line (or a CSV row under header ``fields``); None for a line that an OS
    crash cut short or left as zeros (logs are not synced): it is dropped, not a reason to refuse
    resuming. A line without its newline is cut short even if it parses, and the next row would
    be appended to it."""
    if not line.endswith("\n"):
        return None
    try:
        if fields is None:
            return int(json.loads(line)["step"])
        row = next(csv.reader([line]))
        return int(row[fields.index("step")]) if len(row) == len(fields) else None
    except (ValueError, KeyError, TypeError, StopIteration, csv.Error):
        return None
