"""What a verdict becomes: every output carries the same facts, formatted by :mod:`verifier.fmt`.

``text``      the plain-text pieces every output shares (status words, the split test's line)
``table``     the rich table on the terminal
``jsonout``   ``--json``: the versioned verdict document (docs/verdict-schema.md)
``junit``     ``--junit``: one testcase per version plus the verdict
``markdown``  the ``$GITHUB_STEP_SUMMARY`` block
``timeline``  the streaming, bounded summary of a run the HTML report draws
``charts``    the HTML report's share-over-time and latency charts (matplotlib SVG)
``html``      ``--html``: the self-contained report page
``healthout``     the health verdict in the table, JSON, JUnit and step summary; the gate's one outcome
``healthcharts``  the HTML report's errors-over-time chart with the difference's confidence sequence
``healthhtml``    the HTML report's "Canary health" section
``writer``    writes every requested output, each attempted whatever happened to the others
"""
