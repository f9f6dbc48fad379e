"""A Locust file with no users, loaded beside the measured one in ``python -m bench.loadgen --instructions``: it
brings gevent's loop clock up to date when Locust initialises.

libev caches the loop's time and refreshes it only when the loop runs (``ev_now_update``). Locust arms its
``--run-time`` timer (``gevent.spawn_later``) before its loop has run since the locustfile's imports, so the timer
is due that long early. Natively that is a second or so and costs nothing (rates come from the stats' own
timestamps); under valgrind the imports take 20-60 s, and a ``-t 12s`` run ended before it made ten requests.
"""

from __future__ import annotations

from typing import Any

import gevent
from locust import events


@events.init.add_listener
def _fresh_clock(**_kwargs: Any) -> None:
    gevent.get_hub().loop.update_now()
