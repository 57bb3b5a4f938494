"""The Case: one image (2D or 3D, any number of channels) with its optional label and geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Case:
    """One image with its geometry and, when known, its label.

    Axis conventions (the same everywhere in scarceseg):

    * ``image`` is ``float32`` of shape ``(C, Y, X)`` for 2D or ``(C, Z, Y, X)`` for 3D.
      A NIfTI array indexed ``[i, j, k]`` (x, y, z) becomes ``[:, k, j, i]``.
    * ``spacing`` has one entry per *spatial* axis in the same order: ``(sy, sx)`` or ``(sz, sy, sx)``,
      in millimetres. 2D photos/TIFFs without physical size get ``1.0`` (pixel units).
    * ``affine`` is the 4x4 voxel-to-world matrix of the *source file's own* index order
      (NIfTI: (i, j, k) -> RAS mm). Writers transpose back to that order before using it. ``None`` for 2D.
    * ``origin`` is the world position of the first voxel, in the spatial order above.
    * ``label`` is an integer label map of the spatial shape (``(Y, X)`` or ``(Z, Y, X)``), or ``None``.
      The binary target of every layout is ``label > 0`` (:attr:`target`): whole tumour for BraTS,
      lesion for LGG, atrium for LA.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X) or (C, Z, Y, X)
    spacing : tuple of float
    case_id : str
        Stable identifier, unique within a data set (file stem or folder name).
    patient_id : str
        Splits never put one patient in two parts.
    label : ndarray or None
    affine : ndarray (4, 4) or None
    origin : tuple of float or None
    source : Path or None
        The image file (or folder, for DICOM series) it came from.
    label_source : Path or None
    channel_names : tuple of str
        One name per channel, e.g. ``("pre-contrast", "FLAIR", "post-contrast")``.
    meta : dict
        Anything else a reader knows (original dtype, orientation codes, ...).
    """

    image: np.ndarray
    spacing: tuple[float, ...]
    case_id: str = ""
    patient_id: str = ""
    label: np.ndarray | None = None
    affine: np.ndarray | None = None
    origin: tuple[float, ...] | None = None
    source: Path | None = None
    label_source: Path | None = None
    channel_names: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.ndim not in (3, 4):
            raise ValueError(
                f"Case.image must be (C, Y, X) or (C, Z, Y, X), got shape {self.image.shape}"
            )
        if len(self.spacing) != self.image.ndim - 1:
            raise ValueError(
                f"Case.spacing needs one entry per spatial axis ({self.image.ndim - 1}), got {self.spacing}"
            )
        if self.label is not None and self.label.shape != self.image.shape[1:]:
            raise ValueError(
                f"Case.label shape {self.label.shape} differs from image spatial shape {self.image.shape[1:]}"
            )
        if not self.channel_names:
            self.channel_names = tuple(f"ch{i}" for i in range(self.image.shape[0]))

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return self.image.ndim - 1

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape ``(Y, X)`` or ``(Z, Y, X)``."""
        return tuple(self.image.shape[1:])

    @property
    def target(self) -> np.ndarray | None:
        """Binary foreground ``label > 0`` (bool, spatial shape), or ``None`` without a label."""
        return None if self.label is None else self.label > 0

    def channel(self, name_or_index: str | int) -> np.ndarray:
        """One channel as a spatial array, by index or (case-insensitive) name."""
        if isinstance(name_or_index, int):
            return self.image[name_or_index]
        lowered = [n.lower() for n in self.channel_names]
        try:
            return self.image[lowered.index(name_or_index.lower())]
        except ValueError:
            raise KeyError(
                f"case {self.case_id!r} has no channel {name_or_index!r}; it has {self.channel_names}"
            ) from None
