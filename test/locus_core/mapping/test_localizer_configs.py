"""The shipped LocalizerConfig overrides (config/localizer_*.yaml) load and do what they say."""

from __future__ import annotations

from pathlib import Path

from locus_core.config import load_config
from locus_core.mapping import LocalizerConfig

CONFIG = Path(__file__).resolve().parents[3] / "config"


def test_the_tracking_config_tracks_between_full_localizations_2_s_apart() -> None:
    config = load_config(LocalizerConfig, CONFIG / "localizer_tracking.yaml", [])
    assert config.track_period_s == 2.0 and config == LocalizerConfig(track_period_s=2.0)
