"""Crash-safe saving, shared by maps and training checkpoints: write into a temporary folder named
after the writing process, sync it to disk, then rename it into place; a later save removes the
temporaries of processes that died mid-save. Single files (``atomic_write``): written beside the
target, then renamed over it. And reports (``written_last``): the file that marks a finished run
goes in last."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to disk (a rename is durable only after both)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be writing its temporary folder. This process counts as
    dead: a temporary of its own is left from an earlier save that failed, not one in progress."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def replace_folder(tmp: Path, final: Path, aside: Path) -> None:
    """Put the complete folder ``tmp`` at ``final``, replacing any folder there, and sync the parent.

    Where the file system has it, one ``renameat2(RENAME_EXCHANGE)`` swaps them (``tmp`` then holds
    the previous folder, deleted); elsewhere ``final`` is first renamed to ``aside``, deleted once
    ``tmp`` is in place, so that a crash leaves ``aside`` rather than a half-deleted ``final``.

    Raises:
        OSError: the file system refuses.
    """
    if not final.exists():
        os.rename(tmp, final)
    elif _exchange(tmp, final):
        # the new folder is in place: a previous one that cannot be deleted is a leftover, not a failed
        # save (a later save removes it)
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(final, aside)
        os.rename(tmp, final)
        shutil.rmtree(aside, ignore_errors=True)
    fsync_path(final.parent)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def atomic_write(path: Path, write: Callable[[Path], object], *, durable: bool = False) -> Path:
    """Make ``path`` by ``write(tmp)`` into a temporary file beside it, then rename that over ``path``:
    a reader (or another process loading a cache) sees the previous file or the new one whole, never
    one cut short. On any error, interrupts included, the temporary file is removed, ``path`` is left
    as it was and the error is raised.

    ``durable``: also survive a power cut, at the cost of two syncs: the file is synced before the
    rename (else the rename can reach the disk first, leaving the name on an empty file) and the
    folder after it (else the rename itself can be lost). Returns ``path``.
    """
    # Hidden, in the same folder (a rename across file systems is a copy, not atomic), and unique
    # per process and thread so that concurrent writers of the same file never share a temporary.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        write(tmp)
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)
    return path


def atomic_write_text(path: Path, text: str, *, durable: bool = False) -> Path:
    """:func:`atomic_write` of ``text``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text), durable=durable)


@contextmanager
def written_last(path: Path, text: str) -> Iterator[None]:
    """Remove ``path`` (a report's metrics.json: it marks a finished run) on entry and write ``text``
    to it when the block ends without an error, so that a rerun into the same folder interrupted while
    it writes its other files never leaves the earlier run's metrics beside them. The file appears
    whole or not at all (a full disk or a crash left it truncated, still marking a finished run)."""
    path.unlink(missing_ok=True)
    yield
    atomic_write_text(path, text, durable=True)
