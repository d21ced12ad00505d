"""``locus train``: learn a LoCUS head on posed RGB-D data (also ``ros2 run locus_core train``)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a LoCUS head on posed RGB-D data")
    p.add_argument("--config", type=str, help="YAML config (config/train_*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the run folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from locus_core.training.run import train_from_cli

    return train_from_cli(args)
