"""``locus data``: inspect a posed RGB-D data set (``info``) or write a synthetic scene (``synth``)."""

from __future__ import annotations

import argparse
import json

from locus_core.cli import integer_at_least


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect posed RGB-D data or write a synthetic scene")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="format, size, depth and pose consistency of a data set")
    info.add_argument("path", help="data folder or ROS bag")
    info.add_argument("--frames", help="START:STOP[:STEP] by frame index, e.g. 600:1000:10")
    info.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="reader option, e.g. intrinsics=585,585,320,240 or rgb_topic=/camera/color (repeatable)")
    info.add_argument("--sample", type=integer_at_least(0), default=20, help="frames to read for the statistics (0: none)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    synth = actions.add_parser("synth", help="render a synthetic indoor scene in the 7-Scenes layout")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--seed", type=int, default=0, help="scene seed: layout, textures, trajectory (default 0)")
    synth.add_argument("--rooms", type=int, default=3, help="rooms joined by doorways, with look-alike objects repeated across them (default 3)")
    synth.add_argument("--frames", type=int, default=120, help="frames along the camera trajectory (default 120)")
    synth.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"),
                       help="image height and width (default 240 320)")
    p.set_defaults(func=run)


def _options(pairs: list[str]) -> dict[str, str]:
    from locus_core.data.errors import FormatError

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()  # "intrinsics = 1,2,3,4" was refused as an unknown option 'intrinsics '
        if not sep or not key:
            raise FormatError(f"--option {pair!r}: expected KEY=VALUE")
        options[key] = value.strip()
    return options


def run(args: argparse.Namespace) -> int:
    if args.action == "synth":
        from locus_core.data.synthetic import generate_scene

        out = generate_scene(args.out, seed=args.seed, rooms=args.rooms, frames=args.frames, size=tuple(args.size))
        print(f"wrote {args.frames} frames to {out}")
        return 0

    from locus_core.data import open_dataset
    from locus_core.data.summary import summarize

    dataset = open_dataset(args.path, args.frames, **_options(args.option))
    summary = summarize(dataset, sample=args.sample)
    if args.json:
        print(json.dumps(summary))
        return 0

    def metres(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f} m"

    H, W = summary["image_size"]
    print(f"{summary['path']}: {summary['format']}, {summary['frames']} frames "
          f"(index {summary['first_index']}..{summary['last_index']}), {W}x{H}")
    print(f"depth: {metres(summary['depth_min_m'], 2)} .. {metres(summary['depth_max_m'], 2)} "
          f"(1st-99th percentile, median {metres(summary['depth_median_m'], 2)}), "
          f"{100 * summary['depth_valid_fraction']:.0f}% valid")
    print(f"trajectory: {metres(summary['trajectory_length_m'], 2)}")
    print(f"reprojection between neighbouring frames: median {metres(summary['reprojection_median_m'], 4)} "
          f"over {summary['reprojection_pairs']} pairs")
    return 0
