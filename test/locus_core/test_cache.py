from pathlib import Path

import pytest

from locus_core.cache import cache_dir


def test_cache_dir_is_locus_cache_when_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path


@pytest.mark.parametrize("value", [None, ""])
def test_cache_dir_defaults_to_the_home_cache_when_unset_or_empty(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    # an empty LOCUS_CACHE once put exported ONNX graphs in the working directory
    if value is None:
        monkeypatch.delenv("LOCUS_CACHE", raising=False)
    else:
        monkeypatch.setenv("LOCUS_CACHE", value)
    assert cache_dir() == Path.home() / ".cache" / "locus"
