"""Evaluate a folder of predicted masks against a data set's truth (``scarceseg evaluate``).

Predictions are named ``<case_id>.png`` (2D) or ``<case_id>.nii.gz`` / ``<case_id>.nii`` (3D), the way
every scarceseg method writes them, or ``<case_id>.dcm`` (a DICOM SEG of a DICOM case, ``segment --format
dicom-seg``). Cases without a prediction, predictions without a case and cases
that cannot be read are listed (every one of them), never silently dropped; the metrics are computed on
the rest. A case whose image cannot be read but whose truth mask can is still scored, from the mask alone
(distances then in pixels). HD95 and ASSD are in mm when the spacing is known, else in px; the table says
which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scarceseg.errors import InputError, ScarcesegError

PRED_ENDINGS = (".png", ".nii.gz", ".nii", ".dcm")


def _case_id_of(path: Path) -> str | None:
    name = path.name
    for ending in PRED_ENDINGS:
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return None


def find_predictions(pred_dir: str | Path) -> dict[str, Path]:
    """Map case id -> prediction file for every ``.png`` / ``.nii.gz`` / ``.nii`` file in ``pred_dir``.

    Raises
    ------
    InputError
        The folder does not exist, is not a folder, holds no prediction, or holds two files for one case.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise InputError(pred_dir, "prediction folder does not exist" if not pred_dir.exists() else "not a folder")
    found: dict[str, Path] = {}
    for path in sorted(pred_dir.iterdir()):
        case_id = _case_id_of(path)
        if case_id is None or not path.is_file():
            continue
        if case_id in found:
            raise InputError(path, f"two predictions for case {case_id!r}: {found[case_id].name} and {path.name}")
        found[case_id] = path
    if not found:
        raise InputError(pred_dir, f"no prediction files ({', '.join(PRED_ENDINGS)}) in this folder")
    return found


@dataclass
class EvaluationResult:
    """What :func:`evaluate_folder` measured and what it could not."""

    summary: dict
    table: str
    n_evaluated: int
    per_case_csv: Path
    summary_json: Path
    missing: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    truth_only: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)

    def report(self) -> str:
        """The printed table plus one line for each kind of problem."""
        lines = [self.table, f"evaluated {self.n_evaluated} cases -> {self.per_case_csv}, {self.summary_json}"]
        if self.missing:
            lines.append(f"no prediction for {len(self.missing)} cases: {_short(self.missing)}")
        if self.unmatched:
            lines.append(f"{len(self.unmatched)} predictions match no case: {_short(self.unmatched)}")
        if self.empty:
            lines.append(f"{len(self.empty)} cases with an empty mask (distances undefined, NaN in the table): "
                         f"{', '.join(self.empty)}")
        if self.truth_only:
            lines.append(f"scored {len(self.truth_only)} cases from the truth mask alone (image unreadable, "
                         f"distances in px): {', '.join(self.truth_only)}")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} cases:")
            lines.extend(f"  skipped {cid}: {why}" for cid, why in self.skipped)
        return "\n".join(lines)


def _short(items: list[str], k: int = 8) -> str:
    return ", ".join(items[:k]) + (f" and {len(items) - k} more" if len(items) > k else "")


def evaluate_folder(
    pred_dir: str | Path,
    gt_dir: str | Path,
    out_dir: str | Path,
    layout: str | None = None,
    method: str = "",
    progress: bool = False,
) -> EvaluationResult:
    """Compute every metric for every case that has both a prediction and a readable truth.

    Parameters
    ----------
    pred_dir : path
        Folder of ``<case_id>.png`` / ``<case_id>.nii.gz`` masks (non-zero = foreground).
    gt_dir : path
        Data set folder in any layout :func:`scarceseg.datasets.open_dataset` knows.
    out_dir : path
        Receives ``per_case.csv`` and ``summary.json``.
    layout : str, optional
        Force a layout instead of auto-detecting it.
    method : str
        Written in a ``method`` column when given.
    progress : bool
        Show a progress bar.

    Returns
    -------
    EvaluationResult
    """
    from scarceseg.datasets import open_dataset
    from scarceseg.io import read_mask
    from scarceseg.metrics import MetricCollector
    from scarceseg.progress import track

    preds = find_predictions(pred_dir)
    ds = open_dataset(gt_dir, layout=layout)
    case_ids = set(ds.case_ids)
    missing = [cid for cid in ds.case_ids if cid not in preds]
    unmatched = [cid for cid in preds if cid not in case_ids]
    todo = [cid for cid in ds.case_ids if cid in preds]
    if not todo:
        raise InputError(
            pred_dir, f"none of its {len(preds)} predictions is named after a case of {gt_dir} "
            f"(expected names like {ds.case_ids[0]}.png)" if ds.case_ids else f"data set {gt_dir} has no cases"
        )

    collector = MetricCollector()
    skipped: list[tuple[str, str]] = []
    truth_only: list[str] = []
    empty: list[str] = []
    units: set[str] = set()
    for case_id in track(todo, description="evaluating", enabled=progress):
        try:
            truth, spacing, known, patient, case = _truth(ds, case_id)
            if truth is None:
                raise InputError(ds.entry(case_id).images[0], "the data set has no label for this case")
            seg = preds[case_id].name.lower().endswith(".dcm")  # a DICOM SEG is placed on its source's grid
            pred = read_mask(preds[case_id], like=case if seg else None) > 0
            if pred.shape != truth.shape:
                raise InputError(preds[case_id], f"prediction shape {pred.shape} differs from the truth's "
                                                 f"{truth.shape}")
        except ScarcesegError as exc:
            skipped.append((case_id, str(exc)))
            continue
        if spacing is None:
            truth_only.append(case_id)
        if not pred.any() or not (truth > 0).any():
            empty.append(f"{case_id} ({'prediction' if not pred.any() else 'truth'} empty)")
        units.add("mm" if known else "px")
        extra = {"patient_id": patient}
        if method:
            extra["method"] = method
        collector.add(case_id, pred, truth > 0, spacing=spacing, **extra)
    if collector.rows == []:
        raise InputError(pred_dir, f"no case could be evaluated; first problem: {skipped[0][1]}")
    out_dir = Path(out_dir)
    collector.write(out_dir)
    unit = units.pop() if len(units) == 1 else "mm where the spacing is known, else px"
    return EvaluationResult(
        summary=collector.summary(),
        table=collector.format_table(distance_unit=unit),
        n_evaluated=len(collector.rows),
        per_case_csv=out_dir / "per_case.csv",
        summary_json=out_dir / "summary.json",
        missing=missing,
        unmatched=unmatched,
        skipped=skipped,
        truth_only=truth_only,
        empty=empty,
    )


def _truth(ds, case_id: str):
    """``(label, spacing, spacing_known, patient_id, case)`` of a case; when its image cannot be read but its
    truth mask can, the mask alone with ``spacing=None`` (distances in pixels) and ``case=None``."""
    try:
        case = ds.load(case_id)
    except ScarcesegError as exc:
        try:
            label = ds.load_label(case_id)
        except ScarcesegError:
            label = None
        if label is None:
            raise exc from None
        return label, None, False, ds.patient_of(case_id), None
    problem = case.meta.get("label_problem")
    if case.label is None and problem is not None:
        raise InputError(problem[0], problem[1])
    known = bool(case.meta.get("spacing_known", True))
    return case.label, case.spacing, known, case.patient_id, case
