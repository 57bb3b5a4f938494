"""Serve 3D volumes as 2D slices (for 2D methods), keeping each slice's patient id."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np

from scarceseg.datasets.base import Dataset
from scarceseg.errors import InputError
from scarceseg.io.case import Case
from scarceseg.io.checks import require_3d

#: Letter of each spatial axis of a volume ``(Z, Y, X)``, used in slice ids ``<case>_z<index>``.
AXIS_LETTERS = "zyx"


def slice_case(case: Case, index: int, axis: int = 0) -> Case:
    """One 2D slice of a 3D case.

    Parameters
    ----------
    case : Case
        Image ``(C, Z, Y, X)``.
    index : int
        Position along ``axis``.
    axis : {0, 1, 2}
        Spatial axis to cut across: 0 = axial ``z`` (slices ``(Y, X)``), 1 = ``y``, 2 = ``x``.

    Returns
    -------
    Case
        Image ``(C, A, B)`` (the two remaining axes), label likewise, spacing of those two axes,
        ``case_id`` ``"<case>_<letter><index>"`` (e.g. ``pat1_z42``), the same ``patient_id``;
        ``meta`` gains ``volume_id``, ``slice_axis`` and ``slice_index``. No affine (it is 2D).
    """
    require_3d(case)
    if axis not in (0, 1, 2):
        raise InputError(case.source, f"slice axis must be 0, 1 or 2, got {axis}")
    n = case.shape[axis]
    if not 0 <= index < n:
        raise InputError(case.source, f"slice {index} is outside 0..{n - 1} along axis {axis}")
    image = np.ascontiguousarray(np.take(case.image, index, axis=axis + 1))
    label = None if case.label is None else np.ascontiguousarray(np.take(case.label, index, axis=axis))
    meta = {**case.meta, "volume_id": case.case_id, "slice_axis": axis, "slice_index": index}
    return Case(
        image=image,
        spacing=tuple(s for i, s in enumerate(case.spacing) if i != axis),
        case_id=f"{case.case_id}_{AXIS_LETTERS[axis]}{index}",
        patient_id=case.patient_id,
        label=label,
        source=case.source,
        label_source=case.label_source,
        channel_names=case.channel_names,
        meta=meta,
    )


def iter_slices(case: Case, axis: int = 0, only_foreground: bool = False) -> Iterator[Case]:
    """All slices of a 3D case along ``axis`` (only those with ``label > 0`` if ``only_foreground``).

    A 2D case is yielded unchanged (so mixed data sets can be served as slices).
    """
    if case.ndim == 2:
        if not only_foreground or (case.label is not None and case.label.any()):
            yield case
        return
    if only_foreground:
        if case.label is None:
            return
        other = tuple(a for a in range(3) if a != axis)
        indices = np.flatnonzero(case.label.any(axis=other))
    else:
        indices = np.arange(case.shape[axis])
    for index in indices:
        yield slice_case(case, int(index), axis)


class SliceDataset:
    """A :class:`Dataset` of volumes served as 2D slices, loading one volume at a time.

    Split the *volume* data set by patient first (:mod:`scarceseg.datasets.splits`), then slice:
    every slice keeps its volume's ``patient_id``.

    Parameters
    ----------
    volumes : Dataset
    axis : {0, 1, 2}
        0 = axial slices ``(Y, X)``.
    only_foreground : bool
        Yield only slices whose label has foreground (volumes without a label yield nothing).
    """

    def __init__(self, volumes: Dataset, axis: int = 0, only_foreground: bool = False) -> None:
        if axis not in (0, 1, 2):
            raise InputError(volumes.root, f"slice axis must be 0, 1 or 2, got {axis}")
        self.volumes = volumes
        self.axis = axis
        self.only_foreground = only_foreground
        self._cache: Case | None = None

    def __repr__(self) -> str:
        return f"SliceDataset({self.volumes!r}, axis={self.axis}, only_foreground={self.only_foreground})"

    @property
    def root(self):
        return self.volumes.root

    @property
    def layout(self) -> str:
        return self.volumes.layout

    @property
    def skipped(self) -> list[tuple[str, str, str]]:
        """Volumes that failed to load (shared with the volume data set)."""
        return self.volumes.skipped

    @property
    def patient_ids(self) -> list[str]:
        return self.volumes.patient_ids

    def skipped_summary(self, limit: int = 10) -> str:
        return self.volumes.skipped_summary(limit)

    def __iter__(self) -> Iterator[Case]:
        return self.iter_cases()

    def iter_cases(self, progress: bool = False) -> Iterator[Case]:
        """Yield 2D slice Cases, volume by volume (failed volumes are skipped and recorded)."""
        for volume in self.volumes.iter_cases(progress=progress, description=f"slicing {self.layout}"):
            yield from iter_slices(volume, self.axis, self.only_foreground)

    def load(self, slice_id: str) -> Case:
        """Load one slice by its id ``<case>_<letter><index>`` (the last volume is cached)."""
        match = re.fullmatch(rf"(.+)_{AXIS_LETTERS[self.axis]}(\d+)", slice_id)
        if match is None:
            raise InputError(
                self.volumes.root, f"{slice_id!r} is not a slice id like '<case>_{AXIS_LETTERS[self.axis]}12'"
            )
        volume_id, index = match.group(1), int(match.group(2))
        if self._cache is None or self._cache.case_id != volume_id:
            self._cache = None
            self._cache = self.volumes.load(volume_id)
        return slice_case(self._cache, index, self.axis)


def stack_position(case: Case) -> tuple[str, int] | None:
    """Where a 2D slice sits in its stack: ``(stack, index)``, or ``None`` for a lone image.

    A slice cut from a volume (:func:`slice_case`) gives ``("<volume>/<axis>", slice_index)``; a file named by
    its slice number (the LGG layout, ``meta["slice"]``) gives ``(patient id, slice number)``.
    """
    meta = case.meta
    if case.ndim != 2:
        return None
    if meta.get("slice_index") is not None and meta.get("volume_id") is not None:
        return f"{meta['volume_id']}/{meta.get('slice_axis', 0)}", int(meta["slice_index"])
    if meta.get("slice") is not None and case.patient_id:
        return case.patient_id, int(meta["slice"])
    return None


class NeighbourSlices:
    """The slices next to a 2D slice in the same stack, for methods that read a few slices each side.

    ``neighbours(case, k)`` gives ``{offset: Case}`` for the offsets ``-k..-1, 1..k`` whose slice exists (a gap in
    the slice numbers is a missing neighbour, not a nearer one). Build it from a data set
    (:meth:`of_dataset`: its 2D cases with slice numbers) or from one volume (:meth:`of_volume`). Recently loaded
    slices are kept (a few), so walking a stack in order loads each slice about once.
    """

    def __init__(self, where: dict[tuple[str, int], str], load: Callable[[str], Case], keep: int = 8) -> None:
        self._where = where
        self._load = load
        self._keep = keep
        self._recent: OrderedDict[str, Case] = OrderedDict()

    @classmethod
    def of_dataset(cls, ds, load: Callable[[str], Case] | None = None,
                   only: Callable[[str], bool] | None = None) -> NeighbourSlices:
        """From a :class:`~scarceseg.datasets.base.Dataset` whose entries carry slice numbers (``meta["slice"]``);
        others give no neighbours. Use the whole folder's data set, not only the cases being segmented.
        ``load`` replaces ``ds.load``; ``only(case_id)`` keeps some entries (e.g. those the app accepted)."""
        where = {}
        for e in getattr(ds, "entries", ()):
            number = (e.info.get("meta") or {}).get("slice")
            if number is not None and e.patient_id and (only is None or only(e.case_id)):
                where[(e.patient_id, int(number))] = e.case_id
        return cls(where, load or ds.load)

    @classmethod
    def of_volume(cls, volume: Case, axis: int = 0) -> NeighbourSlices:
        """From one 3D case: its slices along ``axis`` (cut on demand)."""
        require_3d(volume)
        stack = f"{volume.case_id}/{axis}"
        where = {(stack, z): f"{volume.case_id}_{AXIS_LETTERS[axis]}{z}" for z in range(volume.shape[axis])}
        return cls(where, lambda cid: slice_case(volume, int(cid.rsplit(AXIS_LETTERS[axis], 1)[1]), axis))

    def __call__(self, case: Case, k: int) -> dict[int, Case]:
        position = stack_position(case)
        if position is None or k < 1:
            return {}
        stack, index = position
        out = {}
        for offset in (*range(-k, 0), *range(1, k + 1)):
            cid = self._where.get((stack, index + offset))
            if cid is not None:
                out[offset] = self._get(cid)
        return out

    def _get(self, case_id: str) -> Case:
        if case_id in self._recent:
            self._recent.move_to_end(case_id)
            return self._recent[case_id]
        case = self._load(case_id)
        self._recent[case_id] = case
        while len(self._recent) > self._keep:
            self._recent.popitem(last=False)
        return case
