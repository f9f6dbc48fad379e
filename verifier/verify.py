"""One function from any observation stream to a verdict: :func:`verify`.

The observations are whatever a source produces, in the order it produces them: versions (``None`` for an
unattributed response) or :class:`~verifier.inputs.records.Record` objects of an ordered stream, or count batches
of a counts-only source (``{version: count}`` mappings, :class:`~verifier.tally.Batch`, a telemetry source's
``TelemetryCounts``). They go through the one :class:`~verifier.tally.Tally`, exactly as verify-split's own inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError
from splitproof.verifier.tally import CountBatch, Observation, Tally
from splitproof.verifier.verdict import Method, Verdict


def verify(observations: Iterable[Observation] | CountBatch | Mapping[str, int], expected: Mapping[str, float], *,
           method: Method = Method.FIXED_N,
           alpha: float = defaults.ALPHA, tolerance: float = defaults.TOLERANCE,
           max_unattributed: float = defaults.MAX_UNATTRIBUTED, power: float = defaults.POWER) -> Verdict:
    """The verdict on ``observations`` against the ``expected`` split ({version: fraction}).

    ``method="fixed-n"`` (default) judges everything observed -- right when the number of observations was fixed
    before any was seen. ``method="sequential"`` runs the anytime-valid gate and stops reading at its first PASS or
    FAIL (the rest of the stream is not consumed); an INCONCLUSIVE says about how many more responses would decide.
    Shares, tolerance and limit are fractions: ``tolerance=0.05`` is 5 percentage points. A single count batch
    (a ``{version: count}`` mapping, a ``Batch``, a ``TelemetryCounts``) may be given as it is.
    """
    if isinstance(observations, Mapping | CountBatch):
        observations = [observations]  # one batch: iterating a mapping would yield its keys, not its counts
    elif isinstance(observations, str | bytes):
        raise InputError("observations must be an iterable of observations, not a string")
    tally = Tally(expected, method=method, alpha=alpha, tolerance=tolerance, max_unattributed=max_unattributed,
                  power=power)
    for observation in observations:
        tally.add(observation)
        if tally.decided:
            break
    return tally.verdict()
