"""LocusModel: forward contract, hash, checkpoint round trip, load_model specs and bad checkpoints."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from locus_core import durable
from locus_core.config import load_config
from locus_core.errors import ConfigError
from locus_core.models import model as model_module
from locus_core.models.errors import ModelError, UnknownBackboneError
from locus_core.models.model import FORMAT_VERSION, LocusModel, ModelConfig, load_model

CONFIG = ModelConfig(backbone="test", radii=(0.2, 0.6), input_size=(64, 80), dim=8, hidden=32)


def small_model(seed: int = 0) -> LocusModel:
    torch.manual_seed(seed)
    return LocusModel(CONFIG).eval()


def test_forward_contract() -> None:
    model = small_model()
    out = model(torch.rand(2, 3, 64, 80))
    assert out.shape == (2, 2, 8, 8, 10)
    torch.testing.assert_close(out.norm(dim=2), torch.ones(2, 2, 8, 10))
    assert model.stride == 8 and model.input_size == (64, 80) and model.scales == 2
    feats = model.backbone(torch.rand(1, 3, 64, 80))
    assert model.head(feats).shape == (1, 2, 8, 8, 10)


def test_only_the_head_trains() -> None:
    model = small_model()
    model.train()
    model(torch.rand(1, 3, 32, 32)).sum().backward()
    assert not model.backbone.training
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.head.parameters())


def test_hash_identifies_config_and_weights() -> None:
    a, b = small_model(0), small_model(0)
    assert a.hash == b.hash and len(a.hash) == 12 and int(a.hash, 16) >= 0
    assert small_model(1).hash != a.hash
    assert a.with_input_size((64, 96)).hash != a.hash  # the config is part of the hash
    torch.manual_seed(0)
    local = LocusModel(dataclasses.replace(CONFIG, attention_radii=(3, 0)))
    assert local.hash != a.hash and local.head.state_dict().keys() == a.head.state_dict().keys()
    torch.manual_seed(0)
    pooled = LocusModel(dataclasses.replace(CONFIG, kv_pool=2))
    assert pooled.hash != a.hash and pooled.head.state_dict().keys() == a.head.state_dict().keys()


@pytest.mark.parametrize("field", ["attention_radii", "kv_pool"])
def test_checkpoints_from_before_a_head_option_still_load(tmp_path: Path, field: str) -> None:
    """Maps record their model's hash: a config field added later must not change the hashes of
    models saved before it (the field's default, the head those models have, is left out of it)."""
    path = small_model().save(tmp_path / "model.pt")
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["config"][field]  # as written before the field existed
    torch.save(checkpoint, path)
    loaded = LocusModel.load(path)
    assert getattr(loaded.config, field) == getattr(CONFIG, field) and loaded.hash == checkpoint["hash"]


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = small_model()
    path = model.save(tmp_path / "ckpt" / "model.pt", metadata={"steps": 3, "ap": [0.4]})
    assert (tmp_path / "ckpt" / "config.yaml").is_file()
    assert load_config(ModelConfig, tmp_path / "ckpt" / "config.yaml") == CONFIG
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["format_version"] == FORMAT_VERSION and checkpoint["backbone"] == "test"
    loaded = LocusModel.load(path).eval()
    assert loaded.hash == model.hash and loaded.config == CONFIG
    assert loaded.metadata == {"steps": 3, "ap": [0.4]}
    images = torch.rand(1, 3, 64, 80)
    with torch.inference_mode():
        assert torch.equal(loaded(images), model(images))
    assert load_model(str(path)).hash == model.hash


def test_save_syncs_the_checkpoint_before_it_replaces_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Renamed unsynced, a power cut could leave model.pt (or the shipped model, ship_to) an empty file
    path = small_model(0).save(tmp_path / "model.pt")
    old = path.read_bytes()
    synced: list[tuple[str, bytes]] = []

    def fsync_path(target: Path) -> None:
        synced.append((Path(target).name, path.read_bytes()))

    monkeypatch.setattr(durable, "fsync_path", fsync_path)
    small_model(1).save(path)
    assert [name for name, _ in synced][1:] == [tmp_path.name] and synced[0][0].startswith(".model.pt.tmp")
    assert synced[0][1] == old and synced[1][1] != old  # the new file synced before the rename, the folder after


def test_a_save_that_fails_keeps_the_previous_checkpoint_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = small_model(0).save(tmp_path / "model.pt")
    old = path.read_bytes()

    def full(obj: object, f: Path) -> None:
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="No space left"):
        small_model(1).save(path)
    assert path.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "model.pt"]


def test_config_values_are_plain_so_the_hash_survives_a_round_trip(tmp_path: Path) -> None:
    """Int radii and numpy ints are made the declared plain types: the hash is JSON of the config,
    and a loaded checkpoint's config has those types."""
    config = dataclasses.replace(
        CONFIG, radii=(1, np.float32(0.5)), input_size=(np.int64(64), 80), dim=np.int64(8)
    )
    assert config == dataclasses.replace(CONFIG, radii=(1.0, 0.5))
    assert type(config.radii[0]) is float and type(config.dim) is int
    assert type(config.input_size[0]) is int
    torch.manual_seed(0)
    model = LocusModel(config)
    assert LocusModel.load(model.save(tmp_path / "m.pt")).hash == model.hash
    with pytest.raises(ModelError, match="dim: expected int, got 8.5"):
        dataclasses.replace(CONFIG, dim=8.5)
    with pytest.raises(ModelError, match="radii: expected a list of float, got None"):
        dataclasses.replace(CONFIG, radii=None)


def test_default_model_hash_is_pinned() -> None:
    """Maps record the shipped model's hash: nothing may change it."""
    if not model_module.DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f"{model_module.DEFAULT_CHECKPOINT} is not in this checkout")
    assert load_model("default").hash == "fe537f0db314"


def test_backbone_spec_gives_raw_normalised_features() -> None:
    raw = load_model("backbone:test")
    out = raw(torch.rand(1, 3, 32, 48))
    assert out.shape == (1, 1, 16, 4, 6) and raw.hash == "backbone-test" and raw.scales == 1
    torch.testing.assert_close(out.norm(dim=2), torch.ones(1, 1, 4, 6))
    with pytest.raises(ModelError, match="no learned weights"):
        raw.save("unused.pt")
    with pytest.raises(UnknownBackboneError, match="valid: xfeat"):
        load_model("backbone:nope")


def test_default_model_missing_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(model_module, "DEFAULT_CHECKPOINT", tmp_path / "locus_xfeat.pt")
    message = "locus_xfeat.pt: the default model is not in this checkout.*locus train"
    with pytest.raises(ModelError, match=message):
        load_model("default")


def test_default_model_loads_when_present(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(model_module, "DEFAULT_CHECKPOINT", small_model().save(tmp_path / "d.pt"))
    assert load_model("default").hash == small_model().hash


def test_bad_checkpoints_are_named(tmp_path: Path) -> None:
    model = small_model()
    good = model.to_checkpoint()
    with pytest.raises(ModelError, match="nothing.pt: model checkpoint not found"):
        LocusModel.load(tmp_path / "nothing.pt")
    with pytest.raises(ModelError, match="expected 'default', 'backbone:NAME'"):
        load_model(str(tmp_path / "nothing.pt"))

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(model.save(tmp_path / "ok.pt").read_bytes()[:500])
    with pytest.raises(ModelError, match="corrupt.pt: not a readable model checkpoint"):
        LocusModel.load(corrupt)
    # torch's advice to load with weights_only=False (running the file's code) is not passed on:
    # the unpickler's own reason is
    (tmp_path / "text.pt").write_text("garbage")
    with pytest.raises(ModelError, match=r"text.pt: not a readable model checkpoint \(UnpicklingError: [^(]*\)$") as caught:
        LocusModel.load(tmp_path / "text.pt")
    assert "weights_only" not in str(caught.value)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a whole module: code to unpickle
    with pytest.raises(ModelError, match=r"module.pt: not a readable model checkpoint \(UnpicklingError: Unsupported global: .*Linear"):
        LocusModel.load(tmp_path / "module.pt")

    def write(name: str, data: object) -> Path:
        torch.save(data, tmp_path / name)
        return tmp_path / name

    with pytest.raises(ModelError, match="plain.pt: not a LoCUS model checkpoint"):
        LocusModel.load(write("plain.pt", {"weight": torch.zeros(2)}))
    with pytest.raises(ModelError, match="old.pt: an older checkpoint format \\(version 0\\)"):
        LocusModel.load(write("old.pt", {**good, "format_version": 0}))
    with pytest.raises(ModelError, match="text.pt: another checkpoint format \\(version '1'\\)"):  # not "version 1"
        LocusModel.load(write("text.pt", {**good, "format_version": str(good["format_version"])}))
    with pytest.raises(ModelError, match="ok.pt: checkpoint is for backbone test, expected xfeat"):
        LocusModel.load(tmp_path / "ok.pt", backbone="xfeat")
    tampered = {**good, "head": {k: v + 1 for k, v in good["head"].items()}}
    with pytest.raises(ModelError, match="tampered.pt: weights do not match the recorded hash"):
        LocusModel.load(write("tampered.pt", tampered))
    wrong_shape = {**good, "config": {**good["config"], "hidden": 64}}
    with pytest.raises(ModelError, match="shape.pt: head weights do not fit config"):
        LocusModel.load(write("shape.pt", wrong_shape))
    with pytest.raises(ModelError, match="meta.pt: damaged checkpoint, metadata is a list, not a dict"):
        LocusModel.load(write("meta.pt", {**good, "metadata": ["trained", 300]}))
    with pytest.raises(ConfigError, match="bad.pt.*radii"):
        LocusModel.load(write("bad.pt", {**good, "config": {**good["config"], "radii": [-1.0]}}))


def test_head_weights_that_do_not_fit_say_which_and_how(tmp_path: Path) -> None:
    # The message stopped at torch's first line ("Error(s) in loading state_dict for LocusHead:")
    good = small_model().to_checkpoint()
    other = {**good, "config": {**good["config"], "backbone": "xfeat"}, "backbone": "xfeat"}  # 16-d head, 64-d XFeat
    torch.save(other, tmp_path / "xfeat.pt")
    with pytest.raises(ModelError, match=r"xfeat.pt: head weights do not fit config \(size mismatch for in_norm.weight: "
                                         r"copying a param with shape torch.Size\(\[16\]\) from checkpoint, the shape "
                                         r"in current model is torch.Size\(\[64\]\)"):
        LocusModel.load(tmp_path / "xfeat.pt")
    renamed = {**good, "head": {k.replace("blocks.", "encoder."): v for k, v in good["head"].items()}}
    torch.save(renamed, tmp_path / "renamed.pt")
    with pytest.raises(ModelError, match=r"renamed.pt: head weights do not fit config \(Missing key\(s\) in state_dict: "
                                         r"\"blocks.layers.0.self_attn.in_proj_weight\""):
        LocusModel.load(tmp_path / "renamed.pt")


def test_metadata_must_be_plain(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="plain JSON types"):
        small_model().save(tmp_path / "m.pt", metadata={"when": object()})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("backbone=resnet", "unknown 'resnet'"),
        ("radii=[]", "radii"),
        ("radii=[0.2, 0.2]", "distinct"),
        ("input_size=[4, 4]", "input_size"),
        ("hidden=30", "divisible by heads"),
        ("attention_radii=[3]", "attention_radii: need one radius >= 0 per layer"),
        ("attention_radii=[3, -1]", "attention_radii: need one radius >= 0 per layer"),
        ("kv_pool=0", "kv_pool: must be positive"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path: Path, override: str, message: str) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump({"dim": 64}))
    with pytest.raises(ConfigError, match=f"model.yaml.*{message}"):
        load_config(ModelConfig, path, [override])


def test_with_input_size_shares_weights_and_changes_hash(tmp_path: Path) -> None:
    model = small_model()
    other = model.with_input_size((32, 48))
    assert other.input_size == (32, 48) and model.input_size == (64, 80)
    assert other.hash != model.hash and other.head is model.head
    assert LocusModel.load(other.save(tmp_path / "m.pt")).hash == other.hash
    raw = load_model("backbone:test").with_input_size((32, 48))
    assert raw.hash == "backbone-test" and raw.input_size == (32, 48)


def test_vit_model_with_input_size_resamples_positions() -> None:
    from locus_core.models.backbones import create_backbone

    config = ModelConfig(backbone="dinov2_vits14", input_size=(28, 42), dim=8, hidden=32)
    model = LocusModel(config, backbone=create_backbone("dinov2_vits14", "random", img_size=(28, 42)))
    assert model(torch.rand(1, 3, 28, 42)).shape == (1, 1, 8, 2, 3)
    bigger = model.with_input_size((56, 70))
    assert bigger(torch.rand(1, 3, 56, 70)).shape == (1, 1, 8, 4, 5)
    back = bigger.with_input_size((28, 42))
    images = torch.rand(1, 3, 28, 42)
    torch.testing.assert_close(back(images), model(images))
    with pytest.raises(ModelError, match="built for 56x70 input, got 28x42"):
        bigger(images)
