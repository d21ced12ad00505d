"""Crash-safe saving, shared by maps and training checkpoints: write into a temporary folder named
after the writing process, sync it to disk, then rename it into place; a later save removes the
temporaries of processes that died mid-save."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to disk (a rename is durable only after both)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be writing its temporary folder. This process counts as
    dead: a temporary of its own is left from an earlier save that failed, not one in progress."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
