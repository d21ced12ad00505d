"""Figures of ``locus eval``: the match visualisation stays readable with thousands of matches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from locus_core.evaluation import figures


@pytest.mark.parametrize(("matches", "drawn"), [(50, 50), (3000, figures.MAX_DRAWN)])
def test_match_figure_draws_a_sample_of_many_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, matches: int, drawn: int
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    image = np.zeros((32, 40, 3), np.uint8)
    uv = rng.uniform(0, 32, (matches, 2))
    example = {"a": image, "b": image, "covisibility": 0.2,
               "model": {"uv_a": uv, "uv_b": uv, "inliers": rng.random(matches) < 0.3}}
    titles: list[str] = []
    lines: list[int] = []
    save = figures._save

    def keep(fig, path):  # what was drawn, before the figure is closed
        titles.extend(ax.get_title() for ax in fig.axes)
        lines.extend(len(ax.lines) for ax in fig.axes)
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    path = figures._matches(plt, example, tmp_path / "matches.png", figures.LABELS)
    assert path.stat().st_size > 1000 and lines == [drawn]
    assert titles[0].endswith(f"of {matches} matches" + (f", {drawn} drawn" if drawn < matches else ""))
