from __future__ import annotations

from pathlib import Path

import pytest

from locus_core.bench import BenchResult, record


def test_a_report_file_that_cannot_be_written_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk while config.yaml is written: its cut-short .config.yaml.tmp<pid> was left in the report
    out = tmp_path / "report"
    record.save_report(out, [BenchResult("old", 1.0, 2.0)], {"loss": {"repeats": 10}})
    previous = (out / "config.yaml").read_text()
    write_text = Path.write_text

    def full(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if ".config.yaml" in self.name:
            write_text(self, text[:10])
            raise OSError(28, "No space left on device")
        return write_text(self, text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space left"):
        record.save_report(out, [BenchResult("new", 5.0, 6.0)], {"loss": {"repeats": 1}})
    # the previous config, whole, and no results: they would read as measured under it
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "results.txt"]
    assert (out / "config.yaml").read_text() == previous
