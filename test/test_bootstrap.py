"""A bad machine is reported clearly by the bootstrap, before anything is half-installed.

Each case runs a copy of scripts/bootstrap.sh in an empty folder, so the real .venv is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def sandbox(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", tmp_path / "scripts" / "bootstrap.sh")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def _fake(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _bootstrap(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("ROS_DISTRO", "PYTHON")}
    return subprocess.run(
        ["bash", str(root / "scripts" / "bootstrap.sh")],
        env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )


def test_wrong_python_version_is_named(sandbox: Path) -> None:
    _fake(sandbox / "bin", "python3.9", 'echo 3.9')
    result = _bootstrap(sandbox, {"PYTHON": str(sandbox / "bin" / "python3.9")})
    assert result.returncode != 0
    assert "is Python 3.9; the ROS 2 wheels need 3.11" in result.stderr
    assert not (sandbox / ".venv").exists()


def test_missing_compiler_is_named(sandbox: Path) -> None:
    # A PATH with everything the script uses except gcc.
    bin_dir = sandbox / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "cat", "sha256sum", "cut", "df", "awk", "g++", "cmake", "make", "python3.11"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    result = _bootstrap(sandbox, {"PATH": str(bin_dir)})
    assert result.returncode != 0
    assert "'gcc' not found" in result.stderr


def test_too_little_disk_is_named(sandbox: Path) -> None:
    bin_dir = sandbox / "bin"
    _fake(bin_dir, "df", 'echo "Filesystem 1024-blocks Used Available Capacity Mounted"; echo "/dev/x 100 90 1048576 90% /"')
    result = _bootstrap(sandbox, {"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode != 0
    assert "only 1 GB free" in result.stderr
    assert not (sandbox / ".venv").exists()
