"""Statistics calibration: error rates, power and samples to a verdict, fixed-n vs sequential, same run.

    python -m bench.calibration [--runs 4000] [--update]

Baseline: the fixed-n test at its planned sample size (``verifier.stats.plan``) -- what a careful user would run
without the sequential gate. Everything is simulated with independent draws (Envoy's per-request split) through
the project's own code: the fixed-n verdicts come from ``verifier.stats.judge`` (evaluated once per possible
canary count, then looked up), the sequential ones from ``verifier.stats.simulation`` (numpy; checked decision for
decision against ``SequentialGate`` in tests/test_sequential.py and tests/test_batches.py). Also measured: batched
(counts-only) sources, the FAIL designs side by side (bench/fail_speed.py), the fixed-n test with three or more
versions across n (bench/fixed_sizes.py), small canaries dead and alive, and the gate's cost per observation
against a bare ``Counter`` increment.

``--update`` replaces the "## Statistics calibration" section of bench/RESULTS.md with this run's figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import stats as sps

from bench.fail_speed import DESIGNS, crossings
from bench.fixed_sizes import judge_cost, size_table
from bench.machine import describe
from splitproof.verifier.stats.fixed import judge
from splitproof.verifier.stats.planning import plan
from splitproof.verifier.stats.sequential import SequentialGate
from splitproof.verifier.stats.simulation import naive_repeated_chi_square, simulate_sequential
from splitproof.verifier.verdict import FAIL, PASS

SPLIT = {"production": 0.8, "canary": 0.2}
MULTI = {"a": 0.6, "b": 0.3, "c": 0.1}
ALPHA, TOLERANCE = 0.01, 0.05
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Statistics calibration"
DESIGN_TEXT = {"tight": "tight mixture alone (the gate before)", "betting": "plug-in Kelly bettor alone",
               "gate": "**gate now: mean of the two**"}


def fixed_rates(n: int, truths: list[float], expected: dict[str, float] = SPLIT) -> dict[float, dict[str, float]]:
    """Exact outcome probabilities of the fixed-n judge at n responses, two versions (canary = the second)."""
    names = list(expected)
    share = expected[names[1]]
    top = min(n, int(n * max(truths + [share]) * 3 + 30))
    xs = np.arange(top + 1)
    outcomes = np.array([judge({names[0]: n - x, names[1]: int(x)}, 0, expected).outcome for x in xs])
    out = {}
    for t in truths:
        pmf = sps.binom.pmf(xs, n, t)
        out[t] = {o: float(pmf[outcomes == o].sum()) for o in (PASS, FAIL)}
    return out


def se(p: float, runs: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / runs)


def rate(p: float, runs: int) -> str:
    return f"{p:.4f} (± {se(p, runs):.4f})"


def med_p90(times: np.ndarray) -> str:
    if len(times) == 0:
        return "–"
    return f"{np.median(times):,.0f} / {np.percentile(times, 90):,.0f}"


def gate_cost(observations: int = 200_000) -> tuple[float, float, float, float]:
    """(ns per SequentialGate.observe, ns per Counter increment, ns per observe_counts of a batch of 500,
    ns per Counter.update of the same 500) on the same pseudo-random stream."""
    rng = np.random.default_rng(3)
    stream = ["canary" if r < 0.2 else "production" for r in rng.random(observations)]
    counter: Counter[str] = Counter()
    start = time.perf_counter()
    for version in stream:
        counter[version] += 1
    base = (time.perf_counter() - start) / observations * 1e9
    gate = SequentialGate(SPLIT, alpha=ALPHA, tolerance=0.001)  # a margin too tight to PASS in this stream
    start = time.perf_counter()
    for version in stream:
        gate.observe(version)
    cost = (time.perf_counter() - start) / observations * 1e9
    batches = [stream[i:i + 500] for i in range(0, observations, 500)]
    counts = [Counter(b) for b in batches]
    start = time.perf_counter()
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    batch_base = (time.perf_counter() - start) / len(counts) * 1e9
    batched = SequentialGate(SPLIT, alpha=ALPHA, tolerance=0.001)
    start = time.perf_counter()
    for c in counts:
        batched.observe_counts(c)
    batch_cost = (time.perf_counter() - start) / len(counts) * 1e9
    if gate.decided or batched.decided:  # a decided gate skips the arithmetic: the figure would be wrong
        raise RuntimeError("the gate decided during the cost measurement")
    return cost, base, batch_cost, batch_base


def section_two_versions(runs: int, n: int, fixed: dict[float, dict[str, float]],
                         seq: dict[float, object]) -> list[str]:
    horizon = 4 * n
    naive = naive_repeated_chi_square(SPLIT, SPLIT, runs=runs, horizon=n, every=10, seed=7)
    naive_every = naive_repeated_chi_square(SPLIT, SPLIT, runs=runs, horizon=n, every=1, seed=8)
    ever_fail = float(np.mean(seq[0.2].first_fail > 0))
    batched = {b: simulate_sequential(SPLIT, SPLIT, runs=runs, horizon=5000, seed=200 + b, batch=b)
               for b in (50, 500)}
    e = np.array([0.8, 0.2])
    misfed = {(b, order): crossings(e, e, runs=runs // 4, horizon=5000, seed=210 + b, batch=b, order=order)
              for b in (50, 500) for order in ("production first", "canary first")}
    lines = ["**False FAIL at the correct split (80/20)** -- the promise is at most alpha = 0.01:", "",
             "| procedure | looks | false-FAIL rate |", "| --- | --- | --- |",
             f"| fixed-n exact test at n = {n:,} (exact) | 1 | {fixed[0.2][FAIL]:.4f} |",
             f"| sequential gate, horizon {horizon:,} | after every response (`observe`) | {rate(ever_fail, runs)} |"]
    for b, sim in batched.items():
        lines.append(f"| sequential gate, batches of {b}, horizon 5,000 | at batch ends (`observe_counts`) | "
                     f"{rate(float(np.mean(sim.first_fail > 0)), runs)} |")
    for (b, order), c in misfed.items():
        lines.append(f"| the same batches of {b} fed through `observe`, {order} (the mistake) | after every "
                     f"response | **{c.fail_rate('gate'):.4f}** |")
    lines += [f"| naive chi-square re-run, up to n = {n:,} | every 10 responses | **{naive:.4f}** "
              f"(x{naive / ALPHA:.1f} alpha) |",
              f"| naive chi-square re-run, up to n = {n:,} | every response | **{naive_every:.4f}** "
              f"(x{naive_every / ALPHA:.1f} alpha) |", ""]
    passes = ", ".join(f"{sim.rate(PASS):.3f} at batch {b} (median {np.median(sim.stopped_at):,.0f} responses)"
                       for b, sim in batched.items())
    lines += [f"Batched: PASS rate {passes}" +
              f"; per response {seq[0.2].rate(PASS):.3f} (median {np.median(seq[0.2].stopped_at):,.0f}). "
              "A batch sorted by version and fed response by response is a stream that really looks broken -- "
              "the order-sensitive betting part catches it at once -- which is why counts-only sources must use "
              "`observe_counts`.", ""]
    lines += ["**Outcomes and samples to a verdict** (sequential: median / 90th percentile of responses until it "
              "stopped; fixed-n always uses n):", "",
              "| true canary share | fixed-n PASS | fixed-n FAIL | sequential PASS | sequential FAIL | "
              "sequential median | p90 | p90 / fixed n |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for t in (0.2, 0.25, 0.15, 0.3, 0.5):
        s = seq[t]
        stops = s.stopped_at
        med, p90 = float(np.median(stops)), float(np.percentile(stops, 90))
        lines.append(f"| {100 * t:g}% | {fixed[t][PASS]:.3f} | {fixed[t][FAIL]:.3f} | {s.rate(PASS):.3f} | "
                     f"{s.rate(FAIL):.3f} | {med:,.0f} | {p90:,.0f} | {p90 / n:.2f} |")
    lines += ["", "At 25% and 15% the truth sits exactly on the margin: a PASS there is a false PASS (must be "
              "<= 0.01); a FAIL is correct. Sequential runs still undecided at the horizon count as neither.", ""]
    return lines


def section_fail_speed(runs: int, n: int) -> list[str]:
    e = np.array([0.8, 0.2])
    truth = {t: crossings(e, np.array([1 - t, t]), runs=runs, horizon=h, seed=seed)
             for t, h, seed in ((0.5, 400, 501), (0.3, 2000, 502), (0.25, 4 * n, 503), (0.2, 4 * n, 504))}
    batched = {b: crossings(e, e, runs=runs, horizon=5000, seed=510 + b, batch=b) for b in (50, 500)}
    lines = ["**Faster FAIL: three anytime-valid FAIL tests on the same streams** (bench/fail_speed.py; median / p90 "
             "responses to FAIL; false FAIL = ever crossing at 80/20; PASS is the same rule for all three):", "",
             "| FAIL test | 50/50 | 70/30 | 75/25 (on the margin) | false FAIL, every response | batch 50 | "
             "batch 500 | PASS at 80/20: rate, median / p90 |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for d in DESIGNS:
        null = truth[0.2]
        lines.append(f"| {DESIGN_TEXT[d]} | {med_p90(truth[0.5].fail_times(d))} | {med_p90(truth[0.3].fail_times(d))} "
                     f"| {med_p90(truth[0.25].fail_times(d))} | {rate(null.ever_fail(d), runs)} | "
                     f"{batched[50].ever_fail(d):.4f} | {batched[500].ever_fail(d):.4f} | "
                     f"{1 - null.fail_rate(d) - float(np.mean(null.first_pass == 0)):.3f}, "
                     f"{med_p90(null.pass_times(d))} |")
    lines += ["", "The bettor stakes its running add-1/2 estimate of the shares on every response (wealth "
              "prod q_t(x_t)/p(x_t)); its wealth is exactly the Krichevsky-Trofimov Dirichlet(1/2) mixture, so it "
              "is a function of the counts and joins the gate without losing the batch API. The mean of two "
              "e-processes is an e-process: FAIL at mean >= 1/alpha keeps Ville's bound exactly. For reference, "
              "the audit's own betting implementation: 50/50 at 30 / 55, 70/30 at 214.", ""]
    return lines


def section_multi(runs: int) -> list[str]:
    pm = plan(MULTI)
    mnull = simulate_sequential(MULTI, MULTI, runs=runs // 2, horizon=4 * pm.n, seed=300)
    moff = simulate_sequential(MULTI, {"a": 0.5, "b": 0.3, "c": 0.2}, runs=runs // 2, horizon=4 * pm.n, seed=301)
    lines = [f"**60/30/10** (planned fixed n = {pm.n:,}): sequential false FAIL "
             f"{rate(float(np.mean(mnull.first_fail > 0)), runs // 2)}, PASS {mnull.rate(PASS):.3f} with median "
             f"{np.median(mnull.stopped_at):,.0f} responses; at 50/30/20 FAIL {moff.rate(FAIL):.3f} with median "
             f"{np.median(moff.stopped_at):,.0f}.", "",
             "**Fixed-n, three or more versions: exact size (false-FAIL rate at the expected split) across n**, "
             "summed over every outcome (bench/fixed_sizes.py). Before: Pearson chi-square when every expected "
             "count is >= 5, the exact test below that; now: the exact multinomial test at every n.", "",
             "| split | n scanned | before: max size | before: share of n above alpha | now: max size |",
             "| --- | --- | --- | --- | --- |"]
    for split, ns, before, now in size_table(ALPHA):
        worst = int(np.argmax(before))
        lines.append(f"| {'/'.join(f'{100 * s:g}' for s in split)} | {ns[0]}–{ns[-1]} ({len(ns)} sizes) | "
                     f"{before[worst]:.4f} (n = {ns[worst]}) | {sum(b > ALPHA for b in before)}/{len(ns)} | "
                     f"**{max(now):.4f}** |")
    lines += ["", "Cost of `judge()` (ms per call; the exact test's share of it; baseline: `scipy.stats.chisquare` "
              "on the same counts, what it used before):", "",
              "| split | n | judge() | exact test | chi-square (baseline) | ratio | method |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for split in ((0.6, 0.3, 0.1), (0.98, 0.01, 0.01), (0.4, 0.3, 0.2, 0.1)):
        for n in (1_000, 10_000, 50_000):
            whole, gof, base, method = judge_cost(split, n)
            lines.append(f"| {'/'.join(f'{100 * s:g}' for s in split)} | {n:,} | {whole:.1f} | {gof:.1f} | "
                         f"{base:.2f} | x{gof / base:.0f} | {method} |")
    return lines + [""]


def section_small(runs: int) -> list[str]:
    lines = ["**Small canaries** (margin min(5 pp, share/2): ±0.5 pp for 1%, ±1.5 pp for 3%). Fixed-n: exact sums "
             "at the planned n; sequential: seeded simulation, horizon 20,000 (median / p90 responses to the "
             "verdict):", "",
             "| canary | planned fixed n | fixed-n alive: PASS / FAIL | fixed-n dead | sequential alive: PASS / "
             "FAIL, median / p90 | sequential dead: PASS / FAIL, median | dead, max_unattributed 0 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for i, share in enumerate((0.01, 0.03)):
        split = {"production": 1 - share, "canary": share}
        p = plan(split)
        fixed = fixed_rates(p.n, [share], split)[share]
        dead_fixed = judge({"production": p.n, "canary": 0}, 0, split).outcome
        alive = simulate_sequential(split, split, runs=runs // 4, horizon=20_000, seed=600 + i, chunk=50)
        dead = simulate_sequential(split, {"production": 1.0}, runs=runs // 4, horizon=20_000, seed=610 + i,
                                   chunk=50)
        strict = simulate_sequential(split, {"production": 1.0}, runs=runs // 4, horizon=20_000, seed=620 + i,
                                     chunk=50, max_unattributed=0.0)
        lines.append(f"| {100 * share:g}% | {p.n:,} (sequential path {p.sequential_pass:,}) | {fixed[PASS]:.3f} / "
                     f"{fixed[FAIL]:.3f} | {dead_fixed} | {alive.rate(PASS):.3f} / {alive.rate(FAIL):.3f}, "
                     f"{med_p90(alive.stopped_at[alive.outcome == PASS])} | {dead.rate(PASS):.3f} / "
                     f"{dead.rate(FAIL):.3f}, {np.median(dead.stopped_at):,.0f} | PASS {strict.rate(PASS):.3f} |")
    lines += ["", "Before the per-version margins (a flat ±5 pp): a dead 1% canary PASSed fixed-n at the planned n and "
              "sequentially after 537 responses; with max_unattributed 0 a dead 3% canary PASSed after 72.", ""]
    return lines


def run(runs: int) -> str:
    t0 = time.time()
    p = plan(SPLIT, TOLERANCE, ALPHA, 0.9)
    n = p.n
    truths = [0.2, 0.25, 0.15, 0.3, 0.5]
    fixed = fixed_rates(n, truths)
    seq = {t: simulate_sequential(SPLIT, {"production": 1 - t, "canary": t}, runs=runs, horizon=4 * n,
                                  seed=100 + i) for i, t in enumerate(truths)}
    lines = [HEADING + " (`bench/calibration.py`)", ""]
    lines.append(f"Run {dt.date.today().isoformat()} on {describe()}; {runs:,} simulated runs per sequential row "
                 f"(± one standard error), exact binomial/multinomial sums for fixed-n rows; ELAPSED s. Expected "
                 f"split 80/20 unless stated, alpha {ALPHA:g}, tolerance ±{100 * TOLERANCE:g} pp, power 0.9. "
                 f"Baseline: the fixed-n test at its planned n = **{n:,}** (`--plan`).")
    lines.append("")
    lines += section_two_versions(runs, n, fixed, seq)
    lines += section_fail_speed(runs, n)
    lines += section_multi(runs)
    lines += section_small(runs)
    # equal realised error rates: a sequential alpha whose actual false-FAIL rate matches the fixed-n test's
    candidates = {a: simulate_sequential(SPLIT, SPLIT, runs=runs, horizon=4 * n, alpha=a, seed=400)
                  for a in (0.015, 0.02, 0.025)}
    loose_alpha = min(candidates, key=lambda a: abs(candidates[a].rate(FAIL) - fixed[0.2][FAIL]))
    loose = candidates[loose_alpha]
    lines += [f"**Equal realised error rates**: the fixed-n test's actual false-FAIL rate is "
              f"{fixed[0.2][FAIL]:.4f}; the sequential gate run at alpha {loose_alpha:g} (of 0.015/0.02/0.025 the "
              f"closest) has {rate(loose.rate(FAIL), runs)} and PASSes a correct split after a median "
              f"{np.median(loose.stopped_at):,.0f} / p90 {np.percentile(loose.stopped_at, 90):,.0f} responses "
              f"(p90 / fixed n = {np.percentile(loose.stopped_at, 90) / n:.2f}).", ""]
    cost, base, batch_cost, batch_base = gate_cost()
    lines += [f"**Gate cost**: `SequentialGate.observe` {cost:,.0f} ns per response vs {base:,.0f} ns for a bare "
              f"`Counter` increment (x{cost / base:.0f}) -- about {1e9 / cost:,.0f} observations/s on one core, "
              f"far above what one Locust process generates; `observe_counts` of a 500-response batch "
              f"{batch_cost / 1e3:,.0f} µs vs {batch_base / 1e3:,.1f} µs for `Counter.update` "
              f"(x{batch_cost / batch_base:.0f}; {batch_cost / 500:,.0f} ns per response).", ""]
    lines += ["Reading: with a look after every response -- or after every batch of a counts-only source -- the "
              "sequential gate keeps false FAILs well under alpha, while re-running chi-square, or feeding a batch "
              "response by response in an order of one's choosing, inflates them many-fold. It stops on a gross "
              "misroute (50/50) within a few dozen responses and needs somewhat more than the fixed n to PASS a "
              "correct split -- the price of being allowed to look at any time; the fixed-n test is the better "
              "choice when the run length is set in advance (a Locust run of fixed duration, `--results`)."]
    return "\n".join(lines).replace("ELAPSED", f"{time.time() - t0:.0f}") + "\n"


def update_results(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--update", action="store_true", help="write the section into bench/RESULTS.md")
    args = parser.parse_args()
    section = run(args.runs)
    print(section)
    if args.update:
        update_results(section)


if __name__ == "__main__":
    main()
