from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from locus_core.mapping import LandmarkMap, MapError, store
from locus_core.mapping.store import FILES


def assert_same(a: LandmarkMap, b: LandmarkMap) -> None:
    assert a.model_hash == b.model_hash and a.config == b.config and a.sources == b.sources
    for x, y in ((a.keyframes.arrays(), b.keyframes.arrays()), (a.landmarks.arrays(), b.landmarks.arrays())):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    np.testing.assert_array_equal(a.index.reconstruct_all()[1], b.index.reconstruct_all()[1])


def test_round_trip(built_map: LandmarkMap, tmp_path: Path) -> None:
    built_map.save(tmp_path / "m")
    loaded = LandmarkMap.load(tmp_path / "m", expected_model_hash=built_map.model_hash)
    assert_same(built_map, loaded)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and set(manifest["files"]) == set(FILES)
    assert manifest["counts"]["landmarks"] == built_map.num_landmarks > 0
    # saving over an existing map replaces it and leaves no temporary directories
    built_map.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.parametrize("name", FILES)
def test_truncated_or_corrupt_file_is_named(built_map: LandmarkMap, tmp_path: Path, name: str) -> None:
    built_map.save(tmp_path / "m")
    path = tmp_path / "m" / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MapError, match=f"{name}.*truncated"):
        LandmarkMap.load(tmp_path / "m")
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(MapError, match=f"{name}: checksum mismatch"):
        LandmarkMap.load(tmp_path / "m")
    path.unlink()
    with pytest.raises(MapError, match=f"{name}: missing"):
        LandmarkMap.load(tmp_path / "m")


def test_version_model_and_manifest_errors(built_map: LandmarkMap, tmp_path: Path) -> None:
    built_map.save(tmp_path / "m")
    with pytest.raises(MapError, match="built with model backbone-test.*other"):
        LandmarkMap.load(tmp_path / "m", expected_model_hash="other")
    manifest = tmp_path / "m" / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(MapError, match="manifest.json: map format version 99 is not supported.*saved by a newer LoCUS: update"):
        LandmarkMap.load(tmp_path / "m")
    manifest.write_text(json.dumps({**data, "format_version": 0}))
    with pytest.raises(MapError, match=r"manifest.json: map format version 0 is not supported \(this build reads version 1\); rebuild"):
        LandmarkMap.load(tmp_path / "m")
    manifest.write_text("{not json")
    with pytest.raises(MapError, match="manifest.json: corrupt manifest"):
        LandmarkMap.load(tmp_path / "m")
    with pytest.raises(MapError, match="no map directory"):
        LandmarkMap.load(tmp_path / "absent")


def test_map_saved_before_the_depth_edge_option_keeps_edge_patches(built_map: LandmarkMap, tmp_path: Path) -> None:
    import yaml

    built_map.save(tmp_path / "m")
    config = tmp_path / "m" / "config.yaml"
    values = yaml.safe_load(config.read_text())
    del values["max_depth_spread"]
    data = yaml.safe_dump(values).encode()
    config.write_bytes(data)
    manifest = tmp_path / "m" / "manifest.json"
    meta = json.loads(manifest.read_text())
    meta["files"]["config.yaml"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest.write_text(json.dumps(meta))
    assert LandmarkMap.load(tmp_path / "m").config.max_depth_spread == float("inf")


def _replace_file(directory: Path, name: str, data: bytes) -> None:
    """Replace a map file and its manifest entry, as a script saving edited tables would."""
    (directory / name).write_bytes(data)
    manifest = directory / "manifest.json"
    meta = json.loads(manifest.read_text())
    meta["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "table, key, edit, message",
    [
        ("keyframes", "K", lambda a: a[:-1], r"keyframes.npz: array K has shape \(\d+, 3, 3\), expected"),
        ("keyframes", "T_map_kf", lambda a: a[:, :3], r"keyframes.npz: array T_map_kf has shape"),
        ("landmarks", "offset", lambda a: a[:-5], r"landmarks.npz: array offset has shape"),
        ("landmarks", "extra_uv", lambda a: a[:-1], r"landmarks.npz: array extra_uv has shape"),
        ("landmarks", "extra_landmark", lambda a: a + 10**6, r"landmarks.npz: observations refer to landmarks beyond"),
    ],
    ids=["K", "T_map_kf", "offset", "extra_uv", "extra_landmark"],
)
def test_tables_of_mismatched_lengths_are_named(
    built_map: LandmarkMap, tmp_path: Path, table: str, key: str, edit, message: str
) -> None:
    built_map.save(tmp_path / "m")
    arrays = getattr(built_map, table).arrays()
    _replace_file(tmp_path / "m", f"{table}.npz", store._npz({**arrays, key: edit(arrays[key])}))
    with pytest.raises(MapError, match=message):
        LandmarkMap.load(tmp_path / "m")


def test_an_index_of_another_dimension_is_named(built_map: LandmarkMap, tmp_path: Path) -> None:
    from locus_core.mapping.index import LandmarkIndex

    built_map.save(tmp_path / "m")
    descriptors, ids = built_map.index.reconstruct_all()
    _replace_file(tmp_path / "m", "index.faiss", LandmarkIndex.build(descriptors[:, :8], ids, kind="flat").to_bytes())
    with pytest.raises(MapError, match=f"index.faiss: descriptors of dimension 8, the map's are {built_map.dim}"):
        LandmarkMap.load(tmp_path / "m")


SAVER = textwrap.dedent(
    """
    import dataclasses
    import sys
    import numpy as np
    from locus_core.mapping import LandmarkMap
    m = LandmarkMap.load(sys.argv[1])
    m = m.with_config(dataclasses.replace(m.config, index_exact_max=10**6))  # no IVF training: fast start
    # grow the map so that each save takes a while, then save over the original forever
    rng = np.random.default_rng(0)
    n = 50_000
    d = rng.normal(size=(n, m.dim)).astype(np.float32)
    m.add_landmarks(d / np.linalg.norm(d, axis=1, keepdims=True), rng.normal(size=(n, 3)), 0, np.zeros((n, 2)))
    print("ready", flush=True)
    while True:
        m.save(sys.argv[1])
    """
)


def test_kill_mid_save_leaves_a_loadable_map(built_map: LandmarkMap, tmp_path: Path) -> None:
    target = tmp_path / "m"
    built_map.save(target)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(target)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        loaded = LandmarkMap.load(target)  # either the previous map or the new one, never a broken one
        assert (loaded.num_landmarks - built_map.num_landmarks) % 50_000 == 0
    built_map.save(target)  # the next save cleans up after the killed ones
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_saving_never_replaces_a_folder_that_is_not_a_map(built_map: LandmarkMap, tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    (maps / "other").mkdir(parents=True)
    (maps / "other" / "precious.txt").write_text("keep")
    with pytest.raises(MapError, match=r"maps: a folder that is not a LoCUS map \(no manifest.json\)"):
        built_map.save(maps)
    assert (maps / "other" / "precious.txt").read_text() == "keep"
    (maps / "manifest.json").write_text(json.dumps({"format": "someone-elses"}))
    with pytest.raises(MapError, match="not a LoCUS landmark map"):
        built_map.save(maps)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MapError, match="file: exists and is not a directory"):
        built_map.save(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    assert_same(LandmarkMap.load(built_map.save(tmp_path / "empty")), built_map)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "maps"]


@pytest.mark.parametrize("where", [".", "/", "maps/.."])
def test_a_map_is_not_saved_as_the_current_folder_or_the_root(
    built_map: LandmarkMap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MapError, match="a map is saved into a folder of its own"):
        built_map.save(Path(where))
    assert not list(tmp_path.iterdir())


def test_file_system_errors_are_map_errors_naming_the_path(
    built_map: LandmarkMap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(MapError, match=r"file/m: .*file is a file, not a folder"):
        built_map.save(tmp_path / "file" / "m")
    built_map.save(tmp_path / "m")

    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(store, "_write_synced", disk_full)
    with pytest.raises(MapError, match=r"/m: cannot save the map \(No space left on device\)"):
        built_map.save(tmp_path / "m")
    monkeypatch.undo()
    assert_same(LandmarkMap.load(tmp_path / "m"), built_map)  # the saved map is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "m"]  # and no half-written copy is left
    (tmp_path / "m" / "manifest.json").unlink()
    (tmp_path / "m" / "manifest.json").mkdir()
    with pytest.raises(MapError, match=r"manifest.json: unreadable \(Is a directory\)"):
        LandmarkMap.load(tmp_path / "m")


def test_map_names_with_glob_characters_touch_only_their_own_copies(built_map: LandmarkMap, tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above Linux's pid_max default: no process has it
    other = tmp_path / "maps2.old-{}".format(dead)
    built_map.save(other)  # another map's only copy, left by an interrupted save
    built_map.save(tmp_path / "maps[v2]")
    assert other.is_dir()
    with pytest.raises(MapError, match=r"maps\[v3\]: no map directory here"):
        LandmarkMap.load(tmp_path / "maps[v3]")


def test_saving_through_a_link_replaces_the_map_it_points_to(built_map: LandmarkMap, tmp_path: Path) -> None:
    LandmarkMap(model_hash=built_map.model_hash, dim=built_map.dim).save(tmp_path / "v1")
    (tmp_path / "current").symlink_to(tmp_path / "v1")
    built_map.save(tmp_path / "current")
    assert (tmp_path / "current").is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["current", "v1"]
    assert_same(LandmarkMap.load(tmp_path / "v1"), built_map)


def test_merge_two_sessions(built_map: LandmarkMap, tmp_path: Path) -> None:
    # the same frames as a second session of another recording
    second = dataclasses.replace(built_map, sources=[{**built_map.sources[0], "path": "/data/session2"}])
    merged = LandmarkMap.merge(built_map, second)
    n_kf, n_lm = len(built_map.keyframes), built_map.num_landmarks
    assert len(merged.keyframes) == 2 * n_kf and merged.num_landmarks == 2 * n_lm
    ids = np.arange(n_lm, 2 * n_lm)
    np.testing.assert_allclose(merged.positions(ids), built_map.positions(ids - n_lm), atol=1e-6)
    assert merged.landmarks.anchor[ids].min() >= n_kf
    rows, kfs = merged.landmarks.keyframes_of(ids)
    assert kfs.min() >= n_kf
    merged.save(tmp_path / "c")
    assert LandmarkMap.load(tmp_path / "c").num_landmarks == 2 * n_lm
    other = LandmarkMap(model_hash="other", dim=built_map.dim)
    with pytest.raises(MapError, match="different models"):
        LandmarkMap.merge(built_map, other)
    with pytest.raises(MapError, match="different feature scales"):
        LandmarkMap.merge(built_map, built_map.with_config(dataclasses.replace(built_map.config, scale=1)))
    with pytest.raises(MapError, match=f"cannot merge maps that both hold frames 0:47:2 of {built_map.sources[0]['path']}"):
        LandmarkMap.merge(built_map, built_map)
    with pytest.raises(MapError, match="both hold frames 0:47:2"):
        LandmarkMap.merge(merged, built_map)
