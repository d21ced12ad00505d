"""Small helpers the format readers share."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.data.errors import DataFileError, FormatError
from locus_core.data.io import parse_intrinsics_option, read_intrinsics


def check_options(options: Mapping[str, Any], allowed: Iterable[str], source: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise FormatError(f"{source}: unknown option(s) {', '.join(unknown)}; "
                          f"this format accepts: {', '.join(sorted(allowed)) or 'none'}")


def seconds_option(options: Mapping[str, Any], key: str, default: float, source: str) -> float:
    """``options[key]`` (or ``default``) as finite seconds >= 0, else FormatError naming ``source``: a
    negative stamp tolerance pairs nothing, NaN would pair across any gap."""
    value = options.get(key, default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0 <= seconds < float("inf"):
        raise FormatError(f"{source}: {key} {value!r}: expected seconds >= 0")
    return seconds


def entries(folder: Path) -> list[Path]:
    """What ``folder`` holds; DataFileError naming it when it is no folder (a forced format's reader
    opens what its detector did not check)."""
    if not folder.is_dir():
        raise DataFileError(f"{folder}: folder not found")
    return list(folder.iterdir())


def numbered(files: Iterable[Path], pattern: str) -> dict[int, Path]:
    """{index: path} for files whose name matches ``pattern`` (one integer group)."""
    regex = re.compile(pattern)
    out: dict[int, Path] = {}
    for f in files:
        m = regex.fullmatch(f.name)
        if m:
            out[int(m.group(1))] = f
    return out


def find_intrinsics(folder: Path, names: Iterable[str], option: Any = None,
                    default: np.ndarray | None = None) -> np.ndarray:
    """K from the ``intrinsics=`` option, else the first of ``names`` present, else ``default``."""
    if option is not None:
        return parse_intrinsics_option(option)
    names = list(names)
    for name in names:
        if (folder / name).is_file():
            return read_intrinsics(folder / name)
    if default is not None:
        return default
    raise FormatError(f"{folder}: no intrinsics file (looked for {', '.join(names)}); "
                      "pass intrinsics='fx,fy,cx,cy' or a file")
