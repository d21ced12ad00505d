from __future__ import annotations

import csv
from pathlib import Path

from locus_core.training.logs import RunLog


def _step(step: int, **extra: float) -> dict:
    return {"step": step, "epoch": 0, "scene": "s", "landmarks": 8, "patches": 40, "seconds": 0.1, **extra}


def test_per_scale_columns_survive_a_skipped_first_step(tmp_path: Path) -> None:
    run = RunLog(tmp_path, radii=(0.2, 0.05))
    run.write_step(_step(0, loss=float("nan"), skipped=1, positives=0))  # no landmark with a positive
    run.write_step(_step(1, loss=0.4, skipped=0, positives=12, lr=1e-3, **{"vsap_r0.2": 0.7, "vsap_r0.05": 0.5}))
    with (tmp_path / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["vsap_r0.2"] == "" and rows[0]["loss"] == ""
    assert rows[1]["vsap_r0.2"] == "0.7" and rows[1]["vsap_r0.05"] == "0.5"
