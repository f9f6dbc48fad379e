"""Opening a file the user named as input, so that a bad one is a one-line error -- never a hang, never an
unbounded read.

* ``-`` is standard input: the user's explicit choice, read as a stream.
* A FIFO (or the pipe of a shell's ``<(command)``) is opened without blocking: with no writer at that moment it is
  refused, because opening it the ordinary way waits forever for one; with a writer it is read as a stream.
* A missing file, a directory, no permission: one line naming the path.
* :func:`read_bounded` reads at most ``limit`` bytes and refuses anything larger (a 50 MB file, ``/dev/zero``).

Every error is an :class:`InputFileError` (a ValueError) whose message starts with ``what`` (the option, e.g.
``--results``); callers turn it into their own error class and exit code.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import time
from typing import BinaryIO

MIB = 1 << 20
WRITER_GRACE_S = 1.0  # how long a FIFO may take to get its writer


class InputFileError(ValueError):
    """A user-named input that cannot be read; the message is one line."""


def describe_size(n: int) -> str:
    return f"{n / MIB:g} MiB" if n >= MIB else f"{n:,} bytes"


class _Prefixed(io.RawIOBase):
    """A FIFO whose first bytes were already read (to learn whether it has a writer): those bytes, then the rest."""

    def __init__(self, head: bytes, fd: int) -> None:
        self._head = head
        self._fd = fd

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = os.read(self._fd, len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _first_bytes(fd: int) -> bytes | None:
    """On a FIFO opened without blocking: what a writer sent so far (b"" when one is connected but silent), or
    None when no writer appeared within WRITER_GRACE_S. A reader's open wakes a writer blocked in its own open,
    which then counts as a writer a moment later: the grace covers that (``mkfifo f; producer > f & cmd f``)."""
    deadline = time.monotonic() + WRITER_GRACE_S
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:  # a writer is connected and has written nothing yet
            return b""
        if data:
            return data
        if time.monotonic() >= deadline:  # end of file: nobody has the FIFO open for writing
            return None
        time.sleep(0.01)


def _refuse(fd: int, message: str) -> InputFileError:
    os.close(fd)
    return InputFileError(message)


def open_input(path: str, what: str) -> BinaryIO:
    """Open ``path`` (``-`` = stdin) for reading in binary, as described in the module docstring."""
    if path == "-":
        return sys.stdin.buffer
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputFileError(f"{what}: no such file: {path}") from None
    except OSError as exc:
        raise InputFileError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        raise _refuse(fd, f"{what}: {path} is a directory")
    if stat.S_ISFIFO(mode):
        head = _first_bytes(fd)
        if head is None:
            raise _refuse(fd, f"{what}: {path} is a FIFO with no writer (start the writer first, "
                              f"or pipe into {what} -)")
        os.set_blocking(fd, True)
        return io.BufferedReader(_Prefixed(head, fd))  # type: ignore[return-value]
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_bounded(path: str, what: str, limit: int) -> bytes:
    """All of ``path`` (``-`` = stdin), refusing more than ``limit`` bytes with a one-line error."""
    fh = open_input(path, what)
    try:
        data = fh.read(limit + 1)
    except OSError as exc:
        raise InputFileError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
    if len(data) > limit:
        raise InputFileError(f"{what}: {'standard input' if path == '-' else path} is larger than "
                             f"{describe_size(limit)}, the limit for this input")
    return data
