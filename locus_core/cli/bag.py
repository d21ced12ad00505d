"""``locus bag convert|eval|play``: posed data sets as rosbag2, offline replay of a bag through the
localizer node's code path with metrics, and publishing a bag into a live ROS graph."""

from __future__ import annotations

import argparse

from locus_core.bags.play import TF_MODES
from locus_core.cli import add_runtime_args, plain


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bag", help="write, evaluate and play ROS bags", description=plain(__doc__))
    cmds = p.add_subparsers(dest="bag_command", metavar="ACTION", required=True)

    c = cmds.add_parser("convert", help="write a posed RGB-D data set as a rosbag2 (camera topics, TF, ground truth)")
    c.add_argument("data", help="data set folder (or bag)")
    c.add_argument("--frames", help="START:STOP[:STEP] by source frame index, e.g. 600:1000")
    c.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    c.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    c.add_argument("--compressed", action="store_true", help="also write JPEG /camera/color/image_raw/compressed")
    c.add_argument("--odom", action="store_true", help="ground truth as map -> odom -> base_link -> camera TF chain")
    c.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="resize the images (K scaled)")
    c.set_defaults(func=run_convert)

    e = cmds.add_parser("eval", help="replay a bag offline through the node's code path; metrics.json and plots")
    e.add_argument("bag", help="rosbag2 directory (sqlite3 or MCAP), .mcap/.db3 file, or ROS 1 .bag")
    e.add_argument("--map", required=True, help="map directory (locus map build)")
    e.add_argument("--model", help="model spec (default: the one the map was built with)")
    e.add_argument("--rgb", default="", help="colour topic (Image or CompressedImage; default /camera/color/image_raw)")
    e.add_argument("--depth", default="", help="depth topic registered to colour (default /camera/aligned_depth_to_color/image_raw)")
    e.add_argument("--info", default="", help="CameraInfo topic (default: camera_info next to the colour topic)")
    e.add_argument("--gt-frame", default="", help="fixed frame of the ground truth in TF (default map)")
    e.add_argument("--gt-topic", default="",
                   help="take ground truth from this pose topic instead of TF (PoseStamped, PoseWithCovarianceStamped, Odometry)")
    e.add_argument("--gt-body-frame", default="",
                   help="the frame whose pose --gt-topic gives, e.g. base_link (default: an Odometry's child_frame_id, "
                        "else the camera's optical frame); TF gives the camera's place on it")
    e.add_argument("--rectified", action="store_true",
                   help="the images are rectified (image_rect): intrinsics from camera_info P, as the node's rectified: true")
    e.add_argument("--localizer-config", default="", help="YAML of LocalizerConfig overrides (as the node's localizer_config)")
    e.add_argument("--config", help="YAML ReplayConfig (topics, sync, time jumps)")
    e.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a ReplayConfig value (repeatable)")
    e.add_argument("--max-rate", type=float, default=None, metavar="HZ",
                   help="localize at most HZ frames per second of bag time (default: --config's max_rate_hz, else "
                        "every frame; 0: every frame)")
    e.add_argument("--track-period", type=float, default=None, metavar="S",
                   help="track frames between full localizations at least S seconds of bag time apart (the "
                        "localizer's track_period_s; default: --localizer-config's, else 0: every frame in full); "
                        "with --workers N, each window of S seconds is tracked by one worker, from a full localization")
    add_runtime_args(e)
    e.add_argument("--workers", type=int, default=1, metavar="N",
                   help="localize in N processes sharing the CPU threads: faster on long bags, the same results "
                        "(tracking: full localizations where each worker's windows start); latencies are then each "
                        "worker's, not the node's (default 1)")
    e.add_argument("--out", required=True,
                   help="output folder: metrics.json, frames.csv (a row per frame, with its time segment), "
                        "trajectory.tum and groundtruth.tum (TUM; where the bag's stamps start over, segment N's "
                        "in trajectory.segN.tum and groundtruth.segN.tum), config.yaml, trajectory.png, errors.png")
    e.set_defaults(func=run_eval)

    pl = cmds.add_parser("play", help="publish a bag into a live ROS 2 graph, with /clock")
    pl.add_argument("bag", help="bag or any posed data set")
    pl.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    pl.add_argument("--loop", action="store_true", help="start over at the end")
    pl.add_argument("--tf", choices=TF_MODES, default=TF_MODES[0],
                    help="ground truth in TF: odom (default; odom -> base_link + static base_link -> camera, what a "
                         "localizer needs to publish map -> odom), map (map -> camera, for mapping mode) or none")
    pl.add_argument("--frames", help="START:STOP[:STEP] by source frame index")
    pl.add_argument("--wait", type=float, default=10.0, metavar="S", help="seconds to wait for a subscriber (default 10)")
    pl.set_defaults(func=run_play)


def run_convert(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from locus_core.bags.convert import write_bag
    from locus_core.data import open_dataset

    dataset = open_dataset(args.data, args.frames)
    log = logging.getLogger("locus.bag")

    def progress(done: int) -> None:
        if done % 100 == 0:
            log.info("%d/%d frames written", done, len(dataset))

    summary = write_bag(dataset, Path(args.out), storage=args.storage, compressed=args.compressed,
                        odom_chain=args.odom, size=tuple(args.size) if args.size else None, progress=progress)
    print(f"wrote {summary.path}: {summary.frames} frames over {summary.duration_s:.1f} s, "
          + ", ".join(f"{t} ({n})" for t, n in summary.topics.items()))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from locus_core.bags.evaluate import evaluate_bag
    from locus_core.bags.replay import ReplayConfig
    from locus_core.config import load_config, merge, parse_overrides
    from locus_core.mapping.evaluate import summary_line

    flags = {"rgb_topic": args.rgb, "depth_topic": args.depth, "info_topic": args.info,
             "gt_frame": args.gt_frame, "gt_topic": args.gt_topic, "gt_body_frame": args.gt_body_frame,
             "rectified": args.rectified}
    # The flags' values as given, not re-read as YAML (a frame named `no` became false, `01` became 1);
    # --max-rate 0 given is kept: it asks for every frame over a --config that throttles.
    given = {key: value for key, value in flags.items() if value}
    if args.max_rate is not None:
        given["max_rate_hz"] = args.max_rate
    overrides = merge(parse_overrides(args.overrides), given)
    config = load_config(ReplayConfig, Path(args.config) if args.config else None, overrides)
    m = evaluate_bag(Path(args.bag), Path(args.map), Path(args.out), model_spec=args.model, config=config,
                     localizer_config=args.localizer_config, device=args.device, precision=args.precision,
                     workers=args.workers,
                     localizer_overrides=[] if args.track_period is None else [f"track_period_s={args.track_period}"])

    r = m["replay"]
    print(f"wrote {args.out}/metrics.json: {r['frames']} frames, {summary_line(m)}, "
          f"replay {r['realtime_factor']:.3f}x real time, skipped {m['skipped']['total']}")
    return 0


def run_play(args: argparse.Namespace) -> int:
    from locus_core.bags.play import play

    return play(args.bag, rate=args.rate, loop=args.loop, tf=args.tf, frames=args.frames, wait=args.wait)
