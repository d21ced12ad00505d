"""Map persistence: a versioned directory, written atomically, verified on load.

Layout of ``MAP/``::

    manifest.json   format name + version, model hash and info, counts, sha256 + size of every file
    index.faiss     the faiss index (descriptors keyed by landmark id)
    landmarks.npz   LandmarkTable arrays (no pickle)
    keyframes.npz   Keyframes arrays (no pickle)
    config.yaml     the resolved MapConfig

Saving writes ``MAP.tmp-<pid>/``, fsyncs every file and the directory, then swaps it with ``MAP`` in
one ``renameat2(RENAME_EXCHANGE)`` where the file system has it; elsewhere it renames ``MAP`` to
``MAP.old-<pid>`` first and ``load_map`` falls back to that copy if a crash left no ``MAP``. Either
way a complete map is readable at every moment.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.config import config_from_dict, config_to_dict
from locus_core.durable import fsync_path, process_alive, replace_folder
from locus_core.errors import ConfigError
from locus_core.mapping.config import MapConfig
from locus_core.mapping.errors import MapError
from locus_core.mapping.index import LandmarkIndex
from locus_core.mapping.keyframes import Keyframes
from locus_core.mapping.landmark_map import LandmarkMap
from locus_core.mapping.landmarks import LandmarkTable

FORMAT = "locus-landmark-map"
FORMAT_VERSION = 1
FILES = ("index.faiss", "landmarks.npz", "keyframes.npz", "config.yaml")
log = logging.getLogger(__name__)


def save_map(landmark_map: LandmarkMap, directory: Path) -> Path:
    """Write ``landmark_map`` to ``directory`` atomically; returns the directory.

    Raises:
        MapError: naming the directory, when it holds something other than a map (saving would
            delete it), or the file system refuses (no space, no permission, a file in the way).
    """
    directory = Path(directory)
    # a link to a map is saved through: the swap below exchanges directory entries, and would
    # replace the link itself (the map it points to left as it was), then fail to delete it
    target = directory.resolve() if directory.is_symlink() else directory
    tmp: Path | None = None
    try:
        check_replaceable(target)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target)
        _write(landmark_map, tmp)
        replace_folder(tmp, target, target.with_name(f"{target.name}.old-{os.getpid()}"))
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise MapError(f"{directory}: cannot save the map ({exc.strerror or exc})") from None
    return directory


def is_map(directory: Path) -> bool:
    """Whether ``directory`` holds a saved map (its manifest), not whether the map is intact."""
    return (Path(directory) / "manifest.json").is_file()


def check_replaceable(directory: Path) -> None:
    """Raise a ``MapError`` unless a map may be saved to ``directory``: saving replaces it whole, so
    it must be absent, empty, or a map (checked by ``save_map``, and by mapping before it starts)."""
    if directory.name in ("", ".."):  # "." or "/": the folder the user is in, or the root
        raise MapError(f"{directory}: a map is saved into a folder of its own, which saving replaces; "
                       "name one (e.g. maps/kitchen)")
    if not directory.exists():
        above = next((p for p in directory.parents if p.exists()), None)
        if above is not None and not above.is_dir():
            raise MapError(f"{directory}: {above} is a file, not a folder")
        return
    if not directory.is_dir():
        raise MapError(f"{directory}: exists and is not a directory; choose another path for the map")
    manifest = directory / "manifest.json"
    if not manifest.exists():
        if any(directory.iterdir()):
            raise MapError(
                f"{directory}: a folder that is not a LoCUS map (no manifest.json); saving would replace "
                "everything in it, so choose a new or empty folder"
            )
        return
    try:
        found = json.loads(manifest.read_bytes()).get("format")
    except (OSError, ValueError, AttributeError):
        return  # a map whose manifest is damaged: replacing it is what the user wants
    if found != FORMAT:
        raise MapError(f"{manifest}: not a LoCUS landmark map (format {found!r}); choose another folder")


def _write(landmark_map: LandmarkMap, tmp: Path) -> None:
    """Write every file of ``landmark_map`` into a new directory ``tmp``, synced to disk."""
    import yaml

    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    payload = {
        "index.faiss": landmark_map.index.to_bytes() if landmark_map.index is not None else b"",
        "landmarks.npz": _npz(landmark_map.landmarks.arrays()),
        "keyframes.npz": _npz(landmark_map.keyframes.arrays()),
        "config.yaml": yaml.safe_dump(config_to_dict(landmark_map.config), sort_keys=False).encode(),
    }
    files = {}
    for name, data in payload.items():
        _write_synced(tmp / name, data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"hash": landmark_map.model_hash, **landmark_map.model_info},
        "dim": landmark_map.dim,
        "counts": {
            "keyframes": len(landmark_map.keyframes),
            "landmarks": landmark_map.num_landmarks,
            "landmark_rows": len(landmark_map.landmarks),
            "observations": landmark_map.landmarks.num_observations,
        },
        "index": {"kind": landmark_map.index.kind if landmark_map.index else None},
        "sources": landmark_map.sources,
        "files": files,
    }
    _write_synced(tmp / "manifest.json", json.dumps(manifest, indent=2).encode())
    fsync_path(tmp)


def load_map(directory: Path, *, expected_model_hash: str | None = None) -> LandmarkMap:
    """Read and verify a map directory.

    Raises:
        MapError: naming the file, for a missing directory or file, a checksum or size mismatch
            (truncated or corrupted), an unknown format or version, a model other than expected, or
            tables and index that do not fit together (lengths, references, descriptor dimension).
    """
    directory = Path(directory)
    if not directory.is_dir():
        fallback = _interrupted_swap_copy(directory)
        if fallback is None:
            raise MapError(f"{directory}: no map directory here")
        log.warning("%s missing; loading %s left by an interrupted save", directory, fallback)
        directory = fallback
    manifest = _read_manifest(directory / "manifest.json")
    model_hash = str(manifest["model"].get("hash", ""))
    if expected_model_hash is not None and model_hash != expected_model_hash:
        raise MapError(
            f"{directory / 'manifest.json'}: map was built with model {model_hash}, "
            f"but the model in use is {expected_model_hash}; rebuild the map with this model"
        )
    data = {name: _read_verified(directory / name, manifest["files"].get(name)) for name in FILES}
    try:
        landmarks = LandmarkTable.from_arrays(_load_npz(data["landmarks.npz"], directory / "landmarks.npz"))
    except KeyError as exc:
        raise MapError(f"{directory / 'landmarks.npz'}: lacks array {exc}") from None
    try:
        keyframes = Keyframes(**_load_npz(data["keyframes.npz"], directory / "keyframes.npz"))
    except TypeError as exc:
        raise MapError(f"{directory / 'keyframes.npz'}: unexpected arrays ({exc})") from None
    config = _load_config(data["config.yaml"], directory / "config.yaml")
    index = None
    if data["index.faiss"]:
        index = LandmarkIndex.from_bytes(data["index.faiss"], nprobe=config.index_nprobe, source=str(directory / "index.faiss"))
    info = {k: v for k, v in manifest["model"].items() if k != "hash"}
    out = LandmarkMap(
        model_hash=model_hash, dim=int(manifest["dim"]), config=config, model_info=info,
        keyframes=keyframes, landmarks=landmarks, index=index, sources=list(manifest.get("sources", [])),
    )
    _check_consistent(out, directory)
    return out


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise MapError(f"{path}: missing (not a map directory, or an incomplete copy)") from None
    except OSError as exc:
        raise MapError(f"{path}: unreadable ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MapError(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise MapError(f"{path}: not a LoCUS landmark map (format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        # a map from a newer release: its owner may not have the data to rebuild it from
        todo = "rebuild the map with `locus map build`"
        if isinstance(version, int) and version > FORMAT_VERSION:
            todo = f"it was saved by a newer LoCUS: update LoCUS to read it, or {todo}"
        raise MapError(
            f"{path}: map format version {version!r} is not supported (this build reads version "
            f"{FORMAT_VERSION}); {todo}"
        )
    for key in ("model", "dim", "files"):
        if key not in manifest:
            raise MapError(f"{path}: manifest lacks {key!r}")
    return manifest


def _read_verified(path: Path, expected: dict[str, Any] | None) -> bytes:
    if expected is None:
        raise MapError(f"{path}: not listed in manifest.json")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MapError(f"{path}: missing") from None
    except OSError as exc:
        raise MapError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if len(data) != expected["bytes"]:
        raise MapError(f"{path}: {len(data)} bytes, manifest says {expected['bytes']} (truncated or replaced)")
    if hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise MapError(f"{path}: checksum mismatch (file corrupted)")
    return data


def _load_npz(data: bytes, path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, KeyError) as exc:
        raise MapError(f"{path}: unreadable arrays ({exc})") from None


def _load_config(data: bytes, path: Path) -> MapConfig:
    import yaml

    try:
        values = yaml.safe_load(data) or {}
        if isinstance(values, dict):
            # maps saved before the option existed kept depth-edge patches; their queries must too
            values.setdefault("max_depth_spread", float("inf"))
        return config_from_dict(MapConfig, values, source=str(path))
    except (yaml.YAMLError, ConfigError) as exc:
        raise MapError(f"{path}: {exc}") from None


def _check_consistent(m: LandmarkMap, directory: Path) -> None:
    # the checksums only prove the files are as saved: a script that edited one table and saved the
    # map wrote them consistently, and a row missing would surface as an IndexError mid-localization
    n_kf, lm = len(m.keyframes), m.landmarks
    n_lm, n_obs = len(lm), len(lm.extra_landmark)
    expected = {
        "keyframes.npz": (m.keyframes.arrays(), {"T_map_kf": (n_kf, 4, 4), "K": (n_kf, 3, 3), "frame_ids": (n_kf,),
                                                 "source_index": (n_kf,), "stamps": (n_kf,)}),
        "landmarks.npz": (lm.arrays(), {"offset": (n_lm, 3), "anchor": (n_lm,), "anchor_uv": (n_lm, 2),
                                        "extra_landmark": (n_obs,), "extra_keyframe": (n_obs,), "extra_uv": (n_obs, 2)}),
    }
    for name, (arrays, shapes) in expected.items():
        for key, shape in shapes.items():
            if arrays[key].shape != shape:
                raise MapError(f"{directory / name}: array {key} has shape {arrays[key].shape}, expected {shape}")
    if n_obs and lm.extra_landmark.max() >= n_lm:
        raise MapError(f"{directory / 'landmarks.npz'}: observations refer to landmarks beyond the {n_lm} stored")
    if m.index is not None and m.index.dim != m.dim:
        raise MapError(f"{directory / 'index.faiss'}: descriptors of dimension {m.index.dim}, the map's are {m.dim}")
    active = lm.anchor[lm.anchor != np.iinfo(np.uint32).max]
    if (len(active) and active.max() >= n_kf) or (len(lm.extra_keyframe) and lm.extra_keyframe.max() >= n_kf):
        raise MapError(f"{directory / 'landmarks.npz'}: observations refer to keyframes beyond the {n_kf} stored")
    ntotal = m.index.ntotal if m.index is not None else 0
    if ntotal != lm.num_active:
        raise MapError(f"{directory / 'index.faiss'}: holds {ntotal} descriptors for {lm.num_active} landmarks")


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _interrupted_swap_copy(directory: Path) -> Path | None:
    candidates = sorted(directory.parent.glob(f"{glob.escape(directory.name)}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((c for c in candidates if is_map(c)), None)


def _remove_stale(directory: Path) -> None:
    """Delete temporary directories of saves whose process is gone (killed mid-save)."""
    for pattern in (".tmp-", ".old-"):
        for path in directory.parent.glob(f"{glob.escape(directory.name)}{pattern}*"):
            pid = path.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not process_alive(int(pid)) and not (pattern == ".old-" and not directory.exists()):
                shutil.rmtree(path, ignore_errors=True)
