from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from locus_core.bench import recordings
from locus_core.data.synthetic import generate_scene


class FakeMap:
    def save(self, path: Path) -> None:
        path.mkdir(parents=True)
        (path / "manifest.json").write_text("{}")


@pytest.fixture()
def builds(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    import locus_core.mapping

    built: list[object] = []

    def build_map(model: object, frames: object, config: object) -> FakeMap:
        built.append(config)
        return FakeMap()

    monkeypatch.setattr(locus_core.mapping, "build_map", build_map)
    return built


def test_a_recording_changed_in_place_gets_a_new_map_and_bag(tmp_path: Path, builds: list[object]) -> None:
    # The key was the path and the frame selection: a scene regenerated (or a sequence re-recorded)
    # into the same folder was served the map and bag of the old one.
    scene = generate_scene(tmp_path / "scene", frames=4, rooms=1, size=(48, 64), seed=0)
    key = recordings.cache_key(scene, "0:4")
    first = recordings.cached_map("backbone:test", scene, "0:4", tmp_path / "cache")
    assert recordings.cached_map("backbone:test", scene, "0:4", tmp_path / "cache") == first and len(builds) == 1
    generate_scene(scene, frames=4, rooms=1, size=(48, 64), seed=1)
    assert recordings.cache_key(scene, "0:4") != key
    assert recordings.cached_map("backbone:test", scene, "0:4", tmp_path / "cache") != first and len(builds) == 2


def test_a_changed_map_config_gets_a_new_map(
    tmp_path: Path, builds: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    import locus_core.mapping

    scene = generate_scene(tmp_path / "scene", frames=4, rooms=1, size=(48, 64), seed=0)
    first = recordings.cached_map("backbone:test", scene, "0:4", tmp_path / "cache")
    config = locus_core.mapping.MapConfig
    monkeypatch.setattr(locus_core.mapping, "MapConfig",
                        lambda: dataclasses.replace(config(), landmarks_per_keyframe=7))
    assert recordings.cached_map("backbone:test", scene, "0:4", tmp_path / "cache") != first
    assert builds[-1].landmarks_per_keyframe == 7
