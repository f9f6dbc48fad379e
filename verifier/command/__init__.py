"""The body of ``verify-split`` (verifier/cli.py parses the command line and imports this only then, so ``--help``,
usage and input errors never pay for scipy: ``preflight`` checks them with light modules only).

``settings``  the command line checked and converted, once, into the API's fractions
``prepare``   the expected split, the attribution and the record sinks a run needs
``preflight`` what can be refused before scipy/numpy/rich are imported: options, split, attribution, input file
``health``    ``--health``: the health options checked, and the judge the records feed
``replay``    ``--results FILE``: the records streamed into the tally
``live``      ``--target`` / ``--url``: live sampling into the tally, with ``progress`` on the terminal
``telemetry`` ``--prometheus`` / ``--envoy-admin`` / ``--access-log``: the real traffic's count batches into the
              tally (a window: one batch; ``--watch``: one per poll)
``plan``      ``--plan``: the sample-size table
``run``       one run, start to exit code: settings -> inputs -> tally -> verdict -> outputs
"""
