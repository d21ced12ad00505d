"""Which cached file belongs to a model, and the cached ONNX graphs themselves.

Exported ONNX graphs, their int8 forms and TensorRT engines are kept under ``cache_dir()`` and
reused only by a model that would export the same file: the keys hold its weights (all of them,
backbone included), the source of the code that computes, exports and checks it, and the versions
of the other packages its layers come from.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import sys
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from locus_core.cache import cache_dir
from locus_core.durable import atomic_write
from locus_core.runtime.errors import ExportError, RuntimeUnavailable


def weights_digest(model: nn.Module) -> str:
    """12 hex chars of sha256 over every parameter and buffer (backbone included).

    ``model.hash`` covers the head only ("backbone-NAME" for a raw backbone), so a cache keyed by it
    alone would hand a randomly initialised ViT's graph to the pretrained one.
    """
    digest = hashlib.sha256(str(getattr(model, "hash", "")).encode())
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


_PACKAGE = Path(__file__).resolve().parents[1]
# The code that exports, quantises, builds and checks the cached files.
_RUNTIME_SOURCES = tuple(Path(__file__).resolve().with_name(name) for name in ("graph_cache.py", "engines.py", "export.py"))


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    """Top-level module name → installed distributions providing it (0.2 s to scan: once)."""
    return metadata.packages_distributions()


def code_digest(model: nn.Module) -> str:
    """6 hex chars of sha256 over the torch version, the source of this package's modules in
    ``model`` and the versions of the other packages its modules come from (timm's ViTs, ...): a
    graph exported by other code (an upgrade that changes how a layer computes, with the same
    weights) is not reused. The runtime's own source too: a graph, int8 graph or TensorRT engine
    cached by an older export, quantisation or check (one that let NaN features through, built
    TensorRT engines unchecked) is made again, not loaded."""
    digest = hashlib.sha256(torch.__version__.encode())
    for path in _RUNTIME_SOURCES:
        digest.update(path.read_bytes())
    # Base classes too: Backbone.forward and preprocess (crop, grayscale, mean/std), in the exported
    # graph, live in a module of their own that no layer's class is from.
    classes = {cls for module in model.modules() for cls in type(module).__mro__}
    files = {getattr(sys.modules.get(cls.__module__), "__file__", None) for cls in classes}
    for path in sorted(Path(f).resolve() for f in files if f):
        if path.is_relative_to(_PACKAGE):
            digest.update(path.read_bytes())
    packages = {type(module).__module__.split(".")[0] for module in model.modules()} - {_PACKAGE.name}
    for name in sorted(packages):
        for dist in sorted(_distributions().get(name, ())):
            digest.update(f"{dist}=={metadata.version(dist)}".encode())
    return digest.hexdigest()[:6]


def onnxruntime_opset() -> int:
    """The opset to export for ONNX Runtime: 23 (fused ``Attention``) where it runs it, else 18.

    The fused op matters for transformer heads: as MatMul + Softmax + MatMul the (h*w)^2 attention of
    a 32x40 grid costs more in ONNX Runtime than in PyTorch's fused kernel.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeUnavailable("onnxruntime is not installed") from None

    major, minor = (int(v) for v in ort.__version__.split(".")[:2])
    return 23 if (major, minor) >= (1, 23) else 18


def engine_key(model: nn.Module, trt_version: str, input_size: tuple[int, int], fp16: bool) -> str:
    """What a cached TensorRT engine must match to be loaded: model, weights, TensorRT, GPU, size, precision."""
    props = torch.cuda.get_device_properties(0)
    height, width = input_size
    return (f"{model.hash}-{weights_digest(model)}-{code_digest(model)}-trt{trt_version}-{props.name}"
            f"-sm{props.major}{props.minor}"
            f"-{height}x{width}-{'fp16' if fp16 else 'fp32'}")


def cached_onnx(model: nn.Module, *, opset: int | None = None) -> Path:
    """The model's ONNX graph at its input size, exported (and parity-checked) once per weights and code.

    ``opset``: None for the fastest graph ONNX Runtime runs here (:func:`onnxruntime_opset`).
    """
    from locus_core.runtime.export import export_model

    opset = opset or onnxruntime_opset()
    height, width = model.input_size
    name = f"{model.hash}-{weights_digest(model)}-{height}x{width}-op{opset}-{code_digest(model)}.onnx"
    path = cache_dir() / "onnx" / name
    if not path.is_file():
        export_model(model, path, "onnx", opset=opset)
    return path


# Smallest per-patch cosine an int8 graph must keep with its fp32 graph to be used (a guard against
# a broken quantisation; whether retrieval suffers is `locus bench infer --int8 --ap-data`'s to say).
INT8_MIN_PARITY = 0.98


def cached_int8_onnx(model: nn.Module) -> Path:
    """``cached_onnx``'s graph with int8 dynamic quantisation of its MatMul/Gemm layers, made once and
    kept only if its features stay within ``INT8_MIN_PARITY`` of the fp32 graph's.

    Convolutions stay float: as ConvInteger they ran 3-5x slower than float here, and the fused
    Attention op has no quantised form (QAttention rejects its attributes).
    """
    source = cached_onnx(model)
    path = source.with_name(source.stem + "-int8.onnx")
    if not path.is_file():
        try:
            from onnxruntime.quantization import QuantType, quantize_dynamic
        except ImportError:
            raise RuntimeUnavailable("onnxruntime.quantization is not installed") from None
        from locus_core.runtime.engines import OnnxEngine
        from locus_core.runtime.export import example_input, parity

        def quantize_checked(tmp: Path) -> None:  # the rename follows only a graph that passed
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # the quantiser logs a line per tensor, and advice, on the root logger
            try:
                quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8,
                                 op_types_to_quantize=["MatMul", "Gemm"])
            except Exception as exc:  # the quantiser raises bare Exceptions for graphs it cannot handle
                raise ExportError(f"{source}: int8 quantisation failed ({str(exc).splitlines()[0]})") from None
            finally:
                root.setLevel(level)
            images = example_input(model)
            agreement = parity(OnnxEngine(model, source)(images), OnnxEngine(model, tmp, per_frame=True)(images))
            if agreement < INT8_MIN_PARITY:
                raise ExportError(
                    f"{source}: its int8 graph departs from fp32 (smallest per-patch cosine {agreement:.4f} < "
                    f"{INT8_MIN_PARITY}); not used"
                )

        atomic_write(path, quantize_checked)
    return path
