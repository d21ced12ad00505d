"""The ``locus`` command: one thin module per subcommand, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """--device and --precision, as ``locus_core.runtime.create_engine`` takes them."""
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | onnxruntime | tensorrt (falls back, logged)")
    parser.add_argument("--precision", default="fp32",
                        help="fp32 | bf16 | int8 (int8: ONNX Runtime with int8 MatMul/Gemm layers; falls back, logged)")


def integer_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, refused as a usage error naming the flag (a bad
    count or thread number would otherwise end in a traceback deep inside numpy or torch)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def integers_at_least(minimum: int) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated integers, each >= ``minimum`` (e.g. "8,12,16")."""
    one = integer_at_least(minimum)

    def parse(text: str) -> list[int]:
        try:
            return [one(v) for v in text.split(",")]
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"comma-separated: {exc}") from None

    return parse


def plain(docstring: str | None) -> str:
    """A module docstring as --help text, without reStructuredText's ``literal`` marks (noise there)."""
    return (docstring or "").replace("``", "")
