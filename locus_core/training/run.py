"""``locus train`` behind the CLI: resolve the config, check it, train, print where the model is."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def train_from_cli(args: argparse.Namespace) -> int:
    from locus_core.config import load_config
    from locus_core.training.config import TrainConfig
    from locus_core.training.trainer import train

    config = load_config(TrainConfig, Path(args.config) if args.config else None, args.overrides)
    result = train(config, resume=args.resume)
    from locus_core.training import distributed

    if distributed.current().is_main:
        ap = "" if result.val_ap is None else f", validation AP {result.val_ap:.4f} (raw backbone {result.val_ap_raw:.4f})"
        print(f"trained {result.steps} steps ({result.skipped} skipped) in {result.seconds / 60:.1f} min{ap}; "
              f"model: {result.model_path}")
    return 0
