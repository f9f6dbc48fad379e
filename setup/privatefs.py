"""Directories and files only their owner can use (0700 / 0600), whatever the umask.

The local mesh's state directory decides which PIDs ``canary-setup local down`` kills and holds Envoy's whole
configuration: another user able to write it could make ``down`` kill their choice of process. Modes given to
``mkdir``/``open`` are reduced by the umask but never widened by it, so creating with 0700/0600 is owner-only at
any umask; an existing directory of ours is tightened with ``chmod``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents with mode 0700 (and make ``path`` itself 0700); return it.
    OSError (permission denied, a read-only file system, ...) propagates."""
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, DIR_MODE)
    if path.is_dir() and path.stat().st_mode & 0o777 != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def open_private(path: Path, *, append: bool = True) -> int:
    """A file descriptor for writing ``path`` (created 0600; an existing file is made 0600 too)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    with contextlib.suppress(OSError):
        os.fchmod(fd, FILE_MODE)
    return fd


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a 0600 temp file renamed over it): readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with os.fdopen(open_private(tmp, append=False), "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
