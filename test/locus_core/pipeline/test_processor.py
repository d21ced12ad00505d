"""The frame processor: runtime chosen by create_engine (with the reasons for any fallback), the
same localization on ONNX Runtime as on eager PyTorch, map lifecycle errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from locus_core.data import open_dataset
from locus_core.data.synthetic import generate_scene
from locus_core.errors import LocusError
from locus_core.pipeline import FrameProcessor, PipelineError

RELAXED = "min_inliers: 4\nmin_inlier_ratio: 0.0\nmin_similarity: 0.0\nmax_position_std_m: 10.0\nambiguity_ratio: 2.0\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import torch

    from locus_core.mapping import MapConfig, build_map
    from locus_core.models import load_model

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("pipeline")
    scene = generate_scene(root / "scene", frames=12, size=(96, 128))
    build_map(load_model("backbone:test"), open_dataset(scene, "0:12:2"), MapConfig(landmarks_per_keyframe=200)).save(root / "map")
    (root / "relaxed.yaml").write_text(RELAXED)
    return {"scene": scene, "map": root / "map", "config": root / "relaxed.yaml"}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnxruntime_localizes_like_eager_pytorch(world: dict, precision: str) -> None:
    pytest.importorskip("onnxruntime")
    eager = FrameProcessor("backbone:test", "cpu", world["config"])
    onnx = FrameProcessor("backbone:test", "onnxruntime", world["config"], precision)
    assert (eager.runtime, eager.fallbacks) == ("cpu", [])
    assert onnx.runtime == {"fp32": "onnxruntime", "int8": "onnxruntime-int8"}[precision]
    for p in (eager, onnx):
        p.load_map(world["map"])
    frame = open_dataset(world["scene"], "3:4")[0]
    a, b = eager.localize(frame), onnx.localize(frame)
    assert a.localized and b.localized, (a.reason, b.reason)
    assert [m.keyframe_id for m in a.matches][:1] == [m.keyframe_id for m in b.matches][:1]
    np.testing.assert_allclose(a.T_map_cam, b.T_map_cam, atol=0.02)


def test_unavailable_runtimes_fall_back_with_the_reason(world: dict) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: nothing to fall back from")
    p = FrameProcessor("backbone:test", "cuda", world["config"])
    assert p.runtime in ("onnxruntime", "cpu")
    assert p.fallbacks[0].startswith("cuda: CUDA is not available")


def test_map_lifecycle_errors(world: dict, tmp_path: Path) -> None:
    p = FrameProcessor("backbone:test", "cpu", world["config"])
    frame = open_dataset(world["scene"], "0:1")[0]
    assert not p.has_map and p.counts() == (0, 0)
    with pytest.raises(PipelineError, match="no map loaded"):
        p.localize(frame)
    with pytest.raises(PipelineError, match="no map to save"):
        p.save_map(tmp_path / "m")
    with pytest.raises(PipelineError, match="no map to insert into"):
        p.insert_keyframe(frame)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    with pytest.raises(LocusError, match="photos: a folder that is not a LoCUS map"):
        p.new_map(save_to=tmp_path / "photos")  # said before mapping starts, not when saving fails
    assert not p.has_map
    p.new_map(save_to=tmp_path / "m")
    assert p.insert_keyframe(frame) and p.counts()[0] == 1
    points, keyframes = p.geometry(50)
    assert len(points) <= 50 and keyframes.shape == (1, 3)
    assert p.save_map(tmp_path / "m") == tmp_path / "m" and (tmp_path / "m" / "manifest.json").is_file()
    with pytest.raises(LocusError, match="device: unknown .tpu."):
        FrameProcessor("backbone:test", "tpu")


def test_counts_do_not_wait_for_a_running_inference(world: dict) -> None:
    """The node's diagnostics timer reads counts on the executor thread while the worker holds the
    lock for an inference (0.5-1 s with a ViT on a CPU): waiting there stalls every subscription."""
    from concurrent.futures import ThreadPoolExecutor

    p = FrameProcessor("backbone:test", "cpu", world["config"])
    p.load_map(world["map"])
    loaded = p.counts()
    assert loaded[0] == 6 and loaded[1] > 0
    p.new_map()
    assert p.counts() == (0, 0)
    assert p.insert_keyframe(open_dataset(world["scene"], "0:1")[0]) and p.counts()[0] == 1
    inserted = p.counts()
    with ThreadPoolExecutor(1) as pool, p.lock:  # held as localize() holds it (released first on a failure)
        assert pool.submit(p.counts).result(timeout=60) == inserted


def test_overrides_apply_over_the_config_file(world: dict) -> None:
    p = FrameProcessor("backbone:test", "cpu", world["config"], overrides=["knn=5"])
    assert p.config.knn == 5
    assert p.config.min_inliers == FrameProcessor("backbone:test", "cpu", world["config"]).config.min_inliers
    with pytest.raises(LocusError, match="knn"):
        FrameProcessor("backbone:test", "cpu", overrides=["knn=many"])


def test_reset_tracking_localizes_the_next_frame_in_full(world: dict) -> None:
    """The node's ~/reset and mode changes leave the stream: the last pose must not pose the next frame."""
    import dataclasses

    p = FrameProcessor("backbone:test", "cpu", world["config"], overrides=["track_period_s=10", "track_min_normal_spread=0"])
    p.load_map(world["map"])
    frame = open_dataset(world["scene"], "4:5")[0]
    assert p.localize(dataclasses.replace(frame, stamp=0.0)).localized
    assert p.localize(dataclasses.replace(frame, stamp=0.1)).method == "tracked"
    p.reset_tracking()
    assert p.localize(dataclasses.replace(frame, stamp=0.2)).method != "tracked"


def test_a_map_to_localize_in_must_have_keyframes(world: dict, tmp_path: Path) -> None:
    p = FrameProcessor("backbone:test", "cpu", world["config"])
    p.new_map()
    p.save_map(tmp_path / "empty")
    p.load_map(world["map"])
    with pytest.raises(PipelineError, match="empty: the map has no keyframes, nothing to localize in"):
        p.load_map(tmp_path / "empty", to_localize=True)
    assert p.map_path == world["map"] and p.counts()[0] > 0  # the map in use stays
    p.load_map(tmp_path / "empty")  # to map in
    assert p.counts() == (0, 0)


def test_no_map_replaces_keyframes_mapped_since_the_last_save(world: dict, tmp_path: Path) -> None:
    """Any caller, not only the node: loading, using or starting a map is refused while keyframes
    inserted since the map was made, loaded or saved would be lost; saving clears it."""
    from locus_core.mapping import LandmarkMap

    p = FrameProcessor("backbone:test", "cpu", world["config"])
    p.new_map()
    assert p.unsaved_keyframes == 0
    assert p.insert_keyframe(open_dataset(world["scene"], "0:1")[0]) and p.unsaved_keyframes == 1
    for replace in (lambda: p.load_map(world["map"]), lambda: p.new_map(),
                    lambda: p.use_map(LandmarkMap.load(world["map"]))):
        with pytest.raises(PipelineError, match="^1 keyframe mapped since the map was last saved would be lost; save"):
            replace()
        assert p.counts()[0] == 1 and p.map_path is None  # the session stays
    p.save_map(tmp_path / "session")
    assert p.unsaved_keyframes == 0
    p.load_map(world["map"])
    assert p.map_path == world["map"] and p.unsaved_keyframes == 0


def test_warming_up_leaves_the_stream_as_it_was(world: dict) -> None:
    """It localizes and tracks a synthetic frame: the stream's last pose must stay the stream's."""
    import dataclasses

    p = FrameProcessor("backbone:test", "cpu", world["config"], overrides=["track_period_s=10", "track_min_normal_spread=0"])
    with pytest.raises(PipelineError, match="no map loaded"):
        p.warm_up()
    p.load_map(world["map"])
    p.warm_up()  # before the stream: its first frame is localized in full
    frame = open_dataset(world["scene"], "4:5")[0]
    assert p.localize(dataclasses.replace(frame, stamp=0.0)).method != "tracked"
    p.warm_up()  # within the stream: its next frame is still tracked from the last one
    assert p.localize(dataclasses.replace(frame, stamp=0.1)).method == "tracked"


def test_paths_from_parameters_expand_the_home_folder(world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ROS parameter files and service requests are not shell-expanded: '~/maps/x' named a folder '~'
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "relaxed.yaml").write_text(RELAXED)
    p = FrameProcessor("backbone:test", "cpu", "~/relaxed.yaml")
    p.new_map(save_to="~/maps/kitchen")
    p.insert_keyframe(open_dataset(world["scene"], "0:1")[0])
    assert p.save_map("~/maps/kitchen") == tmp_path / "maps" / "kitchen"
    assert (tmp_path / "maps" / "kitchen" / "manifest.json").is_file() and not Path("~").exists()
    p.load_map("~/maps/kitchen")
    assert p.map_path == tmp_path / "maps" / "kitchen"
    assert FrameProcessor.holds_map("~/maps/kitchen") and not FrameProcessor.holds_map("~/maps")


def test_an_empty_path_holds_no_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an emptied map_path names no folder; Path("") is the working directory, which may hold one
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    assert FrameProcessor.holds_map(".") and not FrameProcessor.holds_map("")
