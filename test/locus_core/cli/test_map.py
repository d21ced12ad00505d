from __future__ import annotations

from pathlib import Path

import pytest

import locus_core.models.model
from locus_core.cli.main import main


def test_map_build_refuses_a_folder_in_use_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Saving refuses a folder that is not a map; the build (minutes to hours) must not run first.
    out = tmp_path / "photos"
    out.mkdir()
    (out / "keep.jpg").write_bytes(b"x")

    def no_build(spec: str) -> None:
        raise AssertionError("the model was loaded: the build ran before --out was checked")

    monkeypatch.setattr(locus_core.models.model, "load_model", no_build)
    assert main(["map", "build", "--model", "backbone:xfeat", "--data", str(tmp_path / "data"), "--out", str(out)]) == 2
    assert "photos: a folder that is not a LoCUS map" in capsys.readouterr().err
    assert (out / "keep.jpg").is_file()
