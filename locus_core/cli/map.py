"""``locus map build|info|merge|localize``: landmark maps of posed RGB-D data and localization
against them (metrics.json, config.yaml, trajectory.png)."""

from __future__ import annotations

import argparse

from locus_core.cli import add_runtime_args, plain


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="build, inspect, merge landmark maps and localize against them", description=plain(__doc__))
    cmds = p.add_subparsers(dest="map_command", metavar="ACTION", required=True)

    b = cmds.add_parser("build", help="build a landmark map from posed RGB-D frames")
    b.add_argument("--model", required=True, help="checkpoint path, 'default' or 'backbone:NAME'")
    b.add_argument("--data", required=True, help="data set folder (or bag) with depth and poses")
    b.add_argument("--frames", help="mapped frames START:STOP[:STEP] (source indices), e.g. 0:600")
    b.add_argument("--out", required=True, help="map directory to write (replaced atomically)")
    _config_args(b, "MapConfig")
    b.set_defaults(func=run_build)

    i = cmds.add_parser("info", help="print a map's manifest summary")
    i.add_argument("map", help="map directory")
    i.add_argument("--json", action="store_true", help="JSON instead of text")
    i.set_defaults(func=run_info)

    m = cmds.add_parser("merge", help="merge two maps of the same model and map frame (multi-session)")
    m.add_argument("a", help="first map directory")
    m.add_argument("b", help="second map directory")
    m.add_argument("--out", required=True, help="merged map directory")
    m.set_defaults(func=run_merge)

    loc = cmds.add_parser("localize", help="localize frames against a map; writes metrics.json and a trajectory plot")
    loc.add_argument("--map", required=True, help="map directory")
    loc.add_argument("--data", required=True, help="query data set folder (or bag)")
    loc.add_argument("--frames", help="query frames START:STOP[:STEP], e.g. 600:1000")
    loc.add_argument("--model", help="model spec (default: the one the map was built with)")
    loc.add_argument("--out", required=True, help="output folder")
    add_runtime_args(loc)
    _config_args(loc, "LocalizerConfig")
    loc.set_defaults(func=run_localize)


def _config_args(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--config", help=f"YAML {name}")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a {name} value (repeatable)")


def run_build(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from locus_core.config import load_config
    from locus_core.data import open_dataset
    from locus_core.mapping import MapConfig, build_map
    from locus_core.mapping.store import check_replaceable
    from locus_core.models.model import load_model

    config = load_config(MapConfig, Path(args.config) if args.config else None, args.overrides)
    check_replaceable(Path(args.out))  # before the build, not after it: saving would refuse a folder in use
    model = load_model(args.model)
    dataset = open_dataset(args.data, args.frames)
    start = time.perf_counter()
    landmark_map = build_map(model, dataset, config)
    landmark_map.model_info["spec"] = args.model
    landmark_map.save(Path(args.out))
    s = landmark_map.summary()
    print(
        f"wrote {args.out}: {s['keyframes']} keyframes, {s['landmarks']} landmarks, "
        f"{s['observations']} observations, {s['index']['kind']} index, "
        f"{s['bytes_per_landmark']:.0f} bytes/landmark ({time.perf_counter() - start:.0f} s)"
    )
    return 0


def run_info(args: argparse.Namespace) -> int:
    import json

    from locus_core.mapping import LandmarkMap

    s = LandmarkMap.load(args.map).summary()
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"map {args.map}")
    print(f"  model       {s['model_hash']} ({s['model'].get('spec', s['model'].get('backbone', '?'))})")
    print(f"  keyframes   {s['keyframes']}")
    print(f"  landmarks   {s['landmarks']} ({s['observations']} observations)")
    print(f"  index       {s['index']['kind']} ({s['index']['ntotal']} vectors)")
    print(f"  memory      {s['memory_bytes']['total'] / 1e6:.1f} MB, {s['bytes_per_landmark']:.0f} bytes/landmark")
    for src in s["sources"]:
        print(f"  source      {src.get('path')} frames {src.get('frames')} ({src.get('count')} frames)")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from locus_core.mapping import LandmarkMap
    from locus_core.mapping.store import check_replaceable

    check_replaceable(Path(args.out))  # before reading and re-indexing both maps, as for a build
    merged = LandmarkMap.merge(LandmarkMap.load(args.a), LandmarkMap.load(args.b))
    merged.save(Path(args.out))
    print(f"wrote {args.out}: {len(merged.keyframes)} keyframes, {merged.num_landmarks} landmarks")
    return 0


def run_localize(args: argparse.Namespace) -> int:
    from pathlib import Path

    from locus_core.mapping.evaluate import summary_line
    from locus_core.mapping.run import localize_dataset

    metrics = localize_dataset(Path(args.map), args.data, args.frames, Path(args.out), model_spec=args.model,
                               config_path=Path(args.config) if args.config else None, overrides=args.overrides,
                               device=args.device, precision=args.precision)
    print(f"wrote {args.out}/metrics.json: {summary_line(metrics)}")
    return 0
