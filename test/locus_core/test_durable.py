from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from locus_core.durable import fsync_path, process_alive


def test_a_process_is_alive_until_it_exits_and_this_one_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_alive(child.pid) and process_alive(os.getppid())
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid)
    assert not process_alive(os.getpid())  # a temporary of its own is from an earlier, failed save


def test_files_and_folders_can_be_synced(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    fsync_path(tmp_path / "f")
    fsync_path(tmp_path)
