from __future__ import annotations

from pathlib import Path

import pytest

import locus_core.models.model
from locus_core.cli.main import main


@pytest.mark.parametrize("command", ["build", "merge"])
def test_map_build_and_merge_refuse_a_folder_in_use_before_their_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # Saving refuses a folder that is not a map; a build (minutes to hours), or a merge's reading of
    # both maps and training an index on their descriptors, must not run first.
    from locus_core.mapping import LandmarkMap

    out = tmp_path / "photos"
    out.mkdir()
    (out / "keep.jpg").write_bytes(b"x")

    def too_early(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"map {command} did its work before --out was checked")

    if command == "build":
        monkeypatch.setattr(locus_core.models.model, "load_model", too_early)
        argv = ["map", "build", "--model", "backbone:xfeat", "--data", str(tmp_path / "data"), "--out", str(out)]
    else:
        monkeypatch.setattr(LandmarkMap, "load", too_early)
        argv = ["map", "merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]
    assert main(argv) == 2
    assert "photos: a folder that is not a LoCUS map" in capsys.readouterr().err
    assert (out / "keep.jpg").is_file()


@pytest.mark.parametrize("bad", ["out", "frames"])
def test_map_localize_checks_its_report_folder_and_frames_before_loading_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    # The report was written after every query was localized: a file in the way of --out lost the run.
    import locus_core.pipeline
    from locus_core.data.synthetic import generate_scene
    from locus_core.mapping import LandmarkMap

    scene = generate_scene(tmp_path / "scene", seed=0, rooms=1, frames=4, size=(60, 80))
    LandmarkMap(model_hash="backbone-test", dim=16).save(tmp_path / "map")
    (tmp_path / "report").write_text("not a folder")

    def no_model(*args, **kwargs) -> None:
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(locus_core.pipeline, "FrameProcessor", no_model)
    out, frames = (tmp_path / "report", "0:4") if bad == "out" else (tmp_path / "new", "9:12")
    argv = ["map", "localize", "--map", str(tmp_path / "map"), "--data", str(scene), "--frames", frames, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert ("report: cannot write the report there" if bad == "out" else "frames '9:12' select nothing") in err
