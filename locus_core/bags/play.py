"""``locus bag play``: publish a bag (or any posed data set) into a live ROS 2 graph with /clock,
through the ROS layer's player (``locus_ros.player``); rclpy is imported there, only when playing."""

from __future__ import annotations

from pathlib import Path

from locus_core.bags.errors import BagError

# The player's --tf modes (here, not in locus_ros.player, which needs rclpy to import), default first.
TF_MODES = ("odom", "map", "none")


def play(path: str | Path, *, rate: float = 1.0, loop: bool = False, tf: str = "odom", frames: str | None = None,
         wait: float = 10.0) -> int:
    """Run the player until the bag ends (or Ctrl-C with ``loop``); returns its exit status.

    ``tf`` is the player's ``--tf``. The default, ``odom``, is what a localizer needs: the ground
    truth as odometry (odom → base_link, static base_link → camera), so that a node in localization
    mode finds odom → camera and publishes map → odom; ``map`` (map → camera) feeds mapping mode.
    ``frames`` selects by source frame index (START:STOP[:STEP]); ``wait`` is how long (s) to wait
    for a subscriber before playing.

    Raises:
        BagError: a bad rate, tf or wait, a missing bag, or no ROS 2 runtime / player in this environment.
    """
    if not rate > 0:
        raise BagError(f"--rate must be > 0, got {rate}")
    if not wait >= 0:
        raise BagError(f"--wait must be >= 0, got {wait}")
    if tf not in TF_MODES:
        raise BagError(f"--tf must be one of {', '.join(TF_MODES)}, got {tf!r}")
    if not Path(path).exists():
        raise BagError(f"{path}: no such bag or data set")
    try:
        from locus_ros import player
    except ImportError as exc:  # rclpy or the player itself missing: say which
        raise BagError(f"locus bag play needs a ROS 2 runtime and locus_ros.player ({exc})") from None
    # player.main takes a whole command line (program name first, as sys.argv and rclpy.init want).
    argv = ["locus_player", str(path), "--rate", str(rate), "--tf", tf, "--wait", str(wait)]
    argv += (["--frames", frames] if frames else []) + (["--loop"] if loop else [])
    return int(player.main(argv) or 0)
