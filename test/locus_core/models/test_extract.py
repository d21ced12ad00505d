"""Feature extraction from posed frames: sizes, geometry of the resized frame, batching, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from locus_core.data.frame import PosedFrame
from locus_core.models.errors import ModelError
from locus_core.models.extract import extract_features, extract_features_batch
from locus_core.models.model import LocusModel, ModelConfig, load_model


def make_frame(seed: int, size: tuple[int, int] = (120, 160)) -> PosedFrame:
    rng = np.random.default_rng(seed)
    K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    return PosedFrame(
        rgb=rng.integers(0, 256, (*size, 3), dtype=np.uint8),
        depth=rng.uniform(0.5, 3.0, size).astype(np.float32),
        K=K,
        T_world_cam=np.eye(4),
        frame_id=f"frame-{seed:06d}",
        index=seed,
    )


@pytest.fixture(scope="module")
def model() -> LocusModel:
    torch.manual_seed(0)
    config = ModelConfig(backbone="test", radii=(0.2, 0.6), input_size=(64, 80), dim=8, hidden=32)
    return LocusModel(config)


def test_single_frame(model: LocusModel) -> None:
    features, resized = extract_features(model, make_frame(0), scale=1)
    assert features.shape == (8, 8, 10)
    torch.testing.assert_close(features.norm(dim=0), torch.ones(8, 10))
    assert (resized.height, resized.width) == (64, 80) and resized.depth.shape == (64, 80)
    np.testing.assert_allclose(resized.K[0, 0], 100.0 * 0.5)
    assert not torch.is_grad_enabled() or not features.requires_grad


def test_batch_matches_single_frames(model: LocusModel) -> None:
    frames = [make_frame(i) for i in range(5)]
    features, resized = extract_features_batch(model, frames, batch_size=2)
    assert features.shape == (5, 8, 8, 10) and len(resized) == 5
    single, _ = extract_features(model, frames[3])
    torch.testing.assert_close(features[3], single, rtol=1e-5, atol=1e-6)
    empty, none = extract_features_batch(model, [])
    assert empty.shape == (0, 8, 8, 10) and none == []


def test_model_mode_is_restored(model: LocusModel) -> None:
    model.train()
    extract_features(model, make_frame(0))
    assert model.head.training
    model.eval()


def test_errors_name_the_value(model: LocusModel) -> None:
    with pytest.raises(ModelError, match="scale 2 out of range.*2 scale"):
        extract_features(model, make_frame(0), scale=2)
    bad = make_frame(0)
    bad = PosedFrame(rgb=bad.rgb.astype(np.float32), depth=None, K=bad.K, T_world_cam=None, frame_id="f7")
    with pytest.raises(ModelError, match="frame f7: expected rgb"):
        extract_features(model, bad)


@pytest.mark.parametrize(
    ("rgb", "shown"),
    [
        (np.zeros((120, 160), np.uint8), r"\(120, 160\) uint8"),  # grey
        (np.zeros((120, 160, 4), np.uint8), r"\(120, 160, 4\) uint8"),  # RGBA
        (np.zeros((120, 160, 3), np.uint16), r"\(120, 160, 3\) uint16"),
        (np.zeros((120, 160, 3), np.int32), r"\(120, 160, 3\) int32"),  # cv2.error from the resize
        (np.zeros((0, 160, 3), np.uint8), r"\(0, 160, 3\) uint8"),  # cv2.error from the resize
    ],
)
def test_a_frame_that_is_not_rgb_is_named_with_its_own_shape(model: LocusModel, rgb: np.ndarray, shown: str) -> None:
    frames = [make_frame(0), PosedFrame(rgb=rgb, depth=None, K=np.eye(3), T_world_cam=None, frame_id="f9")]
    with pytest.raises(ModelError, match=rf"frame f9: expected rgb \(H,W,3\) uint8, got {shown}"):
        extract_features_batch(model, frames)


def test_raw_xfeat_on_real_frames_is_deterministic(shared_data) -> None:
    from locus_core.data import open_dataset

    dataset = open_dataset(shared_data / "7scenes-redkitchen", frames="600:620:10")
    xfeat = load_model("backbone:xfeat")
    features, resized = extract_features_batch(xfeat, list(dataset))
    again, _ = extract_features(xfeat, dataset[0])
    assert features.shape == (2, 64, 32, 40)
    assert resized[0].K[0, 0] < dataset[0].K[0, 0] * 2  # K follows the resize
    torch.testing.assert_close(features[0], again, rtol=1e-5, atol=1e-5)
