"""Paired comparison of two methods on the same cases: mean difference, tests, bootstrap CI.

References
----------
.. [1] F. Wilcoxon, "Individual comparisons by ranking methods", Biometrics Bulletin 1(6):80-83,
   1945.
.. [2] B. Efron and R. J. Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall, 1993.
.. [3] L. Maier-Hein et al., "Metrics reloaded: recommendations for image analysis validation",
   Nature Methods 21:195-212, 2024.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

_BOOT_CHUNK = 1000  # resamples drawn per batch, to bound memory on large n
_CONSTANT_RTOL = 1e-9  # differences spread less than this (relative) count as a constant shift


def _bootstrap_ci(diff: np.ndarray, seed: int, n_boot: int, confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diff`` (cases resampled with replacement)."""
    rng = np.random.default_rng(seed)
    n = diff.size
    means = np.empty(n_boot)
    for start in range(0, n_boot, _BOOT_CHUNK):
        stop = min(start + _BOOT_CHUNK, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diff[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_comparison(
    a: ArrayLike, b: ArrayLike, seed: int = 0, n_boot: int = 10000, confidence: float = 0.95
) -> dict[str, Any]:
    """Compare paired per-case values of two methods (``a - b``).

    Pairs where either value is NaN (an undefined metric, see :mod:`scarceseg.metrics`) are dropped
    and counted.

    Parameters
    ----------
    a, b : array_like
        Values of methods A and B on the same cases, shape ``(n,)``, in the same case order.
    seed : int
        Seed of the bootstrap (``numpy.random.default_rng``); same seed, same interval.
    n_boot : int
        Number of bootstrap resamples.
    confidence : float
        Coverage of the bootstrap interval.

    Returns
    -------
    dict
        ``n`` (pairs used), ``n_dropped`` (pairs with a NaN), ``mean_a``, ``mean_b``,
        ``mean_diff``, ``sd_diff`` (``ddof=1``), ``median_diff``, ``ci_low``, ``ci_high``
        (percentile bootstrap of the mean difference), ``confidence``, ``p_wilcoxon`` (two-sided
        signed-rank test, zero differences dropped as in Wilcoxon's original method),
        ``p_ttest`` (two-sided paired t-test), ``n_boot`` and ``seed``.

        Degenerate cases are answered rather than raised: with all differences zero both p-values
        are 1.0 and the interval is [0, 0]; with a constant non-zero difference (spread below 1e-9
        of its size, i.e. up to rounding) the t-test p-value is 0.0 (zero variance) while the
        Wilcoxon test still gives its exact p-value; with fewer
        than two pairs the p-values (and, with none, all statistics) are NaN.

    References
    ----------
    .. [1] F. Wilcoxon, Biometrics Bulletin 1(6):80-83, 1945.
    .. [2] B. Efron and R. J. Tibshirani, "An Introduction to the Bootstrap", 1993.
    """
    from scipy import stats  # imported here: it takes half a second and most callers never need it

    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.size} and {y.size}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    diff = x - y
    n = int(diff.size)
    nan = float("nan")
    out: dict[str, Any] = {
        "n": n,
        "n_dropped": int((~keep).sum()),
        "mean_a": float(x.mean()) if n else nan,
        "mean_b": float(y.mean()) if n else nan,
        "mean_diff": float(diff.mean()) if n else nan,
        "sd_diff": float(diff.std(ddof=1)) if n > 1 else nan,
        "median_diff": float(np.median(diff)) if n else nan,
        "ci_low": nan,
        "ci_high": nan,
        "confidence": confidence,
        "p_wilcoxon": nan,
        "p_ttest": nan,
        "n_boot": n_boot,
        "seed": seed,
    }
    if n == 0:
        return out
    out["ci_low"], out["ci_high"] = _bootstrap_ci(diff, seed, n_boot, confidence)
    if n < 2:
        return out
    if np.all(diff == 0):
        out["p_wilcoxon"] = out["p_ttest"] = 1.0
        return out
    out["p_wilcoxon"] = float(stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided").pvalue)
    if np.ptp(diff) <= _CONSTANT_RTOL * np.max(np.abs(diff)):
        out["p_ttest"] = 0.0  # (numerically) zero variance with a non-zero mean: t is infinite
    else:
        out["p_ttest"] = float(stats.ttest_rel(x, y).pvalue)
    return out


def _rows(table: Any) -> list[Mapping[str, Any]]:
    """Rows of a per-case table given as a CSV path, DataFrame, collector, list of rows or column dict."""
    if isinstance(table, str | Path):
        with Path(table).open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    if hasattr(table, "rows") and isinstance(table.rows, list):  # MetricCollector
        return table.rows
    if hasattr(table, "to_dict"):  # pandas DataFrame
        return table.to_dict("records")
    if isinstance(table, Mapping):
        columns = {k: list(v) for k, v in table.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise ValueError("column dict must hold columns of equal length")
        return [dict(zip(columns, vals, strict=True)) for vals in zip(*columns.values(), strict=True)]
    if isinstance(table, Sequence):
        return list(table)
    raise TypeError(f"cannot read a per-case table from {type(table).__name__}")


def _values(table: Any, metric: str, case_col: str, name: str) -> dict[str, float]:
    """``{case_id: value}`` of one metric; a plain ``{case_id: number}`` mapping is accepted as is."""
    if isinstance(table, Mapping) and table and all(np.isscalar(v) for v in table.values()):
        return {str(k): float(v) for k, v in table.items()}
    out: dict[str, float] = {}
    for row in _rows(table):
        if case_col not in row or metric not in row:
            raise ValueError(f"{name}: a row lacks column {case_col!r} or {metric!r}")
        key = str(row[case_col])
        if key in out:
            raise ValueError(f"{name}: case {key!r} appears twice")
        value = row[metric]
        out[key] = float("nan") if value is None or value == "" else float(value)
    return out


def compare_methods(
    a: Any,
    b: Any,
    metric: str,
    case_col: str = "case_id",
    seed: int = 0,
    n_boot: int = 10000,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Paired comparison of one metric between two methods' per-case tables, matched by case id.

    Parameters
    ----------
    a, b : str, Path, DataFrame, MetricCollector, list of dict, or mapping
        Per-case results of methods A and B: a ``per_case.csv`` path, a pandas DataFrame, a
        :class:`~scarceseg.metrics.MetricCollector`, a list of row dicts, a dict of columns, or a
        plain ``{case_id: value}`` dict.
    metric : str
        Column to compare, e.g. ``"dice"``.
    case_col : str
        Column holding the case identifier (compared as strings).
    seed, n_boot, confidence
        See :func:`paired_comparison`.

    Returns
    -------
    dict
        :func:`paired_comparison`'s result (``a - b`` over the common cases, sorted by case id)
        plus ``metric``, ``n_common`` (cases in both tables), ``n_only_a`` and ``n_only_b``.

    References
    ----------
    .. [1] F. Wilcoxon, Biometrics Bulletin 1(6):80-83, 1945.
    """
    va, vb = _values(a, metric, case_col, "a"), _values(b, metric, case_col, "b")
    common = sorted(set(va) & set(vb))
    result = paired_comparison(
        [va[k] for k in common], [vb[k] for k in common], seed=seed, n_boot=n_boot, confidence=confidence
    )
    result.update(metric=metric, n_common=len(common), n_only_a=len(va) - len(common), n_only_b=len(vb) - len(common))
    return result
