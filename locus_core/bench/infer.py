"""Feature inference per frame: each runtime against eager PyTorch on the same device and input, in one run."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from locus_core.bench import BenchResult
from locus_core.bench.errors import BenchError
from locus_core.cli import integer_at_least

if TYPE_CHECKING:
    from locus_core.runtime import InferenceEngine

# Speed does not depend on weight values, so ViTs whose pretrained weights are absent are timed
# with random weights (the record says so).
VIT_BACKBONES = ("dino_vits8", "dinov2_vits14", "dino_vitb8")
RUNTIMES = ("onnxruntime", "onnxruntime-int8", "cuda", "tensorrt", "cpu-bf16", "cuda-bf16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", default=None, metavar="SPEC",
                        help="'default', a checkpoint or 'backbone:NAME' (repeatable; default: the default model "
                             "or backbone:xfeat where it is absent)")
    parser.add_argument("--vit", action="store_true",
                        help=f"also time the ViT backbones raw ({', '.join(VIT_BACKBONES)})")
    parser.add_argument("--runtime", action="append", default=None, choices=RUNTIMES,
                        help="runtimes to compare with eager PyTorch on the same device (repeatable; default: "
                             "onnxruntime); *-bf16: eager PyTorch under bf16 autocast; onnxruntime-int8: int8 "
                             "MatMul/Gemm layers (precision int8)")
    parser.add_argument("--int8", action="store_true", help="same as --runtime onnxruntime-int8")
    parser.add_argument("--size", type=integer_at_least(1), nargs=2, default=(256, 320), metavar=("H", "W"))
    parser.add_argument("--ap-data", default=None, metavar="PATH",
                        help="also score patch retrieval AP of each runtime and of eager PyTorch on these posed "
                             "RGB-D frames (reduced precision is kept only if AP drops <= 0.01)")
    parser.add_argument("--ap-frames", default=None, metavar="START:STOP[:STEP]", help="frames of --ap-data")
    parser.add_argument("--ap-queries", type=integer_at_least(1), default=300, help="query patches of the AP check")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)


def _load(spec: str, size: tuple[int, int]):  # noqa: ANN202 - returns a LocusModel
    from locus_core.models import LocusModel, ModelError, load_model
    from locus_core.models.backbones import RANDOM

    if spec.startswith("backbone:"):
        name = spec.split(":", 1)[1]
        try:
            model = LocusModel.from_backbone(name)
        except ModelError:
            if name not in VIT_BACKBONES:
                raise
            model = LocusModel.from_backbone(name, weights=RANDOM)
            model.metadata["weights"] = "random (pretrained weights absent; speed does not depend on them)"
    else:
        model = load_model(spec)
    return (model if tuple(model.input_size) == size else model.with_input_size(size)).eval()


def default_specs() -> list[str]:
    from locus_core.models import DEFAULT_CHECKPOINT

    return ["default" if DEFAULT_CHECKPOINT.is_file() else "backbone:xfeat"]


def run(args: argparse.Namespace) -> list[BenchResult]:
    import torch

    from locus_core.bench.memory import peak_tensor_bytes

    if args.warmup < 0 or args.repeats < 1:
        raise BenchError(f"need --warmup >= 0 and --repeats >= 1, got {args.warmup} and {args.repeats}")
    size = tuple(args.size)
    specs = list(args.model or default_specs())
    if args.vit:
        specs += [f"backbone:{name}" for name in VIT_BACKBONES]
    runtimes = list(args.runtime or ["onnxruntime"])
    if args.int8 and "onnxruntime-int8" not in runtimes:
        runtimes.append("onnxruntime-int8")
    images = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    results = []
    for spec in specs:
        model = _load(spec, size)
        label = spec if spec.startswith("backbone:") else f"{spec} ({model.hash})"
        notes = {"size": f"{size[0]}x{size[1]}", "threads": torch.get_num_threads()}
        if "weights" in model.metadata:
            notes["weights"] = model.metadata["weights"]
        with torch.inference_mode():
            notes["baseline_peak_mb"] = peak_tensor_bytes(lambda: model(images)) / 2**20
        if args.ap_data:
            notes["baseline_ap"] = _retrieval_ap(model, args)
        for runtime in runtimes:
            engine = runtime_engine(model, runtime, f"{label} {runtime}")
            if isinstance(engine, BenchResult):
                results.append(engine)
                continue
            results.append(_compare(f"{label} {runtime}", engine, model, images, args, notes))
    return results


def runtime_engine(model: Any, runtime: str, name: str) -> InferenceEngine | BenchResult:
    """The engine for a ``RUNTIMES`` name ("DEVICE" or "DEVICE-PRECISION", e.g. onnxruntime-int8), or,
    where that runtime is unavailable (another one would be measured in its place), a result ``name``
    that says it was skipped and why."""
    from locus_core.runtime import create_engine

    device, _, precision = runtime.partition("-")
    engine = create_engine(model, device, precision=precision or "fp32")
    if engine.name != runtime:
        return BenchResult(name, float("nan"), float("nan"), extra={"skipped": "; ".join(engine.fallbacks)})
    return engine


def _compare(name: str, engine, model, images, args: argparse.Namespace, notes: dict) -> BenchResult:  # noqa: ANN001
    """``engine`` against eager PyTorch on the same device (CUDA eager for the GPU runtimes)."""
    import torch

    from locus_core.bench.memory import peak_cuda_bytes
    from locus_core.bench.timing import measure_pair
    from locus_core.runtime import parity
    from locus_core.runtime.engines import TorchEngine

    device = engine.device
    eager = model if device.type == "cpu" else TorchEngine(model, device.type)
    batch = images.to(device)

    def synced(fn):  # noqa: ANN001, ANN202 - GPU calls return before the work is done
        if device.type != "cuda":
            return fn

        def call() -> object:
            out = fn()
            torch.cuda.synchronize()
            return out

        return call

    with torch.inference_mode():
        reference = eager(batch).cpu()
        ours, base = measure_pair(synced(lambda: engine(batch)), synced(lambda: eager(batch)),
                                  warmup=args.warmup, repeats=args.repeats)
        extra = {**notes, "parity": parity(reference, engine(batch).cpu())}
        if "baseline_ap" in notes:
            extra["ap"] = _retrieval_ap(engine, args)
            extra["ap_drop"] = notes["baseline_ap"] - extra["ap"]
        if device.type == "cuda":
            extra["baseline_peak_mb"] = peak_cuda_bytes(lambda: eager(batch), device) / 2**20
    return BenchResult.from_timings(name, ours, baseline=f"pytorch eager {device.type}", baseline_timing=base,
                                    extra=extra)


def _retrieval_ap(model, args: argparse.Namespace) -> float:  # noqa: ANN001 - a model or an engine
    """Patch retrieval AP (locus eval's task 1: rho 0.2 m, kappa 10 m) of ``model`` on --ap-data."""
    from locus_core.data import open_dataset
    from locus_core.evaluation import retrieval
    from locus_core.evaluation.run import extract

    features = extract(model, open_dataset(args.ap_data, frames=args.ap_frames), "ap")
    queries = retrieval.sample_queries(features.world_points, args.ap_queries, seed=0)
    return float(retrieval.patch_retrieval(features.flat(), features.world_points, queries).ap)
