"""``canary-setup rollout``: walk a canary through weight steps (5 -> 20 -> 50 -> 100), each one proven on the
proxies and gated by the sequential split test (and health), rolled back automatically when a step fails.

One module per idea: :mod:`.plan` (the steps, the per-step error budget, durations), :mod:`.events` (the fsync'd
JSON-lines event log and the resume state read from it), :mod:`.driver` (the state machine over an injected
Router and source: no process, no I/O of its own), :mod:`.sources` (where a step's evidence comes from: live
sampling through the mesh entry), :mod:`.dryrun` (every action printed, nothing touched), :mod:`.report` (the
HTML report of every step) and :mod:`.cli` (the thin command).
"""
