"""Shared fixtures: where the real data lives, and an isolated ROS domain per test run."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# A DDS domain of our own, so that parallel test runs on one machine never see each other's nodes.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip, saying why, when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (see the README: Data and weights)")
    return SHARED_DATA



@pytest.fixture
def damaged_bag_reads(monkeypatch: pytest.MonkeyPatch):
    """``damaged_bag_reads(k)``: rosbags' reader fails on the k-th record it reads, as on a chunk whose
    checksum fails partway through a bag."""
    from rosbags.highlevel import AnyReader

    real = AnyReader.messages

    def damage(k: int) -> None:
        def messages(self, *args, **kwargs):
            for i, item in enumerate(real(self, *args, **kwargs)):
                if i == k:
                    raise RuntimeError("Chunk checksum mismatch.")
                yield item

        monkeypatch.setattr(AnyReader, "messages", messages)

    return damage
