"""The split statistics: is each version's share what the split says?

Building blocks first, then the two judges that use them:

``exact``       binomial tails, Clopper-Pearson intervals, the exact multinomial test (fixed-n)
``dists``       the few scipy.stats functions those need, bit for bit, without importing scipy.stats (0.7 s)
``mixture``     mixture likelihood ratios: e-values and confidence sequences (sequential)
``margins``     each version's PASS margin, expected +- min(tolerance, share / 2)
``checks``      validation of parameters and counts (one line per bad input)
``intervals``   the one interval shown per method (table, HTML band, live views)
``decide``      rows -> outcome and one-line reason (both judges)
``fixed``       ``judge()``: the fixed-n verdict
``sequential``  ``SequentialGate``: the anytime-valid verdict
``path``        where the gate decides along a deterministic path
``planning``    ``plan()`` and the "about N more samples" of an INCONCLUSIVE
``simulation``  the gates vectorised, for calibration and tests
``concurrency`` simulated concurrent load: the gate fed in completion vs dispatch order
"""
