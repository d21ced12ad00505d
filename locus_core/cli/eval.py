"""``locus eval``: the paper's tasks on posed RGB-D data, next to the raw-backbone and XFeat+LighterGlue
baselines; writes metrics.json, report.md, config.yaml and PNG figures."""

from __future__ import annotations

import argparse

from locus_core.cli import plain


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model (and its baselines) on posed RGB-D data",
                       description=plain(__doc__))
    p.add_argument("--model", required=True, help="checkpoint path, 'default' or 'backbone:NAME'")
    p.add_argument("--data", required=True, help="data set folder (or bag)")
    p.add_argument("--frames", help="evaluated frames START:STOP[:STEP] (source indices), e.g. 600:1000")
    p.add_argument("--train-frames", help="place-recognition database / labelled frames, e.g. 0:600")
    p.add_argument("--tasks", help="comma-separated subset of retrieval,place,pose,segmentation,consistency "
                                   "(default: every task the data supports)")
    p.add_argument("--config", help="YAML EvalConfig")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an EvalConfig value (repeatable)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from locus_core.config import load_config
    from locus_core.evaluation.config import EvalConfig
    from locus_core.evaluation.run import evaluate

    overrides = list(args.overrides)
    if args.frames:
        overrides.append(f"frames={args.frames!r}")
    if args.train_frames:
        overrides.append(f"train_frames={args.train_frames!r}")
    if args.tasks:
        overrides.append(f"tasks=[{args.tasks}]")
    config = load_config(EvalConfig, Path(args.config) if args.config else None, overrides)
    result = evaluate(args.model, args.data, config, args.out)
    print(f"wrote {args.out}/metrics.json and report.md ({result.metrics['wall_time_s']} s)")
    return 0
