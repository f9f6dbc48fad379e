"""Every default of the verdict, defined once: the Python API, ``verify-split``, the Locust options, ``--plan`` and
the demo all read them from here.

All values are fractions (0.05 = 5 percentage points), the unit of the Python API. The command lines show and take
percentage points and percents; :func:`points` / :func:`fraction` are the one conversion, done at those edges.
"""

from __future__ import annotations

ALPHA = 0.01                # each kind of wrong verdict (false PASS, false FAIL) at most this often
TOLERANCE = 0.05            # PASS needs every share within expected +- min(tolerance, share / 2)
MAX_UNATTRIBUTED = 0.01     # FAIL when unattributed responses are shown above this rate
POWER = 0.9                 # --plan and "about N more samples": the probability of deciding

MAX_ERROR_INCREASE = 0.01   # health: PASS needs the canary's error rate shown below production's + 1 pp
MAX_SLOW_INCREASE = 0.05    # health: ... and its share of slow responses below production's + 5 pp

SEQUENTIAL_MAX_SAMPLES = 20_000   # live sequential sampling stops INCONCLUSIVE after this many responses ...
LIVE_DURATION_S = 600.0           # ... or after this many seconds
UNREACHABLE_AFTER = 20            # this many responses at the start, none successful: the target is unreachable

SERVICE_HOST = "recommendationservice"   # the service whose split is verified (the lab's canary)
SERVICE_NAMESPACE = "online-boutique"    # ... and its namespace, where a full name is needed


def points(fraction: float) -> float:
    """A fraction in percentage points (percent) as a user reads it: ``points(0.05) == 5.0`` (no float noise)."""
    return round(100.0 * fraction, 9)


def fraction(points_value: float) -> float:
    """Percentage points (percent) as typed on a command line -> the API's fraction: ``fraction(5) == 0.05``."""
    return points_value / 100.0
