"""``locus``: entry point that dispatches to one module per subcommand.

Each subcommand module exposes ``add_parser(subparsers)`` (which registers its arguments and sets
``func``) and keeps heavy imports (torch, faiss, ...) inside its ``run`` function, so that
``locus --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from locus_core import __version__
from locus_core.errors import LocusError

# Every module of locus_core.cli but this one is a subcommand, found at start-up, so adding a
# command is adding a file. The known ones are listed in the order a user meets them.
_ORDER = ("data", "train", "eval", "map", "bag", "export", "bench")


def _discover() -> tuple[str, ...]:
    import locus_core.cli as package

    names = {m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "main" and not m.name.startswith("_")}
    return tuple(sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n)))


COMMANDS = _discover()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="locus",
        description="LoCUS features: data, training, evaluation, maps, bags, export and benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"locus {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"locus_core.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except LocusError as exc:
        print(f"locus {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"locus {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
