"""``canary-setup rollout``: walk a canary through weight steps (5 -> 20 -> 50 -> 100), each one proven on the
proxies and gated by the sequential split test (and health), rolled back automatically when a step fails.

One module per idea:

- ``plan``: the steps, durations, and the error budget each step's gates get;
- ``events``: the fsync'd JSON-lines event log (``--json-log``) and the resume state read back from it;
- ``driver``: the state machine over an injected Router and source (no process, no I/O of its own);
- ``sources``: where a step's evidence comes from (live sampling through the mesh entry, header attribution);
- ``passive``: ``--source prometheus``, the real traffic as Prometheus counts it, one count batch per poll;
- ``locustsource``: ``--source locust``, a real Locust run's responses, those started after the switch;
- ``dryrun``: a router and a source that print each action instead of doing it;
- ``targets``: the parts for the local mesh or a cluster (router, source, what to do after the promotion);
- ``report``: the HTML report of every step, built from the events;
- ``demo``: the two rollout endings ``make demo`` shows;
- ``cli``: the thin command.
"""
