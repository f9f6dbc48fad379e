"""How a Locust run ended, and a ``-t`` timer that counts from the moment it is armed.

Two facts about Locust (2.4x) that the verdict depends on:

* **The -t timer starts late in the clock, so it fires early.** ``locust/main.py`` arms it with
  ``gevent.spawn_later(run_time, ...)`` from the main greenlet, before the event loop has run since the hub was
  created. libev timers count from the loop's *cached* time (``ev_now``), which is only refreshed when the loop
  iterates, and gevent >= 1.3 does not refresh it when a timer is started outside a loop callback. Everything done
  between the hub's creation and the arming -- importing the locustfile and its dependencies (scipy alone takes
  1-2 s cold) -- is therefore taken off the run: ``-t 4s`` generated load for 2.8-3.0 s. The workaround is
  :func:`refresh_event_loop_clock` (``loop.update_now()``) in the ``init`` listener, the last code that runs
  before Locust arms the timer.
* **Locust says nothing about why a test stopped.** ``test_stopping`` fires in the greenlet that stops the test,
  so the stack it fires on tells: Locust's run-time timer (``locust.main``'s ``stop_and_optionally_quit`` with
  its default reason, or ``locust.web``'s ``_stop_runners`` for a run time typed into the web UI's form), or
  anything else -- Ctrl-C, SIGTERM, the web UI's Stop button, ``--stop-on-verdict``. Locust itself reads the same
  stack for its "Stopping all users (called from ...)" debug line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

# Why the load stopped (what the verdict's method depends on, see loadtest.live).
RUN_TIME_LIMIT = "run-time limit"   # Locust's own -t timer (headless, --autostart, or the web UI form's run time)
STOPPED = "stopped"                 # a person: Ctrl-C, SIGTERM, the web UI's Stop -- or there was no -t at all
STOP_ON_VERDICT = "stop-on-verdict"  # the sequential gate decided and --stop-on-verdict stopped the test
RESTARTED = "restarted"             # the records span several tests started from the web UI: no preset length

# The frames of Locust's two run-time timers: (module, function) and, for the first, the reason it is given.
_MAIN_TIMER = ("locust.main", "stop_and_optionally_quit")
_MAIN_TIMER_REASON = "--run-time limit reached"  # its default; the shape-class path passes another reason
_WEB_TIMER = ("locust.web", "_stop_runners")

Frame = tuple[str, str, Mapping[str, Any]]  # (module name, function name, the frame's locals)


def refresh_event_loop_clock() -> None:
    """Bring the gevent loop's cached time up to date, so a timer armed next counts from now."""
    import gevent

    gevent.get_hub().loop.update_now()


def is_run_time_stop(frames: Iterable[Frame]) -> bool:
    """True when one of ``frames`` (innermost first) is one of Locust's run-time timers firing."""
    for module, function, local_vars in frames:
        if (module, function) == _WEB_TIMER:
            return True
        if (module, function) == _MAIN_TIMER:
            return str(local_vars.get("reason", _MAIN_TIMER_REASON)) == _MAIN_TIMER_REASON
    return False


def _stack() -> Iterator[Frame]:
    frame = sys._getframe(1)
    while frame is not None:
        yield str(frame.f_globals.get("__name__", "")), frame.f_code.co_name, frame.f_locals
        frame = frame.f_back


def stopped_by_run_time_limit() -> bool:
    """Called from a ``test_stopping`` listener: is Locust's run-time timer what is stopping the test?"""
    return is_run_time_stop(_stack())
