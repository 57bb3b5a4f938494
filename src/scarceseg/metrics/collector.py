"""Collect per-case metrics, write ``per_case.csv`` and ``summary.json``, print a summary table.

The files follow nnU-Net's evaluation habit: one row per case with its identifiers and metric
values, and a summary with, per metric, the mean, SD, median, min, max over the cases where the
metric is defined, ``n`` such cases and ``n_nan`` cases where it is not (see the empty-mask
policy in :mod:`scarceseg.metrics`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from scarceseg.metrics.standard import STANDARD_METRICS, compute_all

SUMMARY_FIELDS: tuple[str, ...] = ("mean", "sd", "median", "min", "max", "n", "n_nan")


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """Summary statistics of one metric over cases, leaving NaN out and counting it.

    Parameters
    ----------
    values : sequence of float
        One value per case; NaN marks an undefined value.

    Returns
    -------
    dict
        ``mean``, ``sd`` (sample SD, ``ddof=1``), ``median``, ``min``, ``max`` over the non-NaN
        values (None when there are none; ``sd`` None with fewer than two), ``n`` the number of
        non-NaN values and ``n_nan`` the number of NaN values.
    """
    arr = np.asarray(values, dtype=float).ravel()
    nan = np.isnan(arr)
    ok = arr[~nan]
    out: dict[str, float | int | None] = dict.fromkeys(SUMMARY_FIELDS[:5])
    if ok.size:
        out.update(
            mean=float(np.mean(ok)),
            median=float(np.median(ok)),
            min=float(np.min(ok)),
            max=float(np.max(ok)),
            sd=float(np.std(ok, ddof=1)) if ok.size > 1 else None,
        )
    out["n"] = int(ok.size)
    out["n_nan"] = int(nan.sum())
    return out


#: Metrics measured as distances (mm with a known spacing, else pixels).
DISTANCE_METRICS = ("hd95", "assd")


class MetricCollector:
    """Accumulates the standard metrics of many cases and writes them out.

    Parameters
    ----------
    metrics : sequence of str, optional
        Metric columns to keep, a subset of :data:`~scarceseg.metrics.STANDARD_METRICS` (default all).
    **options
        Passed to :func:`~scarceseg.metrics.compute_all` (``dilation_ratio``, ``dilation_mm``).

    Examples
    --------
    >>> import numpy as np
    >>> col = MetricCollector()
    >>> gt = np.zeros((8, 8), bool); gt[2:5, 2:5] = True
    >>> row = col.add("case1", gt, gt, method="unet")
    >>> row["dice"], row["method"]
    (1.0, 'unet')
    """

    def __init__(self, metrics: Sequence[str] | None = None, **options: Any):
        self.metrics = tuple(STANDARD_METRICS if metrics is None else metrics)
        unknown = [m for m in self.metrics if m not in STANDARD_METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(STANDARD_METRICS)}")
        self.options = options
        self.rows: list[dict[str, Any]] = []
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self.rows)

    def _row(self, case_id: str, values: Mapping[str, float], extra: Mapping[str, Any]) -> dict[str, Any]:
        clash = [k for k in extra if k == "case_id" or k in self.metrics]
        if clash:
            raise ValueError(f"extra columns {clash} clash with case_id or metric names")
        if str(case_id) in self._ids:
            raise ValueError(f"case_id {case_id!r} was already added (use one collector per method)")
        row: dict[str, Any] = {"case_id": str(case_id), **extra}
        row.update({m: float(values[m]) for m in self.metrics})
        self._ids.add(row["case_id"])
        self.rows.append(row)
        return row

    def add(
        self, case_id: str, pred: ArrayLike, gt: ArrayLike, spacing: Sequence[float] | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Compute the metrics of one case and store them as a row.

        Parameters
        ----------
        case_id : str
            Unique identifier of the case (a duplicate raises ValueError).
        pred, gt : array_like
            Prediction and ground truth, ``(Y, X)`` or ``(Z, Y, X)``.
        spacing : sequence of float, optional
            Voxel size per axis in mm.
        **extra
            Further columns for this row, e.g. ``method="unet", patient="TCGA_CS_4941"``.

        Returns
        -------
        dict
            The stored row: ``case_id``, the extra columns, then the metrics.
        """
        return self._row(case_id, compute_all(pred, gt, spacing, **self.options), extra)

    def add_values(self, case_id: str, values: Mapping[str, float], **extra: Any) -> dict[str, Any]:
        """Store a row of metric values computed elsewhere (every kept metric must be present)."""
        missing = [m for m in self.metrics if m not in values]
        if missing:
            raise ValueError(f"values for case {case_id!r} lack metrics {missing}")
        return self._row(case_id, values, extra)

    def columns(self) -> list[str]:
        """``case_id``, the extra columns in order of first appearance, then the metrics."""
        cols = ["case_id"]
        for row in self.rows:
            cols += [k for k in row if k not in cols and k not in self.metrics]
        return cols + list(self.metrics)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """Per metric: ``mean``, ``sd``, ``median``, ``min``, ``max``, ``n`` and ``n_nan`` (see :func:`summarize`)."""
        return {m: summarize([r[m] for r in self.rows]) for m in self.metrics}

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``per_case.csv`` and ``summary.json`` into ``out_dir`` (created if needed).

        The CSV has one row per case; NaN is written as ``nan``, a missing extra column as an empty
        field. The JSON maps each metric to its summary; undefined numbers are ``null``.

        Returns
        -------
        tuple of Path
            Paths of the CSV and the JSON file.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = out / "per_case.csv", out / "summary.json"
        with csv_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns(), restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        with json_path.open("w", encoding="utf-8") as fh:
            json.dump(self.summary(), fh, indent=2, allow_nan=False)
            fh.write("\n")
        return csv_path, json_path

    def format_table(self, distance_unit: str | None = None) -> str:
        """Plain-text table: one line per metric with mean ± SD, median, n and NaN count.

        Parameters
        ----------
        distance_unit : str, optional
            Unit of the distance metrics (HD95, ASSD), shown beside their names: ``"mm"`` when the spacing
            was known, ``"px"`` when distances are in pixels.

        The SD of a single value is undefined and shown as ``n/a``; a metric without any value as ``-``.
        """
        header = ("metric", "mean ± SD", "median", "n", "NaN")
        lines = [header]
        for metric, s in self.summary().items():
            sd = "n/a" if s["sd"] is None else f"{s['sd']:.4f}"
            mean_sd = "-" if s["mean"] is None else f"{s['mean']:.4f} ± {sd}"
            median = "-" if s["median"] is None else f"{s['median']:.4f}"
            name = f"{metric} ({distance_unit})" if distance_unit and metric in DISTANCE_METRICS else metric
            lines.append((name, mean_sd, median, str(s["n"]), str(s["n_nan"])))
        widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
        fmt = [
            "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)])
            for row in lines
        ]
        return "\n".join([fmt[0], "-" * len(fmt[0]), *fmt[1:]])
