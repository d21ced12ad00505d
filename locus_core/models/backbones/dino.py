"""Self-supervised ViTs (DINO ViT-B/8, ViT-S/8, DINOv2 ViT-S/14) as dense patch-feature backbones.

The architectures come from timm (``pretrained=False``: nothing is ever downloaded); the weights come
from a local file: ``weights=PATH``, else ``$LOCUS_WEIGHTS_DIR/<file>``, else timm's Hugging Face
cache. As in the LoCUS paper, features are the patch tokens after block 11 of 12 (the last block's
output is more specialised to the self-distillation objective), without the final norm.

Input size: with ``img_size=(H, W)`` the position embedding is resampled once, at load time, to that
grid (H, W cropped to multiples of the patch size), and only that size is accepted — this is what
exports to ONNX/TorchScript. With ``img_size=None`` the embedding is interpolated on every call
(timm's ``dynamic_img_size``), so any size works in eager PyTorch but the model does not export.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from locus_core.models.backbones.base import Backbone, BackboneInfo
from locus_core.models.backbones.weights import (
    RANDOM,
    WEIGHTS_DIR_ENV,
    huggingface_hub_dirs,
    read_state_dict,
    weights_dir,
)
from locus_core.models.errors import ModelError, WeightsNotFoundError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Keys a pretrained file may hold that the truncated, headless model does not need.
_IGNORED_KEYS = ("mask_token", "head.", "fc_norm.")


@dataclass(frozen=True)
class ViTSpec:
    """A registry entry: timm architecture, where its weights are published, what it outputs."""

    name: str
    arch: str
    hf_repo: str
    files: tuple[str, ...]  # in $LOCUS_WEIGHTS_DIR, first found first: timm's, the official backbone's, its full training checkpoint
    url: str
    patch: int
    dim: int
    blocks: int

    @property
    def info(self) -> BackboneInfo:
        return BackboneInfo(self.name, self.patch, self.dim, IMAGENET_MEAN, IMAGENET_STD, False)


VIT_SPECS = {
    spec.name: spec
    for spec in (
        ViTSpec(
            "dino_vitb8",
            "vit_base_patch8_224",
            "timm/vit_base_patch8_224.dino",
            ("vit_base_patch8_224.dino.safetensors", "dino_vitbase8_pretrain.pth",
             "dino_vitbase8_pretrain_full_checkpoint.pth"),
            "https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth",
            patch=8,
            dim=768,
            blocks=11,
        ),
        ViTSpec(
            "dino_vits8",
            "vit_small_patch8_224",
            "timm/vit_small_patch8_224.dino",
            ("vit_small_patch8_224.dino.safetensors", "dino_deitsmall8_pretrain.pth",
             "dino_deitsmall8_pretrain_full_checkpoint.pth"),
            "https://dl.fbaipublicfiles.com/dino/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth",
            patch=8,
            dim=384,
            blocks=11,
        ),
        ViTSpec(
            "dinov2_vits14",
            "vit_small_patch14_dinov2",
            "timm/vit_small_patch14_dinov2.lvd142m",
            ("vit_small_patch14_dinov2.lvd142m.safetensors", "dinov2_vits14_pretrain.pth"),
            "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
            patch=14,
            dim=384,
            blocks=11,
        ),
    )
}


def find_weights(spec: ViTSpec) -> Path:
    """The first of ``$LOCUS_WEIGHTS_DIR/<file>`` and timm's HF cache that exists.

    Raises:
        WeightsNotFoundError: saying which file to get, from where, and where to put it.
    """
    searched: list[Path] = []
    local = weights_dir()
    if local is not None:
        for name in spec.files:
            searched.append(local / name)
            if searched[-1].is_file():
                return searched[-1]
    repo_dir = "models--" + spec.hf_repo.replace("/", "--")
    for hub in huggingface_hub_dirs():
        snapshots = hub / repo_dir / "snapshots"
        searched.append(snapshots / "*" / "model.safetensors")
        for snapshot in _snapshots_main_first(hub / repo_dir):
            for name in ("model.safetensors", "pytorch_model.bin"):
                if (snapshot / name).is_file():
                    return snapshot / name
    where = f"${WEIGHTS_DIR_ENV} (now {local})" if local else f"a folder named by ${WEIGHTS_DIR_ENV}"
    raise WeightsNotFoundError(
        f"backbone {spec.name}: pretrained weights not found; download {spec.files[0]} "
        f"(model.safetensors of https://huggingface.co/{spec.hf_repo}) or {spec.files[1]} "
        f"({spec.url}) on a machine with internet, put it in {where} or pass its path as weights=; "
        f"searched: {', '.join(map(str, searched))}"
    )


def _snapshots_main_first(repo: Path) -> list[Path]:
    """A Hugging Face cache repo's snapshot folders: the one ``refs/main`` names first (the current
    revision; snapshot names are commit hashes, so their order says nothing), then the others."""
    snapshots = sorted((repo / "snapshots").glob("*"), reverse=True)
    ref = repo / "refs" / "main"
    main = repo / "snapshots" / ref.read_text().strip() if ref.is_file() else None
    return sorted(snapshots, key=lambda snapshot: snapshot != main)


class ViTBackbone(Backbone):
    """A timm ViT truncated after ``spec.blocks`` blocks: (B,3,H,W) → (B, dim, H//patch, W//patch)."""

    def __init__(
        self,
        spec: ViTSpec,
        weights: str | Path | None = None,
        img_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(spec.info)
        import timm

        self.spec = spec
        p = spec.patch
        self.fixed_size = None if img_size is None else (img_size[0] // p * p, img_size[1] // p * p)
        if self.fixed_size is not None and min(self.fixed_size) < p:
            raise ModelError(f"backbone {spec.name}: img_size {img_size} is smaller than the patch {p}")
        path = None if weights == RANDOM else Path(weights) if weights else find_weights(spec)
        # Built at the architecture's own size, so that a file's position embedding loads as is;
        # timm's own init takes seconds for ViT-B and is overwritten anyway.
        with torch.device("meta"):
            self.vit = timm.create_model(
                spec.arch, pretrained=False, num_classes=0, dynamic_img_size=img_size is None
            )
        self.vit.to_empty(device="cpu")
        if path is None:
            self._init_random()
        else:
            self._load(path)
        self.vit.prune_intermediate_layers(indices=[spec.blocks - 1], prune_norm=True, prune_head=True)
        # Kept to resample from the original grid whenever the input size changes (see resized).
        self._source_size = tuple(self.vit.patch_embed.img_size)
        self._source_pos = self.vit.pos_embed.detach().clone()
        if self.fixed_size is not None:
            self.vit.set_input_size(img_size=self.fixed_size)
        self.freeze()

    def resized(self, img_size: tuple[int, int]) -> ViTBackbone:
        """The same weights at another fixed input size (a dynamic-size backbone returns itself)."""
        p = self.spec.patch
        if self.fixed_size is None:
            return self
        if min(img_size) < p:
            raise ModelError(f"backbone {self.spec.name}: img_size {img_size} is smaller than the patch {p}")
        other = copy.deepcopy(self)
        other.vit.patch_embed.set_input_size(img_size=self._source_size)
        other.vit.pos_embed = torch.nn.Parameter(self._source_pos.clone(), requires_grad=False)
        other.fixed_size = (img_size[0] // p * p, img_size[1] // p * p)
        other.vit.set_input_size(img_size=other.fixed_size)
        return other

    @torch.no_grad()
    def _init_random(self) -> None:
        """Quick random weights (tests, benchmarks): N(0, 0.02) matrices, unit norms, zero biases."""
        for name, param in self.vit.named_parameters():
            if param.ndim > 1:
                param.normal_(0.0, 0.02)
            elif name.endswith("weight") or name.endswith("gamma"):
                param.fill_(1.0)
            else:
                param.zero_()

    def _load(self, path: Path) -> None:
        from timm.models.vision_transformer import checkpoint_filter_fn

        state = read_state_dict(path, backbone=self.spec.name)
        self._check_patch_embed(path, state)
        try:
            state = checkpoint_filter_fn(state, self.vit)
        except Exception as exc:  # timm's converters assume a well-formed ViT checkpoint
            raise ModelError(
                f"{path}: not {self.spec.arch} weights for backbone {self.spec.name} ({exc})"
            ) from None
        state = {k: v for k, v in state.items() if not k.startswith(_IGNORED_KEYS)}
        own = self.vit.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            raise ModelError(
                f"{path}: not {self.spec.arch} weights for backbone {self.spec.name}: "
                f"missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}"
            )
        self.vit.load_state_dict(state)

    def _check_patch_embed(self, path: Path, state: dict[str, torch.Tensor]) -> None:
        """Raise unless the file's patch embedding has this spec's patch size and width.

        timm's ``checkpoint_filter_fn`` resamples a patch embedding of another kernel size (and the
        position embedding with it), so e.g. ViT-S/16 weights would load as ViT-S/8 without this.
        A file without the key (another naming scheme) is left to the full key and shape check.
        """
        weight = state.get("patch_embed.proj.weight")
        if weight is None:
            return
        want = (self.spec.dim, 3, self.spec.patch, self.spec.patch)
        if tuple(weight.shape) != want:
            raise ModelError(
                f"{path}: not {self.spec.arch} weights for backbone {self.spec.name}: patch "
                f"embedding of shape {tuple(weight.shape)}, expected {want} (width, RGB, patch, patch)"
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed_size is not None and tuple(x.shape[-2:]) != self.fixed_size:
            raise ModelError(
                f"backbone {self.spec.name}: built for {self.fixed_size[0]}x{self.fixed_size[1]} "
                f"input, got {x.shape[-2]}x{x.shape[-1]} (create it with img_size=None for any size)"
            )
        (tokens,) = self.vit.forward_intermediates(
            x, indices=[self.spec.blocks - 1], norm=False, output_fmt="NCHW", intermediates_only=True
        )
        return tokens
