"""An append-only file whose every appended byte survives a SIGKILL of the writer the moment append() returns.

A regular file is appended to through a shared memory map (``MAP_SHARED``): appending is a ``memcpy`` into the
page cache, which owns the bytes as soon as the copy is done -- a SIGKILL, which runs no code in the process, loses
nothing already copied, and no system call is made per append (the Locust file appends one record per response;
one ``write(2)`` each was its largest cost after the request itself). The file grows a window at a time
(``posix_fallocate``: the blocks are reserved up front, so a full disk is an OSError there, never a SIGBUS on a
later copy) and is cut back to the appended length on :meth:`AppendFile.close`.

So a file whose writer was killed ends in NUL bytes: the unused rest of its last window. That padding is not
data: readers stop at a run of NULs that reaches the end of the file (verifier.inputs.records documents this in
the record format). A writer reopening such a file continues where the data ends, over the padding. While the
writer runs, the file is as long as its window: a reader that follows it (a tail) takes the first NUL as the end
of what is written so far -- a copy another process is still making may become visible in any order -- and reads
on from there later (the lines a writer appends never hold a NUL: JSON escapes control characters).

Anything that is not a regular file -- a FIFO, a pipe, a terminal, ``/dev/stdout`` -- or a file the process may
not map is written with one unbuffered ``write(2)`` per append instead: the same guarantee (each append is with the
OS before append() returns), at the cost of the system call.
"""

from __future__ import annotations

import mmap
import os
import stat
from pathlib import Path

WINDOW = 1 << 20  # bytes mapped (and reserved on disk) at a time


def data_end(path: str | Path) -> int:
    """Where the data of ``path`` ends: its size minus the NUL padding at its end (0 if it does not exist). A
    reader following a file that is being written (a tail) starts reading from here."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        return _data_end(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _data_end(fd: int, size: int) -> int:
    end = size
    while end > 0:
        start = max(0, end - WINDOW)
        block = os.pread(fd, end - start, start)
        kept = len(block.rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
    return 0


class AppendFile:
    """Append bytes to ``path`` (created if missing; existing data kept). See the module docstring."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._base = 0  # file offset of the mapped window
        self._pos = 0   # file offset of the end of the data when the window was mapped (then: _base + the map's tell)
        try:
            regular = stat.S_ISREG(os.stat(self.path).st_mode)
        except FileNotFoundError:
            regular = True
        if regular:
            try:
                self._open_mapped()
            except OSError:  # not ours to read, a filesystem without mmap or fallocate: the system-call path
                self._close_fd()
        if self._fd < 0:
            # O_APPEND like open(path, "ab"): a FIFO without a reader blocks here, as it always did
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)

    @property
    def mapped(self) -> bool:
        """True while appends go through the memory map; False: one write(2) each (or closed)."""
        return self._map is not None

    def _open_mapped(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError("not a regular file")
        self._pos = _data_end(self._fd, st.st_size)
        if self._pos and os.pread(self._fd, 1, self._pos - 1) != b"\n":
            # the last line of an earlier run never ended (killed mid-line): end it, or the next would join it
            os.pwrite(self._fd, b"\n", self._pos)
            self._pos += 1
        self._window(self._pos)

    def _window(self, need: int) -> None:
        """Map a window from the page holding the end of the data through offset ``need`` at least. On an error
        (a full disk) the previous window stays as it was."""
        base = self._pos - self._pos % mmap.ALLOCATIONGRANULARITY
        length = max(WINDOW, need - base)
        length += -length % mmap.PAGESIZE
        os.posix_fallocate(self._fd, base, length)  # reserves the blocks and extends the file (NUL bytes)
        window = mmap.mmap(self._fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=base)
        if self._map is not None:
            self._map.close()
        window.seek(self._pos - base)  # appends are the map's own writes, from the end of the data on
        self._map, self._base = window, base

    def append(self, data: bytes) -> None:
        """``data`` is with the OS when this returns: a SIGKILL from now on keeps it."""
        if self._fd < 0:
            raise ValueError("file is closed")
        if self._map is not None:
            try:
                self._map.write(data)  # one copy at the map's position, which it advances
            except ValueError:  # no room left in the window ("data out of range": nothing was written)
                self._pos = self._base + self._map.tell()
                self._window(self._pos + len(data))
                self._map.write(data)
            return
        view = memoryview(data)
        while view:  # a raw write may be partial (a signal, a full pipe): the rest follows at once
            written = os.write(self._fd, view)
            if not written:
                raise OSError(f"cannot append to {self.path}: nothing written")
            view = view[written:]

    def close(self) -> None:
        """Unmap and cut the file back to its data (no padding is left after a clean close)."""
        if self._fd < 0:
            return
        try:
            if self._map is not None:
                self._pos = self._base + self._map.tell()
                self._map.close()
                self._map = None
                os.ftruncate(self._fd, self._pos)
        finally:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
