"""Engines that run a model's inference contract on one runtime, and the fallback chain between them.

Every engine is an ``nn.Module`` exposing what inference code reads from a ``LocusModel``
(``config``, ``stride``, ``input_size``, ``scales``, ``hash``, ``device``) and the same call:
(B,3,H,W) float RGB in [0,1] → (B,S,D,h,w) unit-norm features. ``create_engine`` tries the
runtimes in order of speed and falls back, logging the reason once, when one is missing.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from locus_core.cache import cache_dir
from locus_core.durable import atomic_write, atomic_write_text
from locus_core.runtime.errors import EngineError, ExportError, RuntimeUnavailable
from locus_core.runtime.graph_cache import cached_int8_onnx, cached_onnx, engine_key

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
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
# With precision="bf16", eager PyTorch runs under bf16 autocast where the hardware has bf16 units,
# ahead of ONNX Runtime (fp32 only) on the CPU; without them it falls back to the fp32 chain.
_BF16_CHAINS: dict[str, tuple[str, ...]] = {
    "auto": ("tensorrt", "cuda-bf16", "cpu-bf16", "onnxruntime", "cpu"),
    "tensorrt": ("tensorrt", "cuda-bf16", "cpu-bf16", "onnxruntime", "cpu"),
    "cuda": ("cuda-bf16", "cpu-bf16", "onnxruntime", "cpu"),
    "onnxruntime": ("cpu-bf16", "onnxruntime", "cpu"),
    "cpu": ("cpu-bf16", "cpu"),
}

# With precision="int8", ONNX Runtime runs the graph with int8 weights and dynamically quantised
# activations in its MatMul/Gemm layers (2x on the ViTs here; 1.2x on the default model on one
# thread, whose head's layers take three quarters of its time and its XFeat convolutions the rest). GPUs keep
# their chains: TensorRT already builds FP16.
_INT8_CHAINS: dict[str, tuple[str, ...]] = {
    "auto": ("tensorrt", "cuda", "onnxruntime-int8", "onnxruntime", "cpu"),
    "tensorrt": ("tensorrt", "cuda", "onnxruntime-int8", "onnxruntime", "cpu"),
    "cuda": ("cuda", "onnxruntime-int8", "onnxruntime", "cpu"),
    "onnxruntime": ("onnxruntime-int8", "onnxruntime", "cpu"),
    "cpu": ("cpu",),
}
_PRECISION_CHAINS = {"fp32": _CHAINS, "bf16": _BF16_CHAINS, "int8": _INT8_CHAINS}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def bf16_unavailable(device: torch.device) -> str:
    """Why bf16 would not be fast on ``device`` ("" when it would)."""
    if device.type == "cuda":
        return "" if torch.cuda.is_bf16_supported() else "this GPU has no bf16 support"
    # Without AMX or AVX512-BF16, oneDNN emulates bf16 and is slower than fp32.
    if not torch.backends.mkldnn.is_available():
        return "PyTorch was built without oneDNN"
    if not {"amx_bf16", "avx512_bf16"} & cpu_flags():
        return "this CPU has no AMX-BF16 or AVX512-BF16 units"
    return ""


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

    def _check(self, images: torch.Tensor, *, any_size: bool = False) -> None:
        """Raise unless ``images`` are (B,3,H,W) float at the input size (``any_size``: H, W >= the stride)."""
        if any_size:
            size, wrong = f"H >= {self.stride}, W >= {self.stride}", min(images.shape[-2:], default=0) < self.stride
        else:
            size, wrong = f"{self.input_size[0]},{self.input_size[1]}", tuple(images.shape[-2:]) != self.input_size
        if images.ndim != 4 or images.shape[1] != 3 or wrong:
            raise EngineError(
                f"{self.name} engine for model {self.hash} takes (B,3,{size}) images, got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            # Runtimes cast to float and run: uint8 frames gave features of 0-255 input, where eager
            # PyTorch refuses them.
            raise EngineError(
                f"{self.name} engine for model {self.hash} takes float RGB images in [0, 1], got {images.dtype}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.hash}, input_size={self.input_size})"


class TorchEngine(InferenceEngine):
    """Eager PyTorch on the CPU or a CUDA device (the reference every other engine is checked against).

    ``precision="bf16"`` runs under bf16 autocast (matmuls and convolutions in bf16 on AMX / tensor
    cores, reductions in fp32) and re-normalises the output in fp32. Opt-in: like any reduced
    precision it must be checked on retrieval AP for the model at hand
    (``locus bench infer --runtime cpu-bf16 --ap-data DATA``).
    """

    def __init__(self, model: nn.Module, device: str = "cpu", *, precision: str = "fp32") -> None:
        super().__init__(model)
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailable("CUDA is not available to PyTorch here")
        if precision not in PRECISIONS:
            raise EngineError(f"precision: unknown {precision!r}; valid: {', '.join(PRECISIONS)}")
        self._device = torch.device(device)
        if precision == "bf16" and (why := bf16_unavailable(self._device)):
            raise RuntimeUnavailable(f"bf16: {why}")
        self.precision = precision
        self.name = device if precision == "fp32" else f"{device}-bf16"
        # A copy on another device: moving the caller's model would break its other engines (an ONNX
        # export traces it on the CPU) and whoever holds it.
        current = next(model.parameters()).device
        same = current.type == self._device.type
        self.model = (model if same else copy.deepcopy(model).to(self._device)).eval()

    @property
    def device(self) -> torch.device:
        return self._device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self._device)
        if self.precision == "fp32":
            return self.model(images)
        with torch.autocast(self._device.type, dtype=torch.bfloat16):
            features = self.model(images)
        return nn.functional.normalize(features.float(), dim=2)


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


def _spin_threads() -> bool:
    # Same policy as PyTorch's OpenMP threads: spinning workers cut latency on dedicated cores but
    # steal the CPU from each other and from other processes on a shared one (measured: 163 ms with
    # spinning off vs 201 ms on, under load), so OMP_WAIT_POLICY=PASSIVE turns it off here too.
    return os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE"


class OnnxEngine(InferenceEngine):
    """ONNX Runtime on the CPU: as many intra-op threads as PyTorch uses (no oversubscription), one
    inter-op thread (the graph is a chain), and thread spinning as ``OMP_WAIT_POLICY`` says.

    ``per_frame``: run a batch one frame at a time, for int8 graphs: their dynamically quantised
    activations share one scale across the whole input tensor, so a frame's features depended on the
    other frames of its batch.
    """

    name = "onnxruntime"

    def __init__(
        self, model: nn.Module, path: Path | None = None, *, threads: int | None = None, name: str = "onnxruntime",
        per_frame: bool = False,
    ) -> None:
        super().__init__(model)
        self.name = name
        self.per_frame = per_frame
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeUnavailable("onnxruntime is not installed") from None
        if path is None:
            path = cached_onnx(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if _spin_threads() else "0")
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
        self._check(images, any_size=self._dynamic)
        if self._dynamic:
            # A dynamic graph takes multiples of the stride (exported so) and ONNX Runtime failed on
            # others: the rows and columns the model would crop off are cropped here.
            height, width = (n // self.stride * self.stride for n in images.shape[-2:])
            images = images[..., :height, :width]
        array = images.detach().cpu().float().contiguous().numpy()
        if self.per_frame and len(array) > 1:
            return torch.cat([self._run(frame) for frame in array[:, None]])
        return self._run(array)

    def _run(self, array: object) -> torch.Tensor:
        try:
            return torch.from_numpy(self.session.run(None, {self._input: array})[0])
        except Exception as exc:  # onnxruntime's own Fail/InvalidArgument types, which no caller catches
            raise EngineError(f"{self.path}: ONNX Runtime failed running it ({str(exc).splitlines()[0]})") from None


class TensorRTEngine(InferenceEngine):
    """A TensorRT engine built from the ONNX graph (opset 18) on first use, checked against eager
    PyTorch (``check``: an engine that disagrees is removed, and ``create_engine`` falls back) and cached.

    The cache key holds the model hash and weights digest, the TensorRT version, the GPU's name and
    compute capability, the input size and the precision: an engine built for another GPU or
    TensorRT version is rebuilt, never loaded. Needs TensorRT >= 8.6 (named-tensor API,
    ``execute_async_v3``); parsing opset 18 needs TensorRT 10 in practice.
    """

    name = "tensorrt"
    MAX_BATCH = 8

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
        if not hasattr(trt.IExecutionContext, "execute_async_v3"):
            raise RuntimeUnavailable(f"TensorRT {trt.__version__} is too old (need >= 8.6)")
        self._trt = trt
        self.fp16 = fp16
        self.parity: float | None = None  # with eager PyTorch, once checked (``check``)
        self.key = engine_key(model, trt.__version__, self.input_size, fp16)
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in self.key)
        self.engine_path = Path(engine_path) if engine_path else cache_dir() / "tensorrt" / f"{safe}.engine"
        logger = trt.Logger(trt.Logger.WARNING)

        def build() -> None:
            self._build(Path(onnx_path) if onnx_path else cached_onnx(model, opset=18), logger, fp16)

        built = not self.engine_path.is_file() or self._read_key() != self.key
        if built:
            build()
        runtime = trt.Runtime(logger)
        self.engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None and not built:
            # A cached engine TensorRT cannot read (its file damaged, or the GPU's driver changed
            # under it) failed every start until removed by hand: it is built again, once.
            log.warning("%s: TensorRT could not deserialize the cached engine; building it again", self.engine_path)
            self._remove()  # first: a build that fails too must not leave it for the next start
            build()
            built = True
            self.engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            self._remove()
            raise EngineError(f"{self.engine_path}: TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        self._input = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self._output = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)
        # Its own stream: TensorRT synchronises more on the legacy default stream.
        self._stream = torch.cuda.Stream()
        if built:  # an engine is checked once, when built: an FP16 overflow gives NaN features
            self.check(model)

    @property
    def device(self) -> torch.device:
        return torch.device("cuda")

    def check(self, model: nn.Module) -> float:
        """Parity with ``model`` in eager PyTorch (computed once); below the bound the engine file
        is removed and an ExportError raised (``create_engine`` then falls back, with the reason)."""
        from locus_core.runtime.export import checked_parity

        if self.parity is None:
            try:
                self.parity = checked_parity(model, self, f"TensorRT engine {self.engine_path}", fp16=self.fp16)
            except ExportError:
                self._remove()
                raise
        return self.parity

    def _remove(self) -> None:
        """The engine and its key out of the cache: the next start builds it again."""
        self.engine_path.unlink(missing_ok=True)
        self.engine_path.with_suffix(".key").unlink(missing_ok=True)

    def _read_key(self) -> str:
        key_file = self.engine_path.with_suffix(".key")
        return key_file.read_text() if key_file.is_file() else ""

    def _build(self, onnx_path: Path, logger: object, fp16: bool) -> None:
        trt = self._trt
        builder = trt.Builder(logger)
        # TensorRT 10 is always explicit-batch (the flag is deprecated); 8.x must be told.
        major = int(trt.__version__.split(".")[0])
        flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(Path(onnx_path).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ExportError(f"{onnx_path}: TensorRT cannot parse the ONNX graph: {errors}")
        config = builder.create_builder_config()
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        height, width = self.input_size
        first = network.get_input(0)
        if first.shape[0] == -1:  # symbolic batch: one profile, tuned for single frames
            profile = builder.create_optimization_profile()
            profile.set_shape(first.name, (1, 3, height, width), (1, 3, height, width),
                              (self.MAX_BATCH, 3, height, width))
            config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ExportError(f"TensorRT failed to build an engine from {onnx_path}")
        self.engine_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.engine_path, lambda tmp: tmp.write_bytes(bytes(serialized)))
        atomic_write_text(self.engine_path.with_suffix(".key"), self.key)
        log.info("built TensorRT engine %s", self.engine_path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self._check(images)
        if images.shape[0] > self.MAX_BATCH:
            return torch.cat([self(chunk) for chunk in images.split(self.MAX_BATCH)])
        images = images.to("cuda", torch.float32).contiguous()
        self._stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self._stream):
            self.context.set_input_shape(self._input, tuple(images.shape))
            output = torch.empty(tuple(self.context.get_tensor_shape(self._output)), device="cuda")
            self.context.set_tensor_address(self._input, images.data_ptr())
            self.context.set_tensor_address(self._output, output.data_ptr())
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise EngineError(f"TensorRT execution failed for model {self.hash}")
        self._stream.synchronize()
        return output


_LOGGED: set[str] = set()


def _log_once(level: int, message: str) -> None:
    # Nodes and benchmarks create engines repeatedly; the same fallback is worth one line.
    if message not in _LOGGED:
        _LOGGED.add(message)
        log.log(level, message)


def create_engine(model: nn.Module, device: str = "auto", *, precision: str = "fp32") -> InferenceEngine:
    """The fastest available engine for ``device``, falling back along the chain (reasons logged once).

    ``device``: auto | cpu | cuda | onnxruntime | tensorrt. ``auto`` picks TensorRT, then CUDA, then
    ONNX Runtime, then eager PyTorch on the CPU. ``precision``: fp32; bf16 to put eager PyTorch
    under bf16 autocast first where the hardware has bf16 units; int8 to run ONNX Runtime with int8
    MatMul/Gemm layers (check the features first: ``locus bench infer --int8 --ap-data``). TensorRT
    builds FP16 either way.

    Raises:
        EngineError: an unknown device name or precision, or even eager PyTorch failed.
    """
    if device not in _CHAINS:
        raise EngineError(f"device: unknown {device!r}; valid: {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise EngineError(f"precision: unknown {precision!r}; valid: {', '.join(PRECISIONS)}")
    reasons: list[str] = []
    for runtime in _PRECISION_CHAINS[precision][device]:
        try:
            engine = _make(model, runtime)
        except (RuntimeUnavailable, ExportError, EngineError) as exc:
            reasons.append(f"{runtime}: {exc}")
            continue
        engine.fallbacks = reasons
        if reasons:
            level = logging.INFO if device == "auto" else logging.WARNING
            what = "device auto:" if device == "auto" else f"device {device} unavailable,"
            _log_once(level, f"{what} using {runtime} ({'; '.join(reasons)})")
        return engine
    raise EngineError(f"no runtime could run model {model.hash}: {'; '.join(reasons)}")


def _cached_onnx_engine(model: nn.Module, cache: Callable[[nn.Module], Path], **kwargs: Any) -> OnnxEngine:
    """An ``OnnxEngine`` on the graph ``cache`` keeps for ``model``, made again once if it does not load."""
    path = cache(model)
    try:
        return OnnxEngine(model, path, **kwargs)
    except RuntimeUnavailable:
        raise
    except EngineError as exc:
        # Renamed into place whole but not synced to disk: a power cut can leave it empty or cut
        # short, and every start fell back to a slower runtime until someone deleted it.
        log.warning("%s; making it again", exc)
        path.unlink(missing_ok=True)
        return OnnxEngine(model, cache(model), **kwargs)


def _make(model: nn.Module, runtime: str) -> InferenceEngine:
    if runtime == "tensorrt":
        return TensorRTEngine(model)
    if runtime == "onnxruntime":
        return _cached_onnx_engine(model, cached_onnx)
    if runtime == "onnxruntime-int8":
        return _cached_onnx_engine(model, cached_int8_onnx, name=runtime, per_frame=True)
    if runtime.endswith("-bf16"):
        return TorchEngine(model, runtime.removesuffix("-bf16"), precision="bf16")
    return TorchEngine(model, runtime)
