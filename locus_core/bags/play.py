"""``locus bag play``: publish a bag (or any posed data set) into a live ROS 2 graph with /clock,
through the ROS layer's player (``locus_ros.player``); rclpy is imported there, only when playing."""

from __future__ import annotations

from pathlib import Path

from locus_core.bags.errors import BagError


def play(path: str | Path, *, rate: float = 1.0, loop: bool = False) -> int:
    """Run the player until the bag ends (or Ctrl-C with ``loop``); returns its exit status.

    Raises:
        BagError: a bad rate, a missing bag, or no ROS 2 runtime / player in this environment.
    """
    if not rate > 0:
        raise BagError(f"--rate must be > 0, got {rate}")
    if not Path(path).exists():
        raise BagError(f"{path}: no such bag or data set")
    try:
        from locus_ros import player
    except ImportError as exc:  # rclpy or the player itself missing: say which
        raise BagError(f"locus bag play needs a ROS 2 runtime and locus_ros.player ({exc})") from None
    # player.main takes a whole command line (program name first, as sys.argv and rclpy.init want).
    argv = ["locus_player", str(path), "--rate", str(rate)] + (["--loop"] if loop else [])
    return int(player.main(argv) or 0)
