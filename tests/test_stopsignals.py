"""setup.stopsignals: any number of stop signals, arriving at any moment -- even inside the handler of the one
before -- stop a process once, and never deadlock it.

The bug this guards against: a handler calling ``threading.Event.set()`` deadlocked a boutique instance when a
second SIGTERM arrived while the first handler held the event's lock. A SIGKILLed supervisor sends its children
such bursts (one PR_SET_PDEATHSIG per thread it loses), so the instance outlived the supervisor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import PYTHON

from splitproof.setup import proc
from splitproof.setup.stopsignals import StopSignals

CHILD_TIMEOUT_S = 30


def test_wait_times_out_without_a_signal_and_returns_at_once_after_one() -> None:
    with StopSignals(signal.SIGTERM) as stop:
        assert stop.wait(0) is False and stop.wait(0.05) is False
        signal.raise_signal(signal.SIGTERM)
        assert stop.wait(0) is True and stop.received == signal.SIGTERM
        assert stop.wait() is True  # stays asked for
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the previous handler is back


def test_a_signal_wakes_a_blocked_wait_from_another_thread_at_once() -> None:
    woke: list[float] = []
    main = threading.main_thread().ident
    with StopSignals(signal.SIGUSR1) as stop:
        def blocked_in_wait() -> bool:
            frame = sys._current_frames().get(main)  # the main thread's innermost Python frame
            return frame is not None and frame.f_code is StopSignals.wait.__code__

        def send() -> None:
            proc.wait_until(blocked_in_wait, 10, "the main thread to block in wait()")  # the signal must wake it
            woke.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGUSR1)

        sender = threading.Thread(target=send)
        sender.start()
        assert stop.wait(20) is True
        took = time.monotonic() - woke[0]
        sender.join()
    assert stop.received == signal.SIGUSR1 and took < 10  # woken by the signal, not by the 20 s timeout


def test_an_event_set_by_another_thread_stops_the_wait_as_a_signal_does() -> None:
    event = threading.Event()
    with StopSignals(signal.SIGTERM, event=event) as stop:
        assert stop.wait(0.05) is False
        threading.Timer(0.1, event.set).start()
        assert stop.wait(20) is True and stop.received is None


def test_outside_the_main_thread_no_handler_is_installed() -> None:
    seen: list[object] = []

    def worker() -> None:
        with StopSignals(signal.SIGTERM, event=threading.Event()) as stop:
            seen.append(signal.getsignal(signal.SIGTERM))
            seen.append(stop.wait(0))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [signal.SIG_DFL, False]


# A signal raised at every line Python runs while a stop handler is on the stack -- the handler's own lines, and
# those of anything it calls -- up to a bound: the worst interleaving a burst can produce, deterministically. A
# handler that takes a lock (Event.set) deadlocks here at once; the queue-based one is never interrupted holding one.
HOSTILE = textwrap.dedent("""
    import signal, sys, threading
    from splitproof.setup.stopsignals import StopSignals

    raised = 0

    def tracer(frame, event, arg):
        return local if _in_handler(frame) else None

    def local(frame, event, arg):
        global raised
        if event == "line" and raised < 200:
            raised += 1
            signal.raise_signal(signal.SIGTERM)
        return local

    def _in_handler(frame):
        while frame is not None:
            if frame.f_code.co_name in HANDLER_NAMES:
                return True
            frame = frame.f_back
        return False

    HANDLER_NAMES = {sys.argv[1]}
    with StopSignals(signal.SIGTERM) as stop:
        if sys.argv[1] == "set_event":  # the handler this project used to have, for contrast
            event = threading.Event()
            def set_event(signum, frame):
                event.set()
            signal.signal(signal.SIGTERM, set_event)
        sys.settrace(tracer)
        threading.settrace(tracer)
        signal.raise_signal(signal.SIGTERM)
        done = stop.wait(5) if sys.argv[1] != "set_event" else event.wait(5)
        sys.settrace(None)
    print("stopped" if done else "not stopped", raised, flush=True)
""")


def run_hostile(handler: str, timeout: float = CHILD_TIMEOUT_S) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(proc.python_argv("-c", HOSTILE, handler, python=PYTHON), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_signals_raised_inside_the_stop_handler_itself_never_deadlock_it() -> None:
    run = run_hostile("_record")
    assert run is not None, "deadlocked: signals arriving inside the stop handler hung the process"
    assert run.returncode == 0 and run.stdout.split()[0] == "stopped", run.stderr
    assert int(run.stdout.split()[1]) >= 1  # a signal really was raised inside the handler


def test_the_hostile_trace_does_catch_a_handler_that_takes_a_lock() -> None:
    # the test above can fail: the same trace hangs the Event.set() handler the instances had before
    assert run_hostile("set_event", timeout=5) is None


# --- a real instance under a burst ----------------------------------------------------------------------------

@pytest.fixture
def catalog() -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(proc.python_argv("-m", "splitproof.setup.boutique", "catalog", "--port", "0",
                                              python=PYTHON),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().startswith("READY catalog ")
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


@pytest.mark.parametrize("burst", [1, 300])
def test_an_instance_exits_cleanly_after_a_burst_of_sigterms(catalog: subprocess.Popen[str], burst: int) -> None:
    for _ in range(burst):
        try:
            os.kill(catalog.pid, signal.SIGTERM)
        except ProcessLookupError:
            break
    assert catalog.wait(timeout=CHILD_TIMEOUT_S) == 0
