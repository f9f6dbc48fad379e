"""Simulated concurrent load with version-dependent latency: the sequential gate fed in completion vs dispatch order.

``concurrency`` closed-loop clients start at once (a burst start: every client dispatches at t = 0) and each sends
its next request the moment the previous one is answered. Every request goes to a version drawn independently
from ``truth`` (Envoy's per-request weighted choice), and its latency is exponential with that version's mean.
The dispatch-ordered stream is i.i.d.; the completion-ordered one is not (the fast version's responses come back
first), which is what verifier.inputs.reorder exists for. Used by tests/test_dispatch_order.py and
bench/dispatch_order.py; the gate's statistics are :func:`verifier.stats.simulation.sequential_statistics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from splitproof.verifier import defaults
from splitproof.verifier.expected import as_expected
from splitproof.verifier.stats.simulation import SequentialRuns, _first_true, sequential_statistics


@dataclass(frozen=True)
class LoadRuns:
    """Per run: the version index of each response, in dispatch order and in completion order (runs, horizon)."""

    dispatch: np.ndarray
    completion: np.ndarray


def closed_loop(truth: np.ndarray, latency_ms: np.ndarray, *, concurrency: int, runs: int, horizon: int,
                rng: np.random.Generator) -> LoadRuns:
    """``runs`` simulated burst-start runs of ``concurrency`` clients; the first ``horizon`` responses of each in
    both orders. ``truth`` and ``latency_ms`` are per version (same order)."""
    per_client = -(-horizon // concurrency) * 2 + 8  # enough requests that both orders fill the horizon
    versions = rng.choice(len(truth), size=(runs, concurrency, per_client), p=truth)
    latency = rng.exponential(1.0, size=versions.shape) * latency_ms[versions]
    done = np.cumsum(latency, axis=2)
    sent = done - latency  # the next request leaves when the previous one is answered; all start at 0
    # ties (the burst's simultaneous first dispatches) break by client number: an order the values do not choose
    tiebreak = np.broadcast_to(np.arange(concurrency)[None, :, None] * 1e-12, sent.shape)
    flat_v = versions.reshape(runs, -1)
    by_sent = np.argsort((sent + tiebreak).reshape(runs, -1), axis=1, kind="stable")[:, :horizon]
    by_done = np.argsort(done.reshape(runs, -1), axis=1, kind="stable")[:, :horizon]
    return LoadRuns(np.take_along_axis(flat_v, by_sent, axis=1), np.take_along_axis(flat_v, by_done, axis=1))


def gate_runs(streams: np.ndarray, expected: np.ndarray, k: int, *, alpha: float, tolerance: float,
              max_unattributed: float) -> SequentialRuns:
    """The sequential gate (looking after every response) on each row of ``streams`` (version indices)."""
    onehot = np.zeros((*streams.shape, k), dtype=np.int32)
    np.put_along_axis(onehot, streams[..., None], 1, axis=2)
    counts = np.cumsum(onehot, axis=1)
    fail, within = sequential_statistics(counts, expected, alpha=alpha, tolerance=tolerance,
                                         max_unattributed=max_unattributed)
    return SequentialRuns(_first_true(fail), _first_true(within), streams.shape[1])


@dataclass(frozen=True)
class OrderRates:
    completion_fail: float
    dispatch_fail: float
    runs: int


def false_fail_rates(expected: Mapping[str, float], latency_ms: Mapping[str, float], *, concurrency: int,
                     runs: int, horizon: int, alpha: float = defaults.ALPHA, tolerance: float = defaults.TOLERANCE,
                     max_unattributed: float = defaults.MAX_UNATTRIBUTED, seed: int = 0,
                     chunk: int = 200) -> OrderRates:
    """FAIL rates of the gate on a *correct* split (truth = expected) fed in completion vs dispatch order."""
    exp = as_expected(expected)
    names = list(exp)
    e = np.array([exp[v] for v in names])
    lat = np.array([float(latency_ms[v]) for v in names])
    rng = np.random.default_rng(seed)
    fails = {"completion": 0, "dispatch": 0}
    for start in range(0, runs, chunk):
        size = min(chunk, runs - start)
        load = closed_loop(e, lat, concurrency=concurrency, runs=size, horizon=horizon, rng=rng)
        for order, streams in (("completion", load.completion), ("dispatch", load.dispatch)):
            result = gate_runs(streams, e, len(names), alpha=alpha, tolerance=tolerance,
                               max_unattributed=max_unattributed)
            fails[order] += int(np.sum(result.outcome == "FAIL"))
    return OrderRates(fails["completion"] / runs, fails["dispatch"] / runs, runs)
