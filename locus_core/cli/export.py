"""``locus export``: the model (backbone + head) as one ONNX, TorchScript or TensorRT graph."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX, TorchScript or TensorRT (parity-checked)")
    p.add_argument("--model", default="default", help="checkpoint path, 'default' or 'backbone:NAME' (default: the shipped model)")
    p.add_argument("--format", dest="fmt", choices=("onnx", "torchscript", "tensorrt"), default="onnx", help="default onnx")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="input size (default: the model's)")
    p.add_argument("--dynamic", action="store_true", help="ONNX: symbolic batch, height and width")
    p.add_argument("--opset", type=int, choices=(18, 23), default=18,
                   help="ONNX opset: 18 (portable, TensorRT 10 parses it) or 23 (fused Attention: faster in "
                        "ONNX Runtime >= 1.23 for transformer heads and ViTs)")
    p.add_argument("--fp32", action="store_true", help="TensorRT: full precision instead of FP16")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from locus_core.models import DEFAULT_CHECKPOINT, load_model
    from locus_core.runtime import ExportError, export_model

    checkpoint = DEFAULT_CHECKPOINT if args.model == "default" else Path(args.model).expanduser()
    if Path(args.out).expanduser().resolve() == checkpoint.resolve():
        # The export replaces the file at --out: the trained model would be lost for its graph.
        raise ExportError(f"{args.out}: is the checkpoint of --model; give the export another file name")
    model = load_model(args.model)
    if args.size:  # here, not in export_model: the input size is in the hash printed below
        model = model.with_input_size(tuple(args.size))
    path, score = export_model(model, args.out, args.fmt, dynamic=args.dynamic, fp16=not args.fp32,
                               opset=args.opset)
    print(f"{path}: {args.fmt}, model {model.hash}, parity with PyTorch (min per-patch cosine) {score:.6f}")
    return 0
