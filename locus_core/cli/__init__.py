"""The ``locus`` command: one thin module per subcommand, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """--device and --precision, as ``locus_core.runtime.create_engine`` takes them."""
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | onnxruntime | tensorrt (falls back, logged)")
    parser.add_argument("--precision", default="fp32",
                        help="fp32 | bf16 | int8 (int8: ONNX Runtime with int8 MatMul/Gemm layers; falls back, logged)")
