"""The suite's flake budget: every verdict judged on REAL, unseeded traffic (Envoy's random weighted pick, Locust,
Prometheus) runs at ``TEST_ALPHA``, and every binomial band on such counts at ``BAND_CONFIDENCE``.

CI runs the whole suite once and a red run blocks every merge, so a test that asserts "a correct split PASSes" at the
product's default alpha (0.01) flakes up to 1% of the time -- dozens of them flake the suite several percent of the
time. At 1e-4 per wrong verdict the summed bound over the table below stays under 1%
(tests/test_flake_budget.py checks the sum, and that every real-traffic module passes ``ALPHA_ARGS`` wherever it
asks for a verdict, so a new test cannot forget it). Seeded simulations are deterministic and are not listed.

``REAL_TRAFFIC`` is the table: module -> (verdict assertions on real traffic, the bound of a false verdict of each):
``TEST_ALPHA`` (a false FAIL / false PASS of the gate) plus, for a "must decide within n" assertion, the chance of not
deciding by that n at the test's budget. A rollout's alpha is already split over its steps by the product
(setup/rollout), so a rollout counts once.
"""

from __future__ import annotations

TEST_ALPHA = 1e-4
ALPHA_ARGS = ("--alpha", f"{TEST_ALPHA:g}")   # passed by every real-traffic verdict call
BAND_CONFIDENCE = 1.0 - TEST_ALPHA            # binomial bands on real counts (tests/test_mesh.py)

# Each entry: (verdict assertions on real traffic, bound on each being wrong). Sequential verdicts with the
# default budget (20,000 samples / 600 s) decide a correct split by ~5,000 samples at TEST_ALPHA (max of 2,000
# seeded simulations) and a 50/50 misroute of an expected 20 by 216 (max of 20,000): their bound is TEST_ALPHA.
# Fixed-n verdicts on a window of n requests: alpha + P(INCONCLUSIVE at n), the exact binomial sum over the
# project's own fixed-n judge (verifier.stats.fixed.judge) -- tests/test_flake_budget.py recomputes them.
FIXED_80_20_AT_4000 = 1.1e-4   # test_mesh_telemetry's window
FIXED_50_50_AT_6000 = 1.0e-4   # test_health_prometheus' windows
FIXED_80_20_DEMO = 2.0e-4      # test_demo: ~5,000 records at 40 s x 10 users on a loaded 2-core machine
REAL_TRAFFIC: dict[str, tuple[int, float]] = {
    "test_mesh": (2, TEST_ALPHA),                       # two binomial bands at BAND_CONFIDENCE
    "test_mesh_faults": (1, 1e-8),                      # 60..140 canary calls of 200 at 50/50: 6.3e-9
    "test_sampler_e2e": (4, TEST_ALPHA),                # 80/20 PASS (gRPC, pages), the replay, 50/50 FAIL < 400
    "test_health_mesh": (12, TEST_ALPHA),               # live + Locust (+ replay): split + health, three canaries
    "test_health_prometheus": (3, FIXED_50_50_AT_6000),  # bad canary: split PASS, health FAIL; healthy PASS
    "test_mesh_telemetry": (5, FIXED_80_20_AT_4000),    # 80/20 PASS (one window), admin, restarts, 50/50, watch
    "test_loadtest_locust": (3, TEST_ALPHA),            # the 80/20 PASS and its replays, the misroute FAIL
    "test_rollout_mesh": (5, TEST_ALPHA),               # demo's two rollouts, kill + resume, Locust source
    "test_rollout_prometheus": (2, TEST_ALPHA),         # bad canary rolled back, healthy promoted
    "test_demo": (3, FIXED_80_20_DEMO),                 # the demo's PASS (records, Prometheus), then FAIL
    "test_dispatch_order_mesh": (4, TEST_ALPHA),        # two burst-start Locust runs PASS, their replays agree
    "test_mesh_gateway_api": (6, TEST_ALPHA),           # four bands, the live --from-httproute PASS, a rollout
}

SUITE_BUDGET = 0.01   # the whole suite's false-red rate from statistics (a union bound: 0.5% with every module in)


def suite_bound() -> float:
    """Union bound on any real-traffic verdict of the suite being wrong in one run."""
    return sum(n * p for n, p in REAL_TRAFFIC.values())
