"""Seeded splits by PATIENT: train/val/test, k-fold, N-shot. No patient is ever in two parts.

Every function sorts the patient ids first and draws with ``np.random.default_rng(seed)``, so the
result depends only on the set of patients/cases and the seed (not on file-system order or any
global random state). Case id lists come back in data set order.

``ds`` may be a :class:`~scarceseg.datasets.base.Dataset` (or :class:`SliceDataset` volumes) or a
plain mapping ``case_id -> patient_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from scarceseg.datasets.base import Dataset
from scarceseg.errors import ScarcesegError

PART_NAMES = ("train", "val", "test")
PICKS = ("random", "largest")


class SplitError(ScarcesegError, ValueError):
    """A split that cannot be made (bad fractions, more folds or shots than patients)."""


def _case_patients(ds: Dataset | Mapping[str, str]) -> dict[str, str]:
    if isinstance(ds, Dataset):
        return {e.case_id: e.patient_id for e in ds.entries}
    if isinstance(ds, Mapping):
        return dict(ds)
    volumes = getattr(ds, "volumes", None)  # SliceDataset: split its volumes
    if isinstance(volumes, Dataset):
        return _case_patients(volumes)
    raise TypeError(f"expected a Dataset or a mapping case_id -> patient_id, got {type(ds).__name__}")


def _by_patient(case_patient: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for case_id, patient in case_patient.items():
        out.setdefault(patient, []).append(case_id)
    return {p: out[p] for p in sorted(out)}


def _cases_of(patients: Iterable[str], case_patient: dict[str, str]) -> list[str]:
    chosen = set(patients)
    return [c for c, p in case_patient.items() if p in chosen]


def split_counts(n: int, fractions: Iterable[float]) -> list[int]:
    """Integer part sizes summing to ``n``, by largest remainder; a part with a positive fraction
    gets at least one patient when there are enough patients."""
    fr = np.asarray(list(fractions), dtype=float)
    raw = fr * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    positive = np.flatnonzero(fr > 0)
    if n >= len(positive):
        for i in positive:
            if counts[i] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[i] = 1
    return [int(c) for c in counts]


def split_patients(
    ds: Dataset | Mapping[str, str],
    fractions: tuple[float, ...] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> dict[str, list[str]]:
    """Split patients into train/val/test and return each part's case ids.

    Parameters
    ----------
    ds : Dataset or mapping case_id -> patient_id
    fractions : (train, val, test) or (train, test)
        Fractions of *patients*, non-negative, summing to 1. Part sizes are rounded by largest
        remainder; each part with a positive fraction gets at least one patient when possible.
    seed : int

    Returns
    -------
    dict
        ``{"train": [...], "val": [...], "test": [...]}`` (no ``"val"`` for two fractions).
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) not in (2, 3) or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise SplitError(f"fractions must be 2 or 3 non-negative numbers summing to 1, got {fractions}")
    names = PART_NAMES if len(fractions) == 3 else ("train", "test")
    case_patient = _case_patients(ds)
    patients = sorted(set(case_patient.values()))
    order = [patients[i] for i in np.random.default_rng(seed).permutation(len(patients))]
    out, start = {}, 0
    for name, count in zip(names, split_counts(len(patients), fractions), strict=True):
        out[name] = _cases_of(order[start : start + count], case_patient)
        start += count
    return out


def kfold(ds: Dataset | Mapping[str, str], k: int = 5, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """K folds over patients: ``[(train_ids, test_ids), ...]``; each patient is tested exactly once.

    Fold sizes differ by at most one patient.
    """
    case_patient = _case_patients(ds)
    patients = sorted(set(case_patient.values()))
    if k < 2 or k > len(patients):
        raise SplitError(f"k must be between 2 and the number of patients ({len(patients)}), got {k}")
    order = [patients[i] for i in np.random.default_rng(seed).permutation(len(patients))]
    folds = [list(part) for part in np.array_split(np.asarray(order, dtype=object), k)]
    out = []
    for i in range(k):
        test = set(folds[i])
        out.append((_cases_of(set(patients) - test, case_patient), _cases_of(test, case_patient)))
    return out


def n_shot(
    ds: Dataset | Mapping[str, str],
    n: int,
    seed: int = 0,
    pool: Iterable[str] | None = None,
    pick: str = "random",
    drawn_order: bool = False,
) -> list[str]:
    """``n`` labelled cases from ``n`` distinct patients.

    Patients are the first ``n`` of a seeded permutation of the (sorted) patients in ``pool``, so for
    one seed a smaller N-shot set is contained in a larger one (learning curves add patients).
    One case per chosen patient:

    * ``pick="random"``: a seeded random case (drawn per patient, independent of ``n``);
    * ``pick="largest"``: the case with the most foreground (``label > 0``) — the slice a user would
      annotate; needs a Dataset (labels are read), ties go to the first case in data set order.

    Parameters
    ----------
    ds : Dataset or mapping case_id -> patient_id
    n : int
    seed : int
    pool : iterable of str, optional
        Case ids to choose from (e.g. a train split); default all.
    pick : {"random", "largest"}
    drawn_order : bool
        Return the cases in the order their patients were drawn (the first ``k`` are then the ``k``-shot
        set), not in data set order: the order a labelling loop takes them in.

    Returns
    -------
    list of str
        Case ids, in data set order (or drawn order).

    Raises
    ------
    SplitError
        ``n < 1``, fewer than ``n`` patients in the pool, or an unknown ``pick``.
    """
    if pick not in PICKS:
        raise SplitError(f"pick must be one of {PICKS}, got {pick!r}")
    case_patient = _case_patients(ds)
    if pool is not None:
        wanted = set(pool)
        unknown = wanted - case_patient.keys()
        if unknown:
            raise SplitError(f"pool holds case ids that are not in the data set: {sorted(unknown)[:5]}")
        case_patient = {c: p for c, p in case_patient.items() if c in wanted}
    by_patient = _by_patient(case_patient)
    patients = list(by_patient)
    if n < 1 or n > len(patients):
        raise SplitError(f"n-shot needs 1 <= n <= number of patients ({len(patients)}), got n={n}")
    order = np.random.default_rng(seed).permutation(len(patients))
    draws = np.random.default_rng([seed, 1]).random(len(patients))
    chosen = []
    for i in order[:n]:
        cases = by_patient[patients[i]]
        if pick == "largest":
            chosen.append(_largest(ds, cases))
        else:
            chosen.append(cases[int(draws[i] * len(cases))])
    if drawn_order:
        return chosen
    keep = set(chosen)
    return [c for c in case_patient if c in keep]


def n_shot_split(
    ds: Dataset | Mapping[str, str],
    n: int,
    seed: int = 0,
    pool: Iterable[str] | None = None,
    pick: str = "random",
) -> dict[str, list[str]]:
    """:func:`n_shot` plus the rest: ``{"train": shots, "test": every case of every other patient}``.

    With ``pool``, the test part is limited to the pool's cases.
    """
    shots = n_shot(ds, n, seed=seed, pool=pool, pick=pick)
    case_patient = _case_patients(ds)
    if pool is not None:
        wanted = set(pool)
        case_patient = {c: p for c, p in case_patient.items() if c in wanted}
    used = {case_patient[c] for c in shots}
    return {"train": shots, "test": [c for c, p in case_patient.items() if p not in used]}


def _largest(ds: Dataset | Mapping[str, str], cases: list[str]) -> str:
    if not isinstance(ds, Dataset):
        volumes = getattr(ds, "volumes", None)
        if not isinstance(volumes, Dataset):
            raise SplitError('pick="largest" needs a Dataset (it reads the labels)')
        ds = volumes
    best, best_size = None, -1
    for case_id in cases:
        try:
            label = ds.load_label(case_id)
        except ScarcesegError:
            continue
        size = -1 if label is None else int(np.count_nonzero(label))
        if size > best_size:
            best, best_size = case_id, size
    if best is None:
        raise SplitError(f"no label of patient {ds.patient_of(cases[0])!r} could be read ({', '.join(cases)})")
    return best


def check_disjoint(parts: Mapping[str, Iterable[str]] | Iterable[Iterable[str]], ds) -> None:
    """Raise :class:`SplitError` if any patient has cases in two parts (a guard for callers)."""
    case_patient = _case_patients(ds)
    groups = parts.values() if isinstance(parts, Mapping) else parts
    owner: dict[str, int] = {}
    for i, ids in enumerate(groups):
        for c in ids:
            p = case_patient[c]
            if owner.setdefault(p, i) != i:
                raise SplitError(f"patient {p!r} is in two parts (case {c!r})")
