"""How both command lines end when something goes wrong: an error text fit to print, and a standard output that
cannot be written (a full disk, ``> /dev/full``, a closed pipe) reported as one line instead of a traceback.

Python flushes ``sys.stdout`` once more at exit; when that fails it prints "Exception ignored ..." and exits 120.
:func:`stdout_failure` flushes first and, when the flush fails, points file descriptor 1 at ``/dev/null`` so that
nothing else can fail on it; the caller then prints its own one-line error on stderr.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from splitproof.verifier.redact import redact

MAX_MESSAGE = 2000


def error_text(message: object) -> str:
    """``message`` fit to print: credentials redacted (verifier.redact), control characters other than newlines
    escaped (a server's raw bytes never reach the terminal), at most MAX_MESSAGE characters."""
    text = redact(str(message))
    text = "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


class _WatchedStdout:
    """sys.stdout, remembering why a write or flush failed (rich and print write to sys.stdout itself)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.failure: str | None = None

    def _failed(self, exc: BaseException) -> None:
        self.failure = self.failure or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except (OSError, ValueError) as exc:
            self._failed(exc)
            raise

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError) as exc:
            self._failed(exc)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def watch_stdout() -> None:
    """Install the failure-remembering sys.stdout (once; the command lines call it first)."""
    if not isinstance(sys.stdout, _WatchedStdout) and sys.stdout is not None:
        sys.stdout = _WatchedStdout(sys.stdout)  # type: ignore[assignment]


def stdout_failure() -> str | None:
    """Flush standard output; None when it never failed, else why (standard output then goes to /dev/null)."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as exc:  # ValueError: stdout was closed
        reason: str | None = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    else:
        reason = getattr(sys.stdout, "failure", None)
    if reason is None:
        return None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return str(reason)


def describe_os_error(exc: OSError) -> str:
    """``No space left on device: /path`` -- an OSError as one line (the errno's text and the file it concerns)."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{text}: {exc.filename}" if getattr(exc, "filename", None) else text
