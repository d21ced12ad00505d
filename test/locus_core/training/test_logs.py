from __future__ import annotations

import csv
import json
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


def test_resume_drops_a_row_an_os_crash_cut_short(tmp_path: Path) -> None:
    run = RunLog(tmp_path, radii=(0.2,))
    for step in range(3):
        run.write_step(_step(step, loss=0.5, skipped=0, positives=12, lr=1e-3, **{"vsap_r0.2": 0.5}))
    for name in ("train_log.csv", "train_log.jsonl"):  # the tail of step 3, only partly on disk
        with (tmp_path / name).open("a") as f:
            f.write("\0" * 12 if name.endswith(".csv") else '{"step": 3, "epoch"')  # zeros: ext4's
    with (tmp_path / "val_log.csv").open("w") as f:  # step 2's row, all but its newline
        f.write("step,epoch,val_ap,val_ap_raw,seconds\r\n2,0,0.5,0.4,0.3")
    RunLog(tmp_path, radii=(0.2,), resume_step=3)  # raised JSONDecodeError: the run could not resume
    assert (tmp_path / "val_log.csv").read_text() == "step,epoch,val_ap,val_ap_raw,seconds\n"
    with (tmp_path / "train_log.csv").open() as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["0", "1", "2"]
    lines = (tmp_path / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2]
