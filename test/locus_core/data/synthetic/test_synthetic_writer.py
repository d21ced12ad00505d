"""generate_scene writes the 7-Scenes-style layout, completely or visibly not at all."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from locus_core.config import load_config
from locus_core.data import FormatError, open_dataset
from locus_core.data.synthetic import SceneConfig, SyntheticError, SyntheticScene, generate_scene

CONFIG = SceneConfig(texture_size=32)


def test_writes_the_layout(tmp_path: Path) -> None:
    out = generate_scene(tmp_path / "scene", seed=2, rooms=2, frames=3, size=(48, 64), config=CONFIG)
    names = sorted(p.name for p in out.iterdir())
    expected = ["camera-intrinsics.txt", "scene.json"] + [
        f"frame-{i:06d}.{kind}" for i in range(3)
        for kind in ("color.png", "depth.png", "instance.png", "pose.txt", "segm.png")]
    assert names == sorted(expected)
    meta = json.loads((out / "scene.json").read_text())
    assert meta["generator"] == "locus-synthetic" and meta["seed"] == 2 and meta["rooms"] == 2
    assert meta["classes"]["1"] == "wall" and meta["frames"] == 3
    scene = SyntheticScene(2, 2, CONFIG)
    K = np.loadtxt(out / "camera-intrinsics.txt")
    np.testing.assert_allclose(K, scene.intrinsics((48, 64)))
    T = scene.trajectory(3)[1]
    np.testing.assert_allclose(np.loadtxt(out / "frame-000001.pose.txt"), T, atol=1e-9)
    rgb, depth, semantic, instance = scene.render(T, K, (48, 64))
    color = cv2.imread(str(out / "frame-000001.color.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(color[..., ::-1], rgb)
    mm = cv2.imread(str(out / "frame-000001.depth.png"), cv2.IMREAD_UNCHANGED)
    assert mm.dtype == np.uint16 and np.abs(mm / 1000.0 - depth).max() <= 0.0005 + 1e-6
    for suffix, labels in ((".segm.png", semantic), (".instance.png", instance)):
        image = cv2.imread(str(out / f"frame-000001{suffix}"), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint16
        np.testing.assert_array_equal(image, labels)
    assert set(np.unique(instance)) - {0} <= {int(k) for k in meta["instances"]}


def test_rewrites_a_previous_scene_but_refuses_other_folders(tmp_path: Path) -> None:
    out = tmp_path / "scene"
    generate_scene(out, frames=4, size=(32, 40), config=CONFIG)
    generate_scene(out, frames=2, size=(32, 40), config=CONFIG)
    assert not (out / "frame-000003.color.png").exists() and (out / "scene.json").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(SyntheticError, match="not empty"):
        generate_scene(other, frames=1, size=(32, 40), config=CONFIG)
    assert (other / "notes.txt").read_text() == "keep me"


def test_scene_json_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "scene"
    calls = {"n": 0}
    original = SyntheticScene.render

    def failing(self: SyntheticScene, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SyntheticScene, "render", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_scene(out, frames=3, size=(32, 40), config=CONFIG)
    assert list(out.glob("frame-*.color.png")) and not (out / "scene.json").exists()
    # the marker left behind: readers refuse the folder, the next run rewrites it
    with pytest.raises(FormatError, match=r"scene: an interrupted synthetic scene: re-run locus data synth"):
        open_dataset(out)
    monkeypatch.undo()
    generate_scene(out, frames=2, size=(32, 40), config=CONFIG)
    assert open_dataset(out).format == "synthetic" and not (out / "scene.json.tmp").exists()


def test_an_interrupted_rewrite_is_marked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = generate_scene(tmp_path / "scene", frames=3, size=(32, 40), config=CONFIG)
    calls = {"n": 0}
    original = Path.unlink

    def interrupted(self: Path, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # scene.json is gone, the old frames are not
            raise KeyboardInterrupt
        original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_scene(out, frames=2, size=(32, 40), config=CONFIG)
    monkeypatch.undo()
    assert not (out / "scene.json").exists() and list(out.glob("frame-*.pose.txt"))
    with pytest.raises(FormatError, match="an interrupted synthetic scene"):
        open_dataset(out)
    generate_scene(out, frames=2, size=(32, 40), config=CONFIG)
    assert len(open_dataset(out)) == 2


def test_config_loads_from_yaml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "scene.yaml"
    path.write_text("rooms: 4\nroom_size: [4.0, 5.0]\ntextures: [tiles, wood]\n")
    config = load_config(SceneConfig, path, ["seed=9", "objects_per_room=[1, 2]"])
    assert (config.rooms, config.seed, config.room_size, config.objects_per_room) == (4, 9, (4.0, 5.0), (1, 2))
    assert config.textures == ("tiles", "wood")
    with pytest.raises(SyntheticError, match="textures"):
        load_config(SceneConfig, None, ["textures=[plaid]"])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"rooms": 0}, "rooms"), ({"frames": 0}, "frames"), ({"size": (16, 320)}, "size"),
    ({"size": (240,)}, "size"), ({"rooms": 2.5}, "rooms")])
def test_bad_parameters(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(SyntheticError, match=match):
        generate_scene(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()  # nothing written before the checks pass


def test_an_output_that_cannot_be_written_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a file where a folder is needed, a full disk: OSError tracebacks from mkdir and np.savetxt
    (tmp_path / "file").write_text("x")
    with pytest.raises(SyntheticError, match=r"file/scene: cannot write the scene \(Not a directory\)"):
        generate_scene(tmp_path / "file" / "scene", frames=1, size=(32, 32), config=CONFIG)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savetxt", full)
    with pytest.raises(SyntheticError, match=r"scene: cannot write the scene \(No space left on device\)"):
        generate_scene(tmp_path / "scene", frames=2, size=(32, 32), config=CONFIG)


def test_an_out_under_the_home_folder_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    generate_scene("~/scene", frames=2, size=(48, 64))  # `locus data synth --out=~/scene`: no shell expands it
    assert len(open_dataset(tmp_path / "home" / "scene")) == 2 and not (tmp_path / "~").exists()
