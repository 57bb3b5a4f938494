"""A data set: a list of light entries (paths and ids) whose Cases are loaded lazily, one at a time."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError, ScarcesegError
from scarceseg.io.case import Case
from scarceseg.io.readers import read_mask


@dataclass(frozen=True)
class Entry:
    """One case of a data set, before loading: ids and paths only.

    Attributes
    ----------
    case_id : str
        Unique within the data set (file stem or folder name).
    patient_id : str
        Cases of one patient share it; splits never separate them.
    images : tuple of Path
        The image file(s): one per file that becomes channels (BraTS modalities), else one.
    label : Path or None
    info : dict
        Layout-specific facts (channel names, slice number, ...).
    problem : str or None
        Why this entry cannot be loaded, when that is known while scanning (e.g. its mask is
        missing); loading it raises :class:`InputError` with this reason.
    """

    case_id: str
    patient_id: str
    images: tuple[Path, ...]
    label: Path | None = None
    info: dict = field(default_factory=dict, compare=False)
    problem: str | None = None


Loader = Callable[[Entry], Case]


class Dataset:
    """Cases of one folder, in a stable order, loaded lazily.

    Iterating (``for case in ds`` or :meth:`iter_cases`) yields :class:`Case` objects one at a time
    and skips entries that fail to load: each skip is warned about and recorded in :attr:`skipped`
    as ``(case_id, path, reason)`` (once per case, however often the data set is iterated).
    :meth:`load` raises the error instead. A case whose mask cannot be used still loads (unlabelled); the
    mask's problem is warned about and recorded in :attr:`label_problems` as ``(case_id, mask path, reason)``.

    Parameters
    ----------
    root : Path
        The folder the data set was read from.
    layout : str
        Layout name (a key of :data:`scarceseg.datasets.LAYOUTS`).
    entries : iterable of Entry
    loader : callable Entry -> Case
        The layout's loading function.
    notes : list of str, optional
        Remarks from scanning (files that matched nothing, modalities left out, ...).
    """

    def __init__(
        self,
        root: Path,
        layout: str,
        entries: Iterable[Entry],
        loader: Loader,
        notes: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.layout = layout
        self.entries: list[Entry] = list(entries)
        self.loader = loader
        self.notes: list[str] = list(notes or [])
        self.skipped: list[tuple[str, str, str]] = []
        self.label_problems: list[tuple[str, str, str]] = []
        self._index = {e.case_id: i for i, e in enumerate(self.entries)}
        if len(self._index) != len(self.entries):
            counts = Counter(e.case_id for e in self.entries)
            dup = sorted(c for c, n in counts.items() if n > 1)
            raise InputError(self.root, f"case ids are not unique: {', '.join(dup[:5])}")

    # ---- ids -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.root)!r}, layout={self.layout!r}, cases={len(self)}, "
            f"patients={len(self.patient_ids)})"
        )

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._index

    @property
    def case_ids(self) -> list[str]:
        """Case ids in data set order."""
        return [e.case_id for e in self.entries]

    @property
    def patient_ids(self) -> list[str]:
        """Distinct patient ids, sorted."""
        return sorted({e.patient_id for e in self.entries})

    def entry(self, case_id: str) -> Entry:
        """The :class:`Entry` of ``case_id`` (``KeyError``-like :class:`InputError` if unknown)."""
        try:
            return self.entries[self._index[case_id]]
        except KeyError:
            raise InputError(self.root, f"no case {case_id!r} in this {self.layout} data set") from None

    def patient_of(self, case_id: str) -> str:
        """Patient id of one case."""
        return self.entry(case_id).patient_id

    def cases_by_patient(self) -> dict[str, list[str]]:
        """Patient id -> its case ids (data set order), patients sorted."""
        out: dict[str, list[str]] = {p: [] for p in self.patient_ids}
        for e in self.entries:
            out[e.patient_id].append(e.case_id)
        return out

    def subset(self, case_ids: Iterable[str]) -> Dataset:
        """A data set of the given cases only (in the given order), sharing the loader.

        Raises
        ------
        InputError
            An id that is not in this data set.
        """
        ids = list(case_ids)
        unknown = [c for c in ids if c not in self._index]
        if unknown:
            raise InputError(
                self.root, f"unknown case ids for this {self.layout} data set: {', '.join(unknown[:5])}"
            )
        return Dataset(self.root, self.layout, [self.entry(c) for c in ids], self.loader, self.notes)

    # ---- loading ---------------------------------------------------------------------------------
    def load(self, case_id: str | int) -> Case:
        """Load one case (by id or position); errors are raised, not skipped.

        Raises
        ------
        ScarcesegError
            The case's file(s) are missing, corrupt or inconsistent (message names the file).
        """
        entry = self.entries[case_id] if isinstance(case_id, int) else self.entry(case_id)
        if entry.problem is not None:
            raise InputError(entry.images[0] if entry.images else self.root, entry.problem)
        case = self.loader(entry)
        problem = case.meta.get("label_problem")
        if problem is not None and not any(p[0] == entry.case_id for p in self.label_problems):
            self.label_problems.append((entry.case_id, *problem))
            warnings.warn(f"case {entry.case_id}: mask ignored, the image is read unlabelled: "
                          f"{problem[0]}: {problem[1]}", stacklevel=2)
        return case

    def __getitem__(self, key: str | int) -> Case:
        return self.load(key)

    def load_label(self, case_id: str) -> np.ndarray | None:
        """Only the label map of one case (cheaper than :meth:`load` for 2D layouts), or None."""
        entry = self.entry(case_id)
        if entry.problem is not None:
            raise InputError(entry.images[0] if entry.images else self.root, entry.problem)
        if entry.label is None:
            return None
        return read_mask(entry.label, h5_axes=entry.info.get("read_options", {}).get("h5_axes"))

    def __iter__(self) -> Iterator[Case]:
        return self.iter_cases()

    def iter_cases(self, progress: bool = False, description: str | None = None,
                   status: Callable[[], str] | None = None) -> Iterator[Case]:
        """Yield the cases one at a time, skipping (and recording) those that fail to load.

        Parameters
        ----------
        progress : bool
            Report progress on stderr (see :func:`scarceseg.progress.track`).
        description : str, optional
            Text beside the progress bar (default: ``"loading <layout>"``).
        status : callable, optional
            What the current case is doing, shown after the bar (:func:`scarceseg.progress.track`).
        """
        from scarceseg.progress import track

        entries: Iterable[Entry] = track(self.entries, description=description or f"loading {self.layout}",
                                         enabled=progress, status=status)
        for entry in entries:
            try:
                case = self.load(entry.case_id)
            except ScarcesegError as exc:
                self._record_skip(entry, exc)
                continue
            yield case

    def _record_skip(self, entry: Entry, exc: ScarcesegError) -> None:
        reason = getattr(exc, "reason", None) or str(exc)
        where = getattr(exc, "path", None) or (entry.images[0] if entry.images else self.root)
        if any(s[0] == entry.case_id for s in self.skipped):
            return
        self.skipped.append((entry.case_id, str(where), reason))
        message = f"skipping case {entry.case_id}: {where}: {reason}"
        warnings.warn(message, stacklevel=3)

    def skipped_summary(self, limit: int = 10) -> str:
        """One line such as ``"skipped 4 of 970 cases: A (reason), B (reason)"``."""
        n = len(self.skipped)
        if n == 0:
            return f"skipped 0 of {len(self)} cases"
        shown = ", ".join(f"{cid} ({reason})" for cid, _, reason in self.skipped[:limit])
        more = f" and {n - limit} more" if n > limit else ""
        return f"skipped {n} of {len(self)} cases: {shown}{more}"

    # ---- views -----------------------------------------------------------------------------------
    def as_slices(self, axis: int = 0, only_foreground: bool = False):
        """Serve 3D cases as 2D slices; see :class:`scarceseg.datasets.slices.SliceDataset`."""
        from scarceseg.datasets.slices import SliceDataset

        return SliceDataset(self, axis=axis, only_foreground=only_foreground)

    def summary(self) -> str:
        """One line: layout, root, number of cases and patients (and entries known to be unloadable)."""
        text = f"{self.layout} data set {self.root}: {len(self)} cases of {len(self.patient_ids)} patients"
        problems = sum(e.problem is not None for e in self.entries)
        if problems:
            text += f" ({problems} known unloadable)"
        return text
