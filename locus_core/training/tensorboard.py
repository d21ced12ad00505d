"""A minimal TensorBoard event-file writer for scalars (the ``tensorboard`` package is not installed).

Writes the TFRecord framing (length, masked CRC-32C) around hand-encoded ``Event`` protobufs:
``file_version``, then ``summary { value { tag, simple_value } }`` per call. On resume a
``session_log { status: START }`` tells TensorBoard to drop the events a killed run had written
after the resumed step (what ``SummaryWriter(purge_step=...)`` does).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(step: int, body: bytes) -> bytes:
    return b"\x09" + struct.pack("<d", time.time()) + b"\x10" + _varint(step) + body


# Event.session_log (field 7) = SessionLog { status (field 1, varint): START (1) }
_SESSION_START = _field(7, b"\x08\x01")


class EventWriter:
    """Appends scalar events to ``<folder>/events.out.tfevents.<time>.<host>.<pid>``.

    Args:
        purge_after: > 0 on resume: TensorBoard drops the events of earlier files with a step
            greater than this one (a START's step is the first step it purges).
    """

    def __init__(self, folder: Path, *, purge_after: int = 0) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self._write(_event(0, _field(3, b"brain.Event:2")))
        if purge_after > 0:
            self._write(_event(purge_after + 1, _SESSION_START))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        summary = b"".join(
            _field(1, _field(1, tag.encode()) + b"\x15" + struct.pack("<f", float(v)))
            for tag, v in values.items() if v is not None
        )
        self._write(_event(step, _field(5, summary)))

    def _write(self, record: bytes) -> None:
        header = struct.pack("<Q", len(record))
        with self.path.open("ab") as f:
            f.write(header + struct.pack("<I", _masked(header)) + record + struct.pack("<I", _masked(record)))
