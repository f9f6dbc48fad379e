"""Canary health: is the canary worse than production (errors, slow responses)? The method: docs/health-method.md.

``model``       the types: criteria, per-metric counts, rows, metric and health verdicts
``difference``  inference on the difference of two rates: exact unconditional tests, e-values, bounds
``latency``     what "slow" means: a threshold given, or set by a production-only warm-up
``decide``      rows -> metric outcomes -> the health outcome and its reason (both judges)
``fixed``       ``judge_health()``: the fixed-n judge
``sequential``  ``HealthMonitor``: the anytime-valid judge (responses or telemetry batches)
``plan``        sample sizes for both judges
``simulation``  the judges vectorised, for calibration
``peers``       Kayenta's and the fixed-threshold judges, re-implemented to be calibrated side by side
``combined``    the split verdict and the health verdict as the gate's one outcome
``options``     ``HealthOptions``: the settings in one object, and the judges built from them (CLI, Locust, drivers)
``responses``   ``ResponseHealth``: response records (results files, live sampling, Locust) fed to the judges
``batches``     a telemetry count batch as the health judge's error counts (what the tally feeds it)
"""
