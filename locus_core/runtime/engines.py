"""Engines that run a model's inference contract on one runtime, and the fallback chain between them.

Every engine is an ``nn.Module`` exposing what inference code reads from a ``LocusModel``
(``config``, ``stride``, ``input_size``, ``scales``, ``hash``, ``device``) and the same call:
(B,3,H,W) float RGB in [0,1] → (B,S,D,h,w) unit-norm features. ``create_engine`` tries the
runtimes in order of speed and falls back, logging the reason once, when one is missing.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
from torch import nn

from locus_core.runtime.errors import EngineError, ExportError, RuntimeUnavailable

log = logging.getLogger(__name__)

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "onnxruntime", "tensorrt")
# What each request falls back to, fastest first. "auto" on a machine without CUDA means ONNX Runtime.
_CHAINS: dict[str, tuple[str, ...]] = {
    "auto": ("tensorrt", "cuda", "onnxruntime", "cpu"),
    "tensorrt": ("tensorrt", "cuda", "onnxruntime", "cpu"),
    "cuda": ("cuda", "onnxruntime", "cpu"),
    "onnxruntime": ("onnxruntime", "cpu"),
    "cpu": ("cpu",),
}


def cache_dir() -> Path:
    """Where exported graphs and TensorRT engines are kept: ``$LOCUS_CACHE`` or ``~/.cache/locus``."""
    return Path(os.environ.get("LOCUS_CACHE", Path.home() / ".cache" / "locus"))


class InferenceEngine(nn.Module):
    """A model's inference contract on some runtime; ``name`` says which."""

    name = "abstract"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.config = model.config
        self.stride: int = int(model.stride)
        self.input_size: tuple[int, int] = tuple(model.input_size)  # type: ignore[assignment]
        self.scales: int = int(model.scales)
        self.hash: str = str(model.hash)
        self.fallbacks: list[str] = []  # why faster runtimes were not used, in order

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def _check(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != self.input_size:
            raise EngineError(
                f"{self.name} engine for model {self.hash} takes (B,3,{self.input_size[0]},{self.input_size[1]}) "
                f"images, got {tuple(images.shape)}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.hash}, input_size={self.input_size})"


class TorchEngine(InferenceEngine):
    """Eager PyTorch on the CPU or a CUDA device (the reference every other engine is checked against)."""

    def __init__(self, model: nn.Module, device: str = "cpu") -> None:
        super().__init__(model)
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailable("CUDA is not available to PyTorch here")
        self.name = device
        self.model = model.to(device).eval()
        self._device = torch.device(device)

    @property
    def device(self) -> torch.device:
        return self._device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.to(self._device))


class TorchScriptEngine(InferenceEngine):
    """A traced TorchScript file (fixed input size)."""

    name = "torchscript"

    def __init__(self, model: nn.Module, path: Path) -> None:
        super().__init__(model)
        try:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"{path}: not a loadable TorchScript file ({exc})") from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self._check(images)
        return self.module(images.cpu())


class OnnxEngine(InferenceEngine):
    """ONNX Runtime on the CPU, with as many intra-op threads as PyTorch uses (no oversubscription)."""

    name = "onnxruntime"

    def __init__(self, model: nn.Module, path: Path | None = None, *, threads: int | None = None) -> None:
        super().__init__(model)
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeUnavailable("onnxruntime is not installed") from None
        if path is None:
            path = cached_onnx(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise EngineError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
        self.path = Path(path)
        self._input = self.session.get_inputs()[0].name
        fixed = self.session.get_inputs()[0].shape[-2:]
        self._dynamic = not all(isinstance(n, int) for n in fixed)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self._dynamic:
            self._check(images)
        array = images.detach().cpu().float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self._input: array})[0])


class TensorRTEngine(InferenceEngine):
    """A TensorRT engine built from the ONNX graph on first use and cached.

    The cache key holds the model hash, the TensorRT version, the GPU's name, the input size and the
    precision: an engine built for another GPU or TensorRT version is rebuilt, never loaded.
    """

    name = "tensorrt"

    def __init__(
        self,
        model: nn.Module,
        onnx_path: Path | None = None,
        *,
        engine_path: Path | None = None,
        fp16: bool = True,
    ) -> None:
        super().__init__(model)
        try:
            import tensorrt as trt
        except ImportError:
            raise RuntimeUnavailable("TensorRT (python package tensorrt) is not installed") from None
        if not torch.cuda.is_available():
            raise RuntimeUnavailable("TensorRT needs a CUDA GPU and none is available")
        self._trt = trt
        gpu = torch.cuda.get_device_name(0)
        height, width = self.input_size
        key = f"{self.hash}-trt{trt.__version__}-{gpu}-{height}x{width}-{'fp16' if fp16 else 'fp32'}"
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in key)
        self.engine_path = engine_path or cache_dir() / "tensorrt" / f"{safe}.engine"
        logger = trt.Logger(trt.Logger.WARNING)
        if not self.engine_path.is_file() or self._read_key() != key:
            self._build(onnx_path or cached_onnx(model), logger, fp16, key)
        runtime = trt.Runtime(logger)
        self.engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise EngineError(f"{self.engine_path}: TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        self._input = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self._output = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)

    @property
    def device(self) -> torch.device:
        return torch.device("cuda")

    def _read_key(self) -> str:
        key_file = self.engine_path.with_suffix(".key")
        return key_file.read_text() if key_file.is_file() else ""

    def _build(self, onnx_path: Path, logger: object, fp16: bool, key: str) -> None:
        trt = self._trt
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(Path(onnx_path).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ExportError(f"{onnx_path}: TensorRT cannot parse the ONNX graph: {errors}")
        config = builder.create_builder_config()
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        height, width = self.input_size
        name = network.get_input(0).name
        profile.set_shape(name, (1, 3, height, width), (1, 3, height, width), (8, 3, height, width))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ExportError(f"TensorRT failed to build an engine from {onnx_path}")
        self.engine_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.engine_path.with_name(f".{self.engine_path.name}.tmp{os.getpid()}")
        tmp.write_bytes(bytes(serialized))
        os.replace(tmp, self.engine_path)
        self.engine_path.with_suffix(".key").write_text(key)
        log.info("built TensorRT engine %s", self.engine_path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self._check(images)
        images = images.to("cuda", torch.float32).contiguous()
        self.context.set_input_shape(self._input, tuple(images.shape))
        shape = tuple(self.context.get_tensor_shape(self._output))
        output = torch.empty(shape, device="cuda", dtype=torch.float32)
        self.context.set_tensor_address(self._input, images.data_ptr())
        self.context.set_tensor_address(self._output, output.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise EngineError(f"TensorRT execution failed for model {self.hash}")
        stream.synchronize()
        return output


def cached_onnx(model: nn.Module) -> Path:
    """The model's ONNX graph at its input size, exported (and parity-checked) once per model hash."""
    from locus_core.runtime.export import export_model

    height, width = model.input_size
    stamp = hashlib.sha256(f"{torch.__version__}".encode()).hexdigest()[:6]
    path = cache_dir() / "onnx" / f"{model.hash}-{height}x{width}-{stamp}.onnx"
    if not path.is_file():
        export_model(model, path, "onnx")
    return path


def create_engine(model: nn.Module, device: str = "auto") -> InferenceEngine:
    """The fastest available engine for ``device``, falling back along the chain (reasons logged once).

    ``device``: auto | cpu | cuda | onnxruntime | tensorrt. ``auto`` picks TensorRT, then CUDA, then
    ONNX Runtime, then eager PyTorch on the CPU.

    Raises:
        EngineError: an unknown device name, or even eager PyTorch failed.
    """
    if device not in _CHAINS:
        raise EngineError(f"device: unknown {device!r}; valid: {', '.join(DEVICES)}")
    reasons: list[str] = []
    for runtime in _CHAINS[device]:
        try:
            engine = _make(model, runtime)
        except (RuntimeUnavailable, ExportError, EngineError) as exc:
            reasons.append(f"{runtime}: {exc}")
            continue
        engine.fallbacks = reasons
        if reasons and device != "auto":
            log.warning("device %s unavailable, using %s (%s)", device, runtime, "; ".join(reasons))
        elif reasons:
            log.info("device auto: using %s (%s)", runtime, "; ".join(reasons))
        return engine
    raise EngineError(f"no runtime could run model {model.hash}: {'; '.join(reasons)}")


def _make(model: nn.Module, runtime: str) -> InferenceEngine:
    if runtime == "tensorrt":
        return TensorRTEngine(model)
    if runtime == "onnxruntime":
        return OnnxEngine(model)
    return TorchEngine(model, runtime)
