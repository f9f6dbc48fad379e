"""Stop on SIGTERM/SIGINT/SIGHUP however many arrive at once: ``StopSignals``.

A process of this project is asked to stop by a signal, and it may get a burst of them. A child started with
``die_with_parent`` (setup.proc) gets one SIGTERM from PR_SET_PDEATHSIG each time its parent process loses the
thread it was reparented to: the kernel hands an orphan to another live thread of the same process first and sends
the death signal again at every step, so a SIGKILLed supervisor with a dozen threads sends a dozen SIGTERMs
(``forget_original_parent`` / ``find_new_reaper`` in Linux's kernel/exit.c; prctl(2): "the 'parent' in this case
is considered to be the thread that created this process").

Python runs a signal handler in the main thread between two bytecodes -- also in the middle of the main thread's
own ``threading.Event.set()`` or ``wait()``, or of the handler itself. A handler that calls ``Event.set()`` takes
the event's lock, which is not re-entrant: the second signal of a burst, arriving while the first handler holds the
lock, blocks the main thread forever, and the process never exits. ``queue.SimpleQueue.put`` is documented as
re-entrant ("a put() or get() call can be interrupted by another put() call in the same thread without
deadlocking", Python's queue docs): the handler here does nothing else, and ``wait`` takes the first signal from the
queue, so any number of signals at any moment stop the process once.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from types import FrameType, TracebackType

# How often ``wait`` looks at an ``event`` set by another thread; a signal wakes it at once.
EVENT_POLL_S = 0.1


class StopSignals:
    """Handlers for ``signals`` that only record the request; ``wait`` returns True once one has arrived (or
    ``event``, set by another thread, is set).

    Used as a context manager: the handlers are installed on entry -- in the main thread only, the one Python runs
    handlers in; elsewhere only ``event`` stops -- and the previous ones restored on exit. Keep the context open
    while the process shuts down, so that the rest of a burst does not interrupt the shutdown.
    """

    def __init__(self, *signals: signal.Signals, event: threading.Event | None = None) -> None:
        self.signals = signals
        self.event = event
        self.received: int | None = None
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._previous: dict[signal.Signals, object] = {}

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self._queue.put(signum)  # re-entrant: see the module docstring; nothing else may happen here

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._record)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is asked for or ``timeout`` seconds pass (None: no limit); True when asked."""
        deadline = None if timeout is None else time.monotonic() + timeout
        step: float | None = 0.0  # the first look does not block
        while True:
            if self.received is None:
                with contextlib.suppress(queue.Empty):
                    self.received = self._queue.get(timeout=step)
            if self.received is not None or (self.event is not None and self.event.is_set()):
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            limits = [t for t in (remaining, EVENT_POLL_S if self.event is not None else None) if t is not None]
            step = min(limits) if limits else None
