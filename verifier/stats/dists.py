"""The few ``scipy.stats`` distribution functions the fixed-n verdict needs, computed the way ``scipy.stats``
computes them but without importing it: ``import scipy.stats`` alone costs about 0.7 s, ten times the rest of a
small run's start-up (bench/RESULTS.md, "Verifier start-up"). ``scipy.special`` (with numpy) is loaded anyway.

Each function returns bit for bit what the ``scipy.stats`` call named in its docstring returns, on the domain given
there: ``scipy.stats`` evaluates these with the same ``scipy.special`` ufuncs (its wrappers only check the
arguments, then scale by 1 and shift by 0). tests/test_stats_dists.py compares them with ``scipy.stats`` at many points.
The binomial quantiles and the noncentral chi-square tail are ``scipy.special``'s private Boost ufuncs that
``scipy.stats`` calls itself; with a scipy older than the one checked (or without them) they come from
``scipy.stats``, imported then.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import scipy
from scipy import special

CHECKED_SCIPY = (1, 17)  # the scipy whose scipy.stats wrappers were read and tested against


def _private_ufunc(name: str) -> Any:
    """``scipy.special._ufuncs.<name>`` when this scipy's ``scipy.stats`` is known to call it, else None."""
    found = re.match(r"(\d+)\.(\d+)", scipy.__version__)
    if found is None or (int(found[1]), int(found[2])) < CHECKED_SCIPY:
        return None
    from scipy.special import _ufuncs

    return getattr(_ufuncs, name, None)


_BINOM_PPF = _private_ufunc("_binom_ppf")
_BINOM_ISF = _private_ufunc("_binom_isf")
_NCX2_SF = _private_ufunc("_ncx2_sf")


def norm_ppf(q: float) -> float:
    """``scipy.stats.norm.ppf(q)`` for 0 < q < 1 (``scipy.stats``: ``special.ndtri``)."""
    return float(special.ndtri(q))


def chi2_ppf(q: float, df: int) -> float:
    """``scipy.stats.chi2.ppf(q, df)`` for 0 < q < 1, df >= 1 (``scipy.stats``: ``2 gammaincinv(df / 2, q)``)."""
    return float(2 * special.gammaincinv(df / 2, q))


def ncx2_sf(x: float, df: int, nc: float) -> float:
    """``scipy.stats.ncx2.sf(x, df, nc)`` for x > 0, df >= 1, nc > 0."""
    if _NCX2_SF is None:
        from scipy import stats as sps  # an older scipy: its own call (slow import, same value)

        return float(sps.ncx2.sf(x, df, nc))
    return float(_NCX2_SF(x, df, nc))


def binom_ppf(q: float, n: np.ndarray, p: float) -> np.ndarray:
    """``scipy.stats.binom.ppf(q, n, p)`` for 0 < q < 1, integer n >= 0 (an array), 0 <= p <= 1: the smallest k
    with P(X <= k) >= q (NaN where Boost finds none, as ``scipy.stats``)."""
    if _BINOM_PPF is None:
        from scipy import stats as sps

        return np.asarray(sps.binom.ppf(q, n, p), dtype=float)
    return np.asarray(_BINOM_PPF(q, n, p), dtype=float)


def binom_isf(q: float, n: np.ndarray, p: float) -> np.ndarray:
    """``scipy.stats.binom.isf(q, n, p)`` for 0 < q < 1, integer n >= 0 (an array), 0 <= p <= 1: the smallest k
    with P(X > k) <= q."""
    if _BINOM_ISF is None:
        from scipy import stats as sps

        return np.asarray(sps.binom.isf(q, n, p), dtype=float)
    return np.asarray(_BINOM_ISF(q, n, p), dtype=float)
