"""Prompted segmentation with the prior: one box or one click per case, for a whole folder.

``scarceseg segment --prompt boxes.json|clicks.json --data DIR --out DIR`` runs :func:`segment_prompted`.
A prompt file is JSON mapping case ids to

* a box ``{"y0": .., "x0": .., "y1": .., "x1": ..}`` (pixels, inclusive), or
* a click ``[y, x]`` (as ``segment --points`` takes it),

with, for a 3D case, a ``"z"`` key (``{"z": 40, "y0": ..}`` or ``{"z": 40, "point": [y, x]}``): the slice the
prompt is on; the mask is then propagated to the neighbouring slices (MedSAM's 3D protocol,
:func:`scarceseg.prior.prompts.propagate_volume`). Masks are written as ``<case_id>.png`` (2D) or
``<case_id>.nii.gz`` (3D, the input's geometry), as every ``segment`` does, so ``scarceseg evaluate`` reads
them. The prior sees one channel: the one named FLAIR when there (LGG: channel 1), else channel 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scarceseg.errors import CorruptFileError, InputError
from scarceseg.io.case import Case

__all__ = ["Prompt", "load_prompts", "prior_channel", "resolve_refiner", "segment_prompted"]


@dataclass(frozen=True)
class Prompt:
    """One case's prompt: a ``box`` ``(y0, x0, y1, x1)`` or a ``point`` ``(y, x)``; ``z`` for a volume."""

    box: tuple[int, int, int, int] | None = None
    point: tuple[int, int] | None = None
    z: int | None = None


def _prompt(case_id: str, value) -> Prompt:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError(f"{case_id}: a click is [y, x], got {value!r}")
        return Prompt(point=(int(value[0]), int(value[1])))
    if not isinstance(value, dict):
        raise ValueError(f"{case_id}: expected a box {{y0, x0, y1, x1}} or a click [y, x], got {value!r}")
    z = value.get("z")
    z = None if z is None else int(z)
    if "point" in value:
        point = value["point"]
        return Prompt(point=(int(point[0]), int(point[1])), z=z)
    missing = [k for k in ("y0", "x0", "y1", "x1") if k not in value]
    if missing:
        raise ValueError(f"{case_id}: the box lacks {', '.join(missing)}")
    extra = set(value) - {"y0", "x0", "y1", "x1", "z"}
    if extra:
        raise ValueError(f"{case_id}: unknown keys {sorted(extra)}")
    return Prompt(box=tuple(int(value[k]) for k in ("y0", "x0", "y1", "x1")), z=z)


def load_prompts(path: str | Path) -> dict[str, Prompt]:
    """Read a prompt file (see the module docstring).

    Raises
    ------
    InputError
        The file does not exist.
    CorruptFileError
        It is not JSON of the expected shape (the message names the case).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "prompt file does not exist")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("expected a JSON object {case_id: prompt}")
        return {str(k): _prompt(str(k), v) for k, v in raw.items()}
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise CorruptFileError(path, f"not a prompt file ({exc})") from None


def prior_channel(case: Case) -> np.ndarray:
    """The channel the prior sees: the one named FLAIR when there (as the app shows it), else channel 0."""
    from scarceseg.io.channels import pick_channel

    return pick_channel(case, "auto")


def predict_prompt(prior, case: Case, prompt: Prompt, threshold: float = 0.5) -> np.ndarray:
    """The prior's mask for one case and prompt: ``(Y, X)`` or, for a volume, ``(Z, Y, X)`` bool."""
    from scarceseg.prior.prompts import box_from_mask, clamp_box, click_to_box, propagate_volume

    image = prior_channel(case)
    if case.ndim == 2:
        if prompt.z is not None:
            raise InputError(None, "a 2D case has no slices: leave out \"z\"")
        plane = image
    else:
        if prompt.z is None:
            raise InputError(None, f"a volume of {image.shape[0]} slices: the prompt needs \"z\"")
        if not 0 <= prompt.z < image.shape[0]:
            raise InputError(None, f"z={prompt.z} is outside the volume's {image.shape[0]} slices")
        plane = image[prompt.z]
    if prompt.point is not None:
        y, x = prompt.point
        if not (0 <= y < plane.shape[0] and 0 <= x < plane.shape[1]):
            raise InputError(None, f"click ({y}, {x}) is outside the {plane.shape[0]}x{plane.shape[1]} image")
        box, prob = click_to_box(prior, plane, prompt.point)
    else:
        box = clamp_box(prompt.box, plane.shape)
        prob = prior.predict(plane, box=box).prob
    if case.ndim == 2:
        return prob > threshold
    start = box_from_mask(prob > threshold, 0) or box
    return propagate_volume(prior, image, prompt.z, start, threshold=threshold) > threshold


def segment_prompted(data_dir: str | Path, out_dir: str | Path, prompts: str | Path | dict[str, Prompt],
                     layout: str | None = None, prior=None, progress: bool = True, force: bool = False,
                     mask_format: str = "auto") -> dict:
    """Segment every case that has a prompt with the prior and write its mask.

    Parameters
    ----------
    data_dir : str or Path
        Any folder :func:`scarceseg.datasets.open_dataset` understands.
    out_dir : str or Path
        Receives ``<case_id>.png`` / ``<case_id>.nii.gz``.
    prompts : path or dict
        A prompt file (:func:`load_prompts`) or its content.
    prior : LiteMedSAM, optional
        Default: the process-wide pretrained prior.
    force : bool
        Segment again cases whose mask is already in ``out_dir`` (default: keep them, so a rerun resumes).
    mask_format : {"auto", "dicom-seg"}
        ``dicom-seg`` writes ``<case_id>.dcm`` DICOM SEGs (see :func:`scarceseg.methods.folder.segment_cases`).

    Returns
    -------
    dict
        ``written`` (paths), ``kept`` (case ids written before), ``skipped`` (``(case_id, reason)``: unreadable
        cases, bad prompts, prompts naming no case of the folder), ``notes``.
    """
    from scarceseg.datasets import open_dataset
    from scarceseg.methods.folder import segment_cases

    table = prompts if isinstance(prompts, dict) else load_prompts(prompts)
    if not table:
        raise InputError(prompts if not isinstance(prompts, dict) else None, "the prompt file names no case")
    known = set(open_dataset(data_dir, layout=layout).case_ids)
    unknown = [(cid, "not a case of the data folder") for cid in table if cid not in known]
    ids = [cid for cid in table if cid in known]
    if prior is None:
        from scarceseg.prior import get_prior

        prior = get_prior()

    def predict(case: Case) -> tuple[np.ndarray, str]:
        mask = predict_prompt(prior, case, table[case.case_id])
        return mask, f"{case.case_id}.png" if case.ndim == 2 else f"{case.case_id}.nii.gz"

    result = segment_cases(data_dir, out_dir, predict, description="segmenting with the prior (prompts)",
                           case_ids=ids, layout=layout, progress=progress, force=force, mask_format=mask_format)
    result["skipped"] = result["skipped"] + unknown
    return result


# ---- refiners by name ---------------------------------------------------------------------------------
def resolve_refiner(name: str | Path):
    """A refiner by name: a prior refiner (``prior``, the default corrective refiner; ``prior-mincut``;
    ``prior-itermrl``, :data:`scarceseg.methods.prior_refiners.PRIOR_REFINERS`), or anything the registry opens
    (``mincut``, a trained refiner folder)."""
    from scarceseg.methods.prior_refiners import PRIOR_REFINERS
    from scarceseg.methods.registry import load_refiner

    if str(name) in PRIOR_REFINERS and not Path(name).exists():
        return PRIOR_REFINERS[str(name)]()
    return load_refiner(name)
