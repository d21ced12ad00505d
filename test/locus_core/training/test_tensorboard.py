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


def _fields(message: bytes) -> dict[int, int | bytes]:
    """Decode one protobuf message (field number -> value; varints as ints, the rest as bytes).

    By hand: the ``tensorboard`` package and its protos are not installed."""

    def varint(i: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = message[i]
            value |= (byte & 0x7F) << shift
            i, shift = i + 1, shift + 7
            if not byte & 0x80:
                return value, i

    out, i = {}, 0
    while i < len(message):
        key, i = varint(i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number], i = varint(i)
        elif wire == 2:
            length, i = varint(i)
            out[number], i = message[i : i + length], i + length
        else:
            size = {1: 8, 5: 4}[wire]
            out[number], i = message[i : i + size], i + size
    return out


def test_event_file_framing_and_content(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, purge_after=5)
    writer.scalars(6, {"train/loss": 0.5, "val/ap": None})
    records = _records(writer.path)
    assert len(records) == 3
    assert _fields(records[0])[3] == b"brain.Event:2"
    assert b"train/loss" in records[2] and struct.pack("<f", 0.5) in records[2] and b"val/ap" not in records[2]


def test_resume_writes_a_session_start_that_purges_after_the_resume_step(tmp_path: Path) -> None:
    # Event.step = 2, Event.session_log = 7, SessionLog.status = 1 with START = 1. TensorBoard drops
    # events with step >= the START's; train step s is logged as s + 1, so resuming at step 5
    # keeps everything up to 5 and drops what a killed run logged from 6 on.
    purge = _fields(_records(EventWriter(tmp_path, purge_after=5).path)[1])
    assert purge[2] == 6 and _fields(purge[7]) == {1: 1}
    assert len(_records(EventWriter(tmp_path / "fresh").path)) == 1
