"""Health-judge calibration: false alarms, power and responses to a verdict, against Kayenta and fixed thresholds.

    python -m bench.health_calibration [--runs 2000] [--update]

Everything is simulated (seeded) through the project's own code: the sequential judge by
``verifier.health.simulation.crossings`` (checked decision for decision against ``HealthMonitor`` in
tests/test_health_simulation.py), the fixed-n judge by exact binomial sums over its rejection region
(``fixed_n_rates``, the judge's own p-values), the peers by ``verifier.health.peers`` -- all on the same simulated
responses. Baseline: the fixed-n judge at its planned n (``plan_health``), what a careful user runs without
sequential looks; and the peers as they are configured in their documentation.

``--update`` replaces the "## Canary health calibration" section of bench/RESULTS.md with this run's figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.machine import describe
from splitproof.verifier.health.peers import kayenta_first_high, step_series, threshold_first_failure
from splitproof.verifier.health.plan import fixed_n_rates, plan_health
from splitproof.verifier.health.simulation import (
    HealthRuns,
    crossings,
    cumulate,
    draw,
    draw_latencies,
    latency_counts,
    lognormal_latency,
    looks_at,
    simulate_health,
)

ALPHA, FAIL_TESTS = 0.01, 2                # errors and latency judged: FAIL tests at 0.005 each
ERR_MARGIN, SLOW_MARGIN = 0.01, 0.05
INTERVAL, STEP = 1000, 500                 # peers: a check every 1,000 responses; Kayenta: a point per 500
MEDIAN_MS, SIGMA = 4.0, 0.5
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Canary health calibration (`bench/health_calibration.py`)"
KEY: dict[str, float] = {}  # figures quoted in the reading
PRODUCTION = lognormal_latency(MEDIAN_MS, SIGMA)
P95 = MEDIAN_MS * math.exp(1.6448536 * SIGMA)
P99 = MEDIAN_MS * math.exp(2.3263479 * SIGMA)


def se(p: float, runs: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / runs)


def rate(p: float, runs: int) -> str:
    """The rate with its Monte Carlo standard error; for none at all, the 95% upper bound (3 / runs)."""
    if p == 0:
        return f"0 (95% ≤ {3 / runs:.4f})"
    return f"{p:.4f} (± {se(p, runs):.4f})"


def spread(stops: np.ndarray) -> str:
    """Median / p90 of responses to the verdict; '>H' when more than that share never got it."""
    med, p90 = (np.percentile(stops, q, method="inverted_cdf") for q in (50, 90))
    fmt = (lambda v: f"{v:,.0f}" if np.isfinite(v) else "never")  # noqa: E731
    return f"{fmt(med)} / {fmt(p90)}"


@dataclass
class Row:
    name: str
    ours: HealthRuns
    batched: HealthRuns
    kayenta: np.ndarray
    thresh1: np.ndarray
    thresh5: np.ndarray
    horizon: int


def _as_stops(first: np.ndarray) -> np.ndarray:
    return np.where(first > 0, first.astype(float), np.inf)


def error_row(name: str, share: float, pc: float, pp: float, runs: int, horizon: int, seed: int,
              kayenta_every: int = 2) -> Row:
    rng = np.random.default_rng(seed)
    chunk = max(1, 3_000_000 // horizon)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("f", "p", "bf", "bp", "k", "t1", "t5")}
    for start in range(0, runs, chunk):
        size = min(chunk, runs - start)
        canary, bad = draw(share, pc, pp, size, horizon, rng)
        for tag, every in (("", 1), ("b", INTERVAL)):
            f, p = crossings(cumulate(canary, bad, looks_at(horizon, every)), max_increase=ERR_MARGIN,
                             fail_margin=0.0, alpha=ALPHA, alpha_fail=ALPHA / FAIL_TESTS)
            parts[tag + "f"].append(f)
            parts[tag + "p"].append(p)
        cs, bs = step_series(canary, bad, STEP)
        parts["k"].append(kayenta_first_high(cs, bs, every=kayenta_every, step=STEP, rng=rng))
        ci, _ = step_series(canary, bad, INTERVAL)
        counts = canary[:, : (horizon // INTERVAL) * INTERVAL].reshape(size, -1, INTERVAL).sum(axis=2)
        parts["t1"].append(threshold_first_failure(ci, 0.01, interval_steps=1, step=INTERVAL, counts=counts))
        parts["t5"].append(threshold_first_failure(ci, 0.01, interval_steps=1, step=INTERVAL, failures=5,
                                                   counts=counts))
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Row(name, HealthRuns(cat["f"], cat["p"], horizon), HealthRuns(cat["bf"], cat["bp"], horizon),
               cat["k"], cat["t1"], cat["t5"], horizon)


def latency_row(name: str, share: float, canary_model, runs: int, horizon: int, seed: int,  # type: ignore[no-untyped-def]
                limit_ms: float) -> Row:
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // horizon)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("f", "p", "bf", "bp", "k", "t1", "t5")}
    for start in range(0, runs, chunk):
        size = min(chunk, runs - start)
        canary, latency = draw_latencies(share, canary_model, PRODUCTION, size, horizon, rng)
        for tag, every in (("", 1), ("b", INTERVAL)):
            counts, _ = latency_counts(canary, latency, looks_at(horizon, every))
            f, p = crossings(counts, max_increase=SLOW_MARGIN, fail_margin=0.0, alpha=ALPHA,
                             alpha_fail=ALPHA / FAIL_TESTS)
            parts[tag + "f"].append(f)
            parts[tag + "p"].append(p)
        cs, bs = step_series(canary, latency, STEP)
        parts["k"].append(kayenta_first_high(cs, bs, every=2, step=STEP, rng=rng))
        p99, _ = step_series(canary, latency, INTERVAL, "p99")
        n = canary[:, : (horizon // INTERVAL) * INTERVAL].reshape(size, -1, INTERVAL).sum(axis=2)
        parts["t1"].append(threshold_first_failure(p99, limit_ms, interval_steps=1, step=INTERVAL, counts=n))
        parts["t5"].append(threshold_first_failure(p99, limit_ms, interval_steps=1, step=INTERVAL, failures=5,
                                                   counts=n))
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Row(name, HealthRuns(cat["f"], cat["p"], horizon), HealthRuns(cat["bf"], cat["bp"], horizon),
               cat["k"], cat["t1"], cat["t5"], horizon)


def fixed(share: float, pc: float, pp: float, margin: float) -> tuple[int, float, float]:
    """(planned n, exact P(FAIL), exact P(PASS)) of the fixed-n judge at its plan, given n_c = round(share n)."""
    plan = plan_health(share, pp, pc - pp, max_increase=margin, fail_tests=FAIL_TESTS, alpha=ALPHA)
    n = plan.fixed_n or 0
    nc = round(share * n)
    p_fail, p_pass = fixed_n_rates(nc, n - nc, pc, pp, max_increase=margin, alpha=ALPHA, fail_tests=FAIL_TESTS)
    return n, p_fail, p_pass


def false_alarm_section(runs: int) -> list[str]:
    out = ["**False FAIL when the canary is exactly as healthy as production** (the promise: at most alpha = 0.01 "
           f"for the health verdict; each FAIL test runs at {ALPHA / FAIL_TESTS:g}). Horizon 20,000 responses; "
           "peers checked every 1,000.", "",
           "| metric, canary share | this judge: sequential, look every response | sequential, look every "
           "1,000 | fixed-n at its planned n (exact) | Kayenta Mann-Whitney, re-run every 1,000 | threshold, "
           "fail on 1st breach | threshold, fail on 5th breach | this judge: PASS rate, median / p90 responses |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, share in enumerate((0.05, 0.2, 0.5)):
        row = error_row(f"errors 0.5% = 0.5%, {100 * share:g}%", share, 0.005, 0.005, runs, 20_000, 10 + i)
        n, pf, _ = fixed(share, 0.005, 0.005, ERR_MARGIN)
        KEY[f"kayenta_null_{share}"] = float(np.mean(row.kayenta > 0))
        KEY[f"threshold_null_{share}"] = float(np.mean(row.thresh1 > 0))
        KEY[f"ours_null_{share}"] = row.ours.rate("FAIL")
        out.append(_null_line(row, runs, f"{pf:.4f} (n = {n:,})"))
    for i, share in enumerate((0.05, 0.2, 0.5)):
        row = latency_row(f"latency equal, {100 * share:g}%", share, PRODUCTION, runs, 20_000, 20 + i, 2 * P99)
        n, pf, _ = fixed(share, 0.05, 0.05, SLOW_MARGIN)
        out.append(_null_line(row, runs, f"{pf:.4f} (n = {n:,})"))
    out += ["", "Errors: both versions fail 0.5% of calls; the threshold check is \"canary error rate below 1% in the "
            "interval\" (Flagger's request-success-rate 99, Argo's successCondition). Latency: both "
            f"LogNormal(median {MEDIAN_MS:g} ms, sigma {SIGMA:g}); the judge's slow threshold is production's p95 "
            "over a 200-response warm-up (not reused); Kayenta compares the mean latency of each 500-response step; "
            f"the threshold check is \"canary p99 below {2 * P99:.1f} ms\" (twice production's true p99: a tuned "
            "limit). Fixed-n rows are exact sums given the planned counts (latency: at the true p95)."]
    return out


def _null_line(row: Row, runs: int, fixed_text: str) -> str:
    def ever(first: np.ndarray) -> str:
        return rate(float(np.mean(first > 0)), runs)

    return (f"| {row.name} | {rate(row.ours.rate('FAIL'), runs)} | {rate(row.batched.rate('FAIL'), runs)} | "
            f"{fixed_text} | **{ever(row.kayenta)}** | **{ever(row.thresh1)}** | {ever(row.thresh5)} | "
            f"{row.ours.rate('PASS'):.3f}, {spread(row.ours.stopped_at)} |")


def power_section(runs: int) -> list[str]:
    out = ["**Detection: responses until the canary is failed** (median / p90 over the runs; \"never\" when more "
           "than half / a tenth of the runs were not failed within the horizon), and the share failed:", "",
           "| bad canary (share) | horizon | this judge, every response | every 1,000 | fixed-n: planned n, "
           "P(FAIL) exact | Kayenta every 1,000 | threshold 1st breach | threshold 5th breach |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    specs = [("errors 5% vs 0%", 0.05, 0.05, 0.0, 20_000), ("errors 5% vs 0%", 0.2, 0.05, 0.0, 20_000),
             ("errors 5% vs 0%", 0.5, 0.05, 0.0, 20_000)]
    for i, (name, share, pc, pp, horizon) in enumerate(specs):
        row = error_row(name, share, pc, pp, runs, horizon, 40 + i)
        n, pf, _ = fixed(share, pc, pp, ERR_MARGIN)
        KEY[f"ours_5v0_{share}"] = float(np.percentile(row.ours.stopped_at, 50, method="inverted_cdf"))
        KEY[f"ours90_5v0_{share}"] = float(np.percentile(row.ours.stopped_at, 90, method="inverted_cdf"))
        KEY[f"kayenta90_5v0_{share}"] = float(np.percentile(_as_stops(row.kayenta), 90, method="inverted_cdf"))
        out.append(_power_line(row, share, f"{n:,}, {pf:.3f}"))
    long_runs = max(100, runs // 5)
    row = error_row(f"errors 1% vs 0.5% ({long_runs:,} runs; Kayenta every 10,000)", 0.2, 0.01, 0.005, long_runs,
                    150_000, 50, kayenta_every=20)
    n, pf, _ = fixed(0.2, 0.01, 0.005, ERR_MARGIN)
    out.append(_power_line(row, 0.2, f"{n:,}, {pf:.3f}"))
    for i, (name, share, model, horizon, slow_c) in enumerate([
            ("latency +40 ms", 0.05, lognormal_latency(MEDIAN_MS, SIGMA, shift_ms=40.0), 20_000, 1.0),
            ("latency +40 ms", 0.2, lognormal_latency(MEDIAN_MS, SIGMA, shift_ms=40.0), 20_000, 1.0),
            ("latency +20% (p95 +20%)", 0.2, lognormal_latency(MEDIAN_MS, SIGMA, scale=1.2), 20_000, 0.10017),
            ("latency +20% (p95 +20%)", 0.5, lognormal_latency(MEDIAN_MS, SIGMA, scale=1.2), 20_000, 0.10017)]):
        row = latency_row(name, share, model, runs, horizon, 60 + i, 2 * P99)
        n, pf, _ = fixed(share, slow_c, 0.05, SLOW_MARGIN)
        out.append(_power_line(row, share, f"{n:,}, {pf:.3f}"))
    out += ["", "Latency +40 ms moves every canary response above production's p95 (9.1 ms): the sequential judge "
            "fails it as soon as production's 200-response warm-up has set the threshold (the fixed-n column assumes "
            "the threshold given). +20% (every canary latency x1.2) takes its share above that p95 from 5% to 10%. "
            "Threshold checks on latency use the tuned p99 limit above; with Flagger's documented example limit "
            "(500 ms) none of these canaries is ever failed. The 1%-vs-0.5% plan is the normal approximation "
            "(exact power 0.885 for the 0.9 asked)."]
    return out


def _power_line(row: Row, share: float, fixed_text: str) -> str:
    def cell(stops: np.ndarray) -> str:
        return f"{spread(stops)} ({np.mean(np.isfinite(stops)):.2f})"

    ours = np.where(row.ours.outcome == "FAIL", row.ours.stopped_at, np.inf)
    batched = np.where(row.batched.outcome == "FAIL", row.batched.stopped_at, np.inf)
    return (f"| {row.name} ({100 * share:g}%) | {row.horizon:,} | {cell(ours)} | {cell(batched)} | {fixed_text} | "
            f"{cell(_as_stops(row.kayenta))} | {cell(_as_stops(row.thresh1))} | {cell(_as_stops(row.thresh5))} |")


def margin_section(runs: int) -> list[str]:
    """Wrong PASS with the truth on the PASS margin, and PASS speed for a healthy canary with no errors."""
    out = ["**Wrong PASS with the canary exactly at the margin** (must be at most alpha = 0.01) and **responses to "
           "PASS a healthy canary**:", "",
           "| case (share 20%) | sequential PASS | fixed-n: planned n, P(PASS) exact | sequential FAIL | "
           "responses to the verdict (median / p90) |", "| --- | --- | --- | --- | --- |"]
    for i, (name, pc, pp, margin) in enumerate([("errors 1.5% vs 0.5% (+1 pp = margin)", 0.015, 0.005, ERR_MARGIN),
                                                ("slow 10% vs 5% (+5 pp = margin)", 0.10, 0.05, SLOW_MARGIN),
                                                ("errors 0% vs 0% (healthy)", 0.0, 0.0, ERR_MARGIN)]):
        horizon = 30_000
        rng_seed = 80 + i
        runs_i = runs if pc == 0 else max(400, runs // 2)
        r = simulate_health(0.2, pc, pp, runs=runs_i, horizon=horizon, max_increase=margin, alpha=ALPHA,
                            fail_tests=FAIL_TESTS, seed=rng_seed)
        n, pf, pp_exact = fixed(0.2, pc, pp, margin) if pc < pp + margin else (0, 0.0, 0.0)
        fixed_text = f"{n:,}, {pp_exact:.4f}" if n else "n/a (the plan targets a FAIL)"
        if pc >= pp + margin:
            plan = plan_health(0.2, pp, pc - pp, max_increase=margin, fail_tests=FAIL_TESTS)
            n = plan.fixed_fail or 0
            nc = round(0.2 * n)
            _, pp_exact = fixed_n_rates(nc, n - nc, pc, pp, max_increase=margin, fail_tests=FAIL_TESTS)
            fixed_text = f"{n:,} (the FAIL plan), {pp_exact:.4f}"
        out.append(f"| {name} | {rate(r.rate('PASS'), runs_i)} | {fixed_text} | {r.rate('FAIL'):.3f} | "
                   f"{spread(r.stopped_at)} |")
    return out


def run(runs: int) -> str:
    t0 = time.time()
    lines = [HEADING, "",
             f"Run {dt.date.today().isoformat()} on {describe()}; {runs:,} simulated runs per row unless noted; "
             f"ELAPSED s. alpha {ALPHA:g} (FAIL tests at {ALPHA / FAIL_TESTS:g}: errors and latency judged), "
             f"PASS margins +{100 * ERR_MARGIN:g} pp errors / +{100 * SLOW_MARGIN:g} pp slow responses, FAIL when "
             "shown worse at all. Peers: a check every 1,000 responses (one \"interval\"); Kayenta gets one metric "
             "point per 500 responses and re-judges all points so far each interval (NetflixACAJudge: "
             "Mann-Whitney, 98% interval, tolerance 0.25); a High fails the canary.", ""]
    lines += false_alarm_section(runs) + [""]
    lines += power_section(runs) + [""]
    lines += margin_section(runs) + [""]
    worst_ours = max(KEY[f"ours_null_{s}"] for s in (0.05, 0.2, 0.5))
    lines += [f"Reading: looking after every response, or once per 1,000 (a telemetry poll), the judge's false FAIL "
              f"stays at most {worst_ours:.4f} at every canary share (alpha 0.01; e-processes are conservative). "
              f"Kayenta re-run every interval raises false alarms on an equally healthy canary in "
              f"{100 * KEY['kayenta_null_0.05']:.1f}% / {100 * KEY['kayenta_null_0.2']:.1f}% / "
              f"{100 * KEY['kayenta_null_0.5']:.1f}% of runs (5% / 20% / 50% share), a fixed 1% threshold in "
              f"{100 * KEY['threshold_null_0.05']:.0f}% / {100 * KEY['threshold_null_0.2']:.0f}% / "
              f"{100 * KEY['threshold_null_0.5']:.0f}% -- it does not compare with production, and a small canary "
              f"share makes each check noisier. A canary failing 5% of its calls is failed after a median / p90 of "
              f"{KEY['ours_5v0_0.2']:,.0f} / {KEY['ours90_5v0_0.2']:,.0f} responses at 20% share "
              f"({KEY['ours_5v0_0.05']:,.0f} / {KEY['ours90_5v0_0.05']:,.0f} at 5%); Kayenta's p90 at 5% share is "
              f"{KEY['kayenta90_5v0_0.05']:,.0f}: with 25 canary responses per point, most points show no error."]
    return "\n".join(lines).replace("ELAPSED", f"{time.time() - t0:.0f}") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--update", action="store_true", help="write the section into bench/RESULTS.md")
    args = parser.parse_args()
    text = run(args.runs)
    print(text)
    if args.update:
        update_results(text)


def update_results(section: str) -> None:
    """Replace (or append) this benchmark's section of bench/RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
