"""The images and volumes of the opened folder: a data set layout, or a plain folder of image files.

Every source file is resolved (symlinks followed) and must lie inside the opened folder; a case whose
files point outside is left out and listed in :attr:`Catalog.refused`. Cases are loaded lazily and a
few are kept in memory (volumes are large).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError, ScarcesegError
from scarceseg.io.case import Case
from scarceseg.web.security import PathOutside, check_inside

SLICE_SEP = "_z"  # slice z of volume V is proposed and picked as case "V_z<z>" (as in store.picking)


@dataclass(frozen=True)
class CaseRef:
    """One case of the folder: its id and the files it is read from (all inside the folder)."""

    case_id: str
    files: tuple[Path, ...]


def slice_key(case_id: str, z: int | None) -> str:
    """The id a 2D unit of work is stored under: the case id in 2D, ``<case>_z<z>`` for slice z of a volume."""
    return case_id if z is None else f"{case_id}{SLICE_SEP}{int(z)}"


def display_channel(case: Case) -> np.ndarray:
    """The channel shown and refined: the one named FLAIR when there, else channel 0 (as the proposer does)."""
    lowered = [n.lower() for n in case.channel_names]
    return np.asarray(case.image[lowered.index("flair") if "flair" in lowered else 0], dtype=np.float32)


class Catalog:
    """The cases of ``root`` in a stable order.

    Parameters
    ----------
    root : Path
        The opened folder.
    layout : str, optional
        Force a data set layout; by default it is detected, and a folder no layout matches is read as
        a folder of image files (each file one case; hidden files and sub-folders ignored).
    cache : int
        Cases kept loaded.
    """

    def __init__(self, root: str | Path, layout: str | None = None, cache: int = 4) -> None:
        from scarceseg.datasets import open_dataset
        from scarceseg.io import is_supported_file, stem_of

        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise InputError(root, "not a folder")
        self.refused: list[tuple[str, str]] = []
        self._ds = None
        refs: list[CaseRef] = []
        try:
            self._ds = open_dataset(self.root, layout=layout)
            candidates = [(e.case_id, (*e.images, *([e.label] if e.label else []))) for e in self._ds.entries]
            self.layout = self._ds.layout
        except ScarcesegError:
            if layout is not None:
                raise
            files = sorted(p for p in self.root.iterdir() if not p.name.startswith(".") and p.is_file()
                           and is_supported_file(p))
            candidates = [(stem_of(p), (p,)) for p in files]
            self.layout = "files"
        seen: set[str] = set()
        for case_id, files in candidates:
            try:
                for f in files:
                    check_inside(self.root, f)
            except PathOutside as exc:
                self.refused.append((case_id, exc.reason if hasattr(exc, "reason") else str(exc)))
                continue
            if case_id in seen or not case_id or case_id.startswith("."):
                self.refused.append((case_id, "repeated or unusable case id"))
                continue
            seen.add(case_id)
            refs.append(CaseRef(case_id, tuple(Path(f) for f in files)))
        self.refs = {r.case_id: r for r in refs}
        self._cache: OrderedDict[str, Case] = OrderedDict()
        self._size = int(cache)
        self._lock = threading.Lock()
        self._ranges: dict[str, tuple[float, float]] = {}

    @property
    def case_ids(self) -> list[str]:
        return list(self.refs)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self.refs

    def load(self, case_id: str) -> Case:
        """The case (cached); KeyError for an id that is not in the folder."""
        from scarceseg.io import read_image

        ref = self.refs[case_id]  # KeyError: unknown
        with self._lock:
            if case_id in self._cache:
                self._cache.move_to_end(case_id)
                return self._cache[case_id]
        for f in ref.files:  # re-check: a file may have been replaced by a symlink since the scan
            check_inside(self.root, f)
        case = self._ds.load(case_id) if self._ds is not None else read_image(ref.files[0])
        for f in case.meta.get("dicom_files", ()):  # a DICOM series is a folder: each of its files stays inside
            check_inside(self.root, f)
        if not case.case_id:
            case.case_id = case_id
        with self._lock:
            self._cache[case_id] = case
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return case

    def neighbours(self):
        """The slices around each 2D slice of a stack in this folder (a
        :class:`~scarceseg.datasets.slices.NeighbourSlices`, loading through :meth:`load`)."""
        from scarceseg.datasets.slices import NeighbourSlices

        return NeighbourSlices.of_dataset(self._ds, load=self.load, only=self.__contains__)

    def slice_case(self, case_id: str, z: int | None) -> Case:
        """The 2D case to propose and refine: the case itself (2D) or slice ``z`` of the volume (3D)."""
        case = self.load(case_id)
        if case.ndim == 2:
            if z is not None:
                raise InputError(None, f"case {case_id!r} is 2D; it has no slice {z}")
            return case
        if z is None or not 0 <= z < case.shape[0]:
            raise InputError(None, f"case {case_id!r} is a volume with {case.shape[0]} slices; give z in range")
        return Case(image=np.ascontiguousarray(case.image[:, z]), spacing=tuple(case.spacing[1:]),
                    case_id=slice_key(case_id, z), patient_id=case.patient_id,
                    channel_names=case.channel_names, source=case.source)

    def display_range(self, case_id: str) -> tuple[float, float]:
        """Intensities mapped to 0 and 255 in the PNGs: the 0.5 and 99.5 percentiles of the shown channel."""
        if case_id not in self._ranges:
            data = display_channel(self.load(case_id))
            sample = data[:: max(1, data.shape[0] // 32)] if data.ndim == 3 else data
            lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
            self._ranges[case_id] = (lo, hi if hi > lo else lo + 1.0)
        return self._ranges[case_id]

    def slice_png(self, case_id: str, z: int | None) -> bytes:
        """The shown channel of the case (or of slice z) as an 8-bit grey PNG; windowing happens in the page."""
        from PIL import Image

        case = self.load(case_id)
        data = display_channel(case)
        if case.ndim == 3:
            if z is None or not 0 <= z < data.shape[0]:
                raise InputError(None, f"slice {z} is outside the volume of {data.shape[0]} slices")
            data = data[z]
        lo, hi = self.display_range(case_id)
        grey = np.clip((data - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(grey).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
