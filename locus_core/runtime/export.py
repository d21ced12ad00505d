"""Export a model (backbone + head as one graph) to ONNX, TorchScript or a TensorRT engine.

ONNX goes through the dynamo exporter: the TorchScript-based exporter silently produced a wrong
XFeat graph (per-patch cosine to eager as low as 0.24) while looking faster, so every export is
checked against PyTorch with :func:`parity` before it is kept. Opset 18 is the portable default
(TensorRT 10 parses it); opset 23 writes attention as one fused ``Attention`` op, which ONNX
Runtime >= 1.23 runs much faster than MatMul + Softmax + MatMul (the engines use it there).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from locus_core.durable import atomic_write
from locus_core.runtime.errors import ExportError

log = logging.getLogger(__name__)

Format = Literal["onnx", "torchscript", "tensorrt"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "tensorrt")
MIN_PARITY = 0.999
FP16_MIN_PARITY = 0.99  # FP16 engines: half precision costs about 1e-3 of cosine
OPSETS: tuple[int, ...] = (18, 23)
INPUT_NAME = "images"
OUTPUT_NAME = "features"


def parity(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Smallest per-patch cosine between two (B,S,D,h,w) feature tensors (1.0 = identical).

    A patch with NaN or infinite features counts as -1: its cosine is NaN, and every ``score <
    required`` check would pass a NaN (an FP16 engine that overflows gives NaN features).
    """
    if reference.shape != candidate.shape:
        raise ExportError(f"exported graph gives shape {tuple(candidate.shape)}, PyTorch {tuple(reference.shape)}")
    a = reference.detach().float().cpu()
    b = candidate.detach().float().cpu()
    cos = (a * b).sum(2) / (a.norm(dim=2) * b.norm(dim=2)).clamp_min(1e-12)
    return float(cos.nan_to_num(nan=-1.0, posinf=-1.0, neginf=-1.0).min())


def checked_parity(model: nn.Module, engine: nn.Module, what: str, *, fp16: bool = False) -> float:
    """Parity of ``engine``'s features with ``model``'s (eager PyTorch) on the seeded example images.

    Raises:
        ExportError: naming ``what``, below ``MIN_PARITY`` (``FP16_MIN_PARITY`` for an FP16 engine).
    """
    example = example_input(model)
    device = next(model.parameters(), torch.empty(0)).device
    with torch.inference_mode():
        reference = model.eval()(example.to(device))
        candidate = engine(example.to(engine.device))
    score = parity(reference, candidate)
    required = FP16_MIN_PARITY if fp16 else MIN_PARITY
    if score < required:
        raise ExportError(f"{what} disagrees with PyTorch (min per-patch cosine {score:.4f} < {required})")
    return score


def example_input(model: nn.Module, input_size: tuple[int, int] | None = None) -> torch.Tensor:
    """The seeded (2,3,H,W) images graphs are exported with and checked on."""
    # Batch 2: the exporter specialises a size-1 axis, and the batch axis must stay symbolic.
    height, width = input_size or model.input_size
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, height, width, generator=generator)


def export_onnx(
    model: nn.Module,
    path: Path,
    *,
    input_size: tuple[int, int] | None = None,
    dynamic: bool = False,
    opset: int = 18,
) -> Path:
    """Write ``model`` as one ONNX graph; batch (and with ``dynamic``, H and W) symbolic."""
    if opset not in OPSETS:
        raise ExportError(f"opset {opset} not supported; valid: {', '.join(map(str, OPSETS))}")
    if dynamic and any(getattr(getattr(model, "config", None), "attention_radii", ())):
        # The exporter folds the neighbourhood index arithmetic for the traced grid into the graph.
        raise ExportError(f"model {model.hash} has local attention, which exports at a fixed input size: "
                          "export once per size (--size H W) instead of --dynamic")
    if dynamic and getattr(getattr(model, "backbone", None), "fixed_size", None) is not None:
        # A ViT's position embedding is resampled to one grid: the graph checked at that size fails
        # in ONNX Runtime at any other.
        raise ExportError(f"model {model.hash}: backbone {model.backbone.info.name} has a position embedding "
                          "for one input size: export once per size (--size H W) instead of --dynamic")
    example = example_input(model, input_size)
    axes: dict[int, object] = {0: torch.export.Dim("batch", min=1, max=64)}
    if dynamic:
        stride = int(model.stride)
        axes[2] = torch.export.Dim("h", min=2, max=256) * stride
        axes[3] = torch.export.Dim("w", min=2, max=256) * stride
    dynamic_shapes = {"images": axes}
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                program = torch.onnx.export(
                    model.eval(),
                    (example,),
                    dynamo=True,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=dynamic_shapes,
                    verbose=False,
                )
                program.save(str(tmp))
            except Exception as exc:  # the exporter raises many types; all mean "this graph did not export"
                raise ExportError(f"ONNX export of model {model.hash} failed: {type(exc).__name__}: {exc}") from None

    return atomic_write(path, write)


def export_torchscript(model: nn.Module, path: Path, *, input_size: tuple[int, int] | None = None) -> Path:
    """Trace ``model`` at one input size into a TorchScript file."""
    example = example_input(model, input_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(model.eval(), (example,), check_trace=False)
    return atomic_write(path, lambda tmp: traced.save(str(tmp)))


def export_model(
    model: nn.Module,
    path: str | Path,
    fmt: Format = "onnx",
    *,
    input_size: tuple[int, int] | None = None,
    dynamic: bool = False,
    fp16: bool = True,
    opset: int = 18,
) -> tuple[Path, float]:
    """Export and check: returns the written file and its parity (min per-patch cosine) with PyTorch.

    ``opset`` applies to ONNX only; the TensorRT engine is always built from an opset-18 graph.

    Raises:
        ExportError: the export fails or its parity is below 0.999 (0.99 for an FP16 TensorRT
            engine); nothing is then written to ``path`` (a file already there is kept, except a
            TensorRT engine, which builds in place).
        RuntimeUnavailable: TensorRT asked for where it is not installed or there is no GPU.
    """
    from locus_core.runtime.engines import OnnxEngine, TensorRTEngine, TorchScriptEngine

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if dynamic and fmt != "onnx":
        # Ignored before: the file was taken for one that runs at any size, and failed on the robot.
        raise ExportError(f"dynamic input sizes export to ONNX only; {fmt} runs at one input size "
                          "(--size H W, once per size)")
    path = Path(path)
    # Before exporting: os.replace into a folder failed only after the export and its check, and a
    # folder that cannot be made (a read-only home's cache) raised a bare OSError create_engine let through.
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; the export needs a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{path}: cannot make its folder {path.parent} ({exc.strerror})") from None
    if input_size is not None and tuple(input_size) != tuple(model.input_size):
        # The graph runs at that size, and the engine checking it must expect it (a ViT's position
        # embedding is resampled to it).
        model = model.with_input_size(tuple(input_size))
        input_size = None
    if fmt == "tensorrt":
        # Checks TensorRT and the GPU before exporting the (cached, opset-18) graph it builds from;
        # the engine builds in place and removes itself when it fails the check.
        score = TensorRTEngine(model, engine_path=path, fp16=fp16).check(model)
    else:
        # ONNX and TorchScript files are checked under another name and only then moved to ``path``:
        # a graph that exports but computes something else must never be found there, by this process
        # or by another one loading the cache meanwhile, and a failed export keeps the previous file.
        score = 0.0

        def export_checked(tmp: Path) -> None:
            nonlocal score
            if fmt == "onnx":
                export_onnx(model, tmp, input_size=input_size, dynamic=dynamic, opset=opset)
                engine: nn.Module = OnnxEngine(model, tmp)
            else:
                export_torchscript(model, tmp, input_size=input_size)
                engine = TorchScriptEngine(model, tmp)
            score = checked_parity(model, engine, f"{path}: exported {fmt} graph (not written)")

        atomic_write(path, export_checked)
    log.info("exported %s to %s (parity %.6f)", fmt, path, score)
    return path, score


__all__ = ["FORMATS", "OPSETS", "export_model", "export_onnx", "export_torchscript", "parity"]
