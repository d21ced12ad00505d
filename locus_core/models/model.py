"""``LocusModel`` = frozen backbone + LoCUS head; its config, hash, checkpoints and ``load_model``.

Checkpoints hold plain types and tensors only (``torch.load(weights_only=True)`` reads them): the
format version, the resolved config, the backbone name, the head's state dict, the hash and free
metadata (e.g. a training summary). The backbone's weights are not stored: they come from the
backbone registry, so a checkpoint is a few MB.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from locus_core.config import config_from_dict, config_to_dict, save_config
from locus_core.durable import atomic_write
from locus_core.errors import torch_load_failure
from locus_core.models.backbones import Backbone, available_backbones, create_backbone
from locus_core.models.errors import ModelConfigError, ModelError
from locus_core.models.head import LocusHead, NormalizeHead

FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "locus_xfeat.pt"
BACKBONE_SPEC_PREFIX = "backbone:"


@dataclass(frozen=True)
class ModelConfig:
    """The model: which backbone, which positive radii (one output scale each), the head's size.

    Attributes:
        backbone: registry name (see ``available_backbones()``).
        radii: positive radius ρ in metres of each output scale, e.g. (0.2, 0.6).
        input_size: (H, W) frames are resized to before extraction.
        dim: descriptor dimension per scale.
        hidden, layers, heads: the head's transformer width, depth and attention heads.
        attention_radii: per head layer, how many rows and columns away a patch attends (0: the
            whole image); empty: 0 for every layer (see ``LocusHead``).
        kv_pool: global layers attend to keys and values averaged over kv_pool x kv_pool patches
            (1: to every patch, the paper's; see ``LocusHead``).
    """

    backbone: str = "xfeat"
    radii: tuple[float, ...] = (0.2,)
    input_size: tuple[int, int] = (256, 320)
    dim: int = 64
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    attention_radii: tuple[int, ...] = ()
    kv_pool: int = 1

    def __post_init__(self) -> None:
        # The hash is JSON of the config and a loaded checkpoint's config has the declared types:
        # any other type (int radii, numpy ints) would hash differently after a save/load round trip
        # or not at all, so values are made plain Python first.
        object.__setattr__(self, "radii", _numbers("radii", self.radii, float))
        for key in ("input_size", "attention_radii"):
            object.__setattr__(self, key, _numbers(key, getattr(self, key), int))
        for key in ("dim", "hidden", "layers", "heads", "kv_pool"):
            object.__setattr__(self, key, _number(key, getattr(self, key), int))
        if self.backbone not in available_backbones():
            raise ModelConfigError(
                f"backbone: unknown {self.backbone!r}; valid: {', '.join(available_backbones())}"
            )
        if not self.radii or any(not r > 0 for r in self.radii) or len(set(self.radii)) != len(self.radii):
            raise ModelConfigError(f"radii: need distinct positive metres, got {list(self.radii)}")
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            raise ModelConfigError(f"input_size: need (H, W) of at least 8 pixels, got {self.input_size}")
        for key in ("dim", "hidden", "layers", "heads", "kv_pool"):
            if getattr(self, key) < 1:
                raise ModelConfigError(f"{key}: must be positive, got {getattr(self, key)}")
        if self.attention_radii and (len(self.attention_radii) != self.layers or min(self.attention_radii) < 0):
            raise ModelConfigError(
                f"attention_radii: need one radius >= 0 per layer ({self.layers}) or none, got {list(self.attention_radii)}"
            )
        if self.hidden % self.heads or self.hidden % 4:
            raise ModelConfigError(
                f"hidden: {self.hidden} must be divisible by heads ({self.heads}) and by 4"
            )


def _number(key: str, value: Any, kind: type[int] | type[float]) -> int | float:
    """``value`` as a plain ``kind``; an int must be whole (``operator.index``: no silent 2.5 → 2)."""
    try:
        return operator.index(value) if kind is int else float(value)
    except (TypeError, ValueError):
        raise ModelConfigError(f"{key}: expected {kind.__name__}, got {value!r}") from None


def _numbers(key: str, values: Any, kind: type[int] | type[float]) -> tuple[Any, ...]:
    """``values`` (any iterable) as a tuple of plain ``kind``."""
    try:
        items = list(values)
    except TypeError:
        raise ModelConfigError(f"{key}: expected a list of {kind.__name__}, got {values!r}") from None
    return tuple(_number(key, v, kind) for v in items)


class LocusModel(nn.Module):
    """Frozen backbone + head: (B,3,H,W) RGB in [0,1] → (B, S, D, H//stride, W//stride), unit norm on D.

    ``head`` is an ``nn.Module`` with the contract ``head(feats (B,C,h,w)) -> (B,S,D,h,w)``, so
    training can run it on cached backbone features. A model made by :meth:`from_backbone` has no
    learned head: raw backbone features, L2-normalised, S = 1 (the paper's baseline).
    """

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        backbone: Backbone | None = None,
        backbone_weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        if backbone is None:
            backbone = create_backbone(
                self.config.backbone, backbone_weights, img_size=self.config.input_size
            )
        elif backbone.info.name != self.config.backbone:
            raise ModelError(
                f"backbone {backbone.info.name} given for a model configured with {self.config.backbone}"
            )
        self.backbone = backbone
        self.head: nn.Module = LocusHead(
            backbone.info.dim,
            dim=self.config.dim,
            hidden=self.config.hidden,
            layers=self.config.layers,
            heads=self.config.heads,
            scales=len(self.config.radii),
            attention_radii=self.config.attention_radii,
            kv_pool=self.config.kv_pool,
        )
        self.metadata: dict[str, Any] = {}

    @classmethod
    def from_backbone(cls, name: str, *, weights: str | Path | None = None) -> LocusModel:
        """Raw backbone features, L2-normalised, S = 1: ``load_model("backbone:NAME")``."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model.backbone = create_backbone(name, weights, img_size=ModelConfig().input_size)
        model.config = ModelConfig(backbone=name, dim=model.backbone.info.dim)
        model.head = NormalizeHead()
        model.metadata = {}
        return model

    @property
    def is_raw(self) -> bool:
        """True for a bare backbone (no learned head)."""
        return isinstance(self.head, NormalizeHead)

    @property
    def stride(self) -> int:
        return self.backbone.info.stride

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.config.input_size)  # type: ignore[return-value]

    @property
    def scales(self) -> int:
        """S, the number of output scales (one per radius)."""
        return 1 if self.is_raw else len(self.config.radii)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def hash(self) -> str:
        """12 hex chars of sha256 over the config and the head's weights ("backbone-NAME" when raw)."""
        if self.is_raw:
            return f"backbone-{self.config.backbone}"
        config = config_to_dict(self.config)
        # added later, so their defaults are left out: models made before them keep their hashes
        if not config["attention_radii"]:
            del config["attention_radii"]
        if config["kv_pool"] == 1:
            del config["kv_pool"]
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        for key, tensor in sorted(self.head.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:12]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) float RGB in [0,1] → (B, S, D, H//stride, W//stride), unit norm along D."""
        return self.head(self.backbone(images))

    def with_input_size(self, size: tuple[int, int]) -> LocusModel:
        """This model (same backbone and head weights) for frames resized to ``size`` (H, W).

        With a learned head the input size is part of the config, hence of the hash: features at
        another size are other features. A raw backbone's hash stays ``backbone-NAME`` (it names
        only the backbone). Backbones with a fixed-size position embedding are resampled to ``size``.
        """
        config = dataclasses.replace(self.config, input_size=(int(size[0]), int(size[1])))
        other = copy.copy(self)
        other._modules = dict(self._modules)
        other.config = config
        other.backbone = self.backbone.resized(config.input_size)
        other.metadata = dict(self.metadata)
        return other

    # -- checkpoints ---------------------------------------------------------------------------

    def to_checkpoint(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """The checkpoint dict (plain types + tensors), e.g. to embed in a training checkpoint."""
        if self.is_raw:
            raise ModelError(f"model {self.hash} has no learned weights to save")
        metadata = {**self.metadata, **(metadata or {})}
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"checkpoint metadata must be plain JSON types: {exc}") from None
        return {
            "format_version": FORMAT_VERSION,
            "config": config_to_dict(self.config),
            "backbone": self.config.backbone,
            "head": {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()},
            "hash": self.hash,
            "metadata": metadata,
        }

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write the checkpoint to ``path`` (atomically) and the resolved ``config.yaml`` beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        checkpoint = self.to_checkpoint(metadata)
        # Renamed into place whole, so a run killed mid-save never leaves a truncated checkpoint;
        # durable: after a power cut an unsynced rename can leave the name on an empty file, in
        # place of the checkpoint (or shipped model) it replaced.
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), durable=True)
        save_config(self.config, path.parent / "config.yaml")
        return path

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Any,
        *,
        source: str = "checkpoint",
        backbone: str | None = None,
        backbone_weights: str | Path | None = None,
    ) -> LocusModel:
        """Rebuild a model from :meth:`to_checkpoint`'s dict; ``source`` names it in errors.

        Args:
            backbone: when given, the checkpoint must be for this backbone.

        Raises:
            ModelError: not a LoCUS checkpoint, another format version or backbone, damaged weights.
        """
        if not isinstance(checkpoint, dict) or "format_version" not in checkpoint:
            raise ModelError(f"{source}: not a LoCUS model checkpoint (no format_version)")
        version = checkpoint["format_version"]
        if version != FORMAT_VERSION:
            age = "an older" if isinstance(version, int) and version < FORMAT_VERSION else "another"
            raise ModelError(
                f"{source}: {age} checkpoint format (version {version!r}); this version of locus "
                f"reads version {FORMAT_VERSION} — retrain the model or use the matching locus version"
            )
        missing = {"config", "backbone", "head", "hash"} - set(checkpoint)
        if missing:
            raise ModelError(f"{source}: damaged checkpoint, missing {', '.join(sorted(missing))}")
        name = checkpoint["backbone"]
        if backbone is not None and name != backbone:
            raise ModelError(f"{source}: checkpoint is for backbone {name}, expected {backbone}")
        config = config_from_dict(ModelConfig, checkpoint["config"], source=source)
        if config.backbone != name:
            raise ModelError(f"{source}: damaged checkpoint, config backbone {config.backbone} != {name}")
        model = cls(config, backbone_weights=backbone_weights)
        try:
            model.head.load_state_dict(checkpoint["head"])
        except (RuntimeError, TypeError, AttributeError) as exc:
            # torch's first line only says "Error(s) in loading state_dict"; the next says which and how
            lines = [line.strip() for line in str(exc).splitlines()]
            raise ModelError(
                f"{source}: head weights do not fit config ({lines[1] if len(lines) > 1 else lines[0]})"
            ) from None
        if model.hash != checkpoint["hash"]:
            raise ModelError(
                f"{source}: weights do not match the recorded hash {checkpoint['hash']} "
                f"(got {model.hash}): the file was modified or is corrupt"
            )
        metadata = checkpoint.get("metadata") or {}
        if not isinstance(metadata, dict):  # not in the hash: dict() raised a bare ValueError/TypeError
            raise ModelError(f"{source}: damaged checkpoint, metadata is a {type(metadata).__name__}, not a dict")
        model.metadata = dict(metadata)
        return model

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        backbone: str | None = None,
        backbone_weights: str | Path | None = None,
    ) -> LocusModel:
        """Read a checkpoint written by :meth:`save` (``weights_only=True``: no code is unpickled)."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model checkpoint not found")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated zip, foreign pickle, ...: all mean "not our file"
            raise ModelError(f"{path}: not a readable model checkpoint ({type(exc).__name__}: {torch_load_failure(exc)})") from None
        return cls.from_checkpoint(
            checkpoint, source=str(path), backbone=backbone, backbone_weights=backbone_weights
        )


def load_model(spec: str) -> LocusModel:
    """``"default"`` (the shipped checkpoint), ``"backbone:NAME"`` (raw features) or a checkpoint path.

    Raises:
        ModelError: naming the spec or file when it cannot be loaded.
    """
    if spec == "default":
        if not DEFAULT_CHECKPOINT.is_file():
            raise ModelError(
                f"{DEFAULT_CHECKPOINT}: the default model is not in this checkout; train it with `locus train "
                f"--config config/train_xfeat.yaml` (its ship_to saves it there), or pass a checkpoint path"
            )
        return LocusModel.load(DEFAULT_CHECKPOINT)
    if spec.startswith(BACKBONE_SPEC_PREFIX):
        return LocusModel.from_backbone(spec[len(BACKBONE_SPEC_PREFIX) :])
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelError(
            f"{spec}: model checkpoint not found (expected 'default', 'backbone:NAME' or a file)"
        )
    return LocusModel.load(path)
