from __future__ import annotations

import struct
from pathlib import Path

from locus_core.training.tensorboard import EventWriter, _masked, crc32c


def test_crc32c_known_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def _records(path: Path) -> list[bytes]:
    data, out, i = path.read_bytes(), [], 0
    while i < len(data):
        (length,) = struct.unpack("<Q", data[i : i + 8])
        assert struct.unpack("<I", data[i + 8 : i + 12])[0] == _masked(data[i : i + 8])
        body = data[i + 12 : i + 12 + length]
        assert struct.unpack("<I", data[i + 12 + length : i + 16 + length])[0] == _masked(body)
        out.append(body)
        i += 16 + length
    return out


def test_event_file_framing_and_content(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, purge_after=5)
    writer.scalars(6, {"train/loss": 0.5, "val/ap": None})
    records = _records(writer.path)
    assert len(records) == 3
    assert b"brain.Event:2" in records[0]
    assert records[1].endswith(b"\x32\x02\x10\x01")  # session_log START at the resume step
    assert b"train/loss" in records[2] and struct.pack("<f", 0.5) in records[2] and b"val/ap" not in records[2]
