"""Proposals: the candidate masks of one image (paper 000's clusters turned into candidates).

The files that hold them in a WORKDIR (``docs/workdir.md``) are written and read by
:mod:`scarceseg.store.proposals`; this module only computes them.

References
----------
.. [1] Paper 000 (Stember & Shalu), sections 0.3.1-0.3.3 and Figure 4.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from scarceseg.cluster import candidates as cand
from scarceseg.cluster.udc import UDCConfig, normalise, udc_cluster
from scarceseg.errors import DimensionError, InputError
from scarceseg.io.case import Case

CHANNEL_MODES = ("flair", "all")
#: Peak memory of proposing, per pixel: (812 - 532) MB / (1024² - 512²) px on grey PNGs with the fast preset
#: (``/usr/bin/time -f %M scarceseg propose`` on this machine); the size guard uses it.
BYTES_PER_PIXEL = 360.0

#: The shortest image side proposing works on (a 1 x 1 "image" has no region to propose).
MIN_SIDE = 8


@dataclass
class Proposal:
    """The candidates proposed for one 2D image.

    Attributes
    ----------
    case_id : str
    image : ndarray (C, Y, X) float32
        The image as fed to the proposer (selected channels, scaled to [0, 1]).
    labels : ndarray (Y, X) int32
        The cluster label map.
    masks : ndarray (K, Y, X) bool
        The candidates; candidate ``k`` is ``masks[k]``.
    candidates : list of dict
        ``{index, area, centroid: [y, x], bbox: [y0, x0, y1, x1] (half-open), source}`` per candidate.
    config : dict
        The :class:`UDCConfig` as a dict, plus ``seed``, ``input_channels`` (``"flair"`` or ``"all"``),
        ``channel_names`` (those fed) and ``run`` (iterations, cluster count, timings).
    seconds : float
        Wall time of :func:`propose_case`.
    patient_id : str
    source : str
        The image file the case came from, when known.
    """

    case_id: str
    image: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    candidates: list[dict]
    config: dict
    seconds: float
    patient_id: str = ""
    source: str = ""


def select_channels(case: Case, channels: str = "flair") -> tuple[np.ndarray, tuple[str, ...]]:
    """The channels the proposer uses: ``"flair"`` (by name, else channel 0) or ``"all"``.

    Returns
    -------
    image : ndarray (C', Y, X) float32
    names : tuple of str
    """
    if channels not in CHANNEL_MODES:
        raise InputError(None, f"channels must be one of {CHANNEL_MODES}, got {channels!r}")
    if channels == "all":
        return np.asarray(case.image, dtype=np.float32), tuple(case.channel_names)
    from scarceseg.io.channels import auto_channel, pick_channel

    index = auto_channel(case)
    return pick_channel(case, index)[None], (case.channel_names[index],)


def make_candidates(
    labels: np.ndarray, levels: dict[int, np.ndarray], config: UDCConfig
) -> tuple[np.ndarray, list[str]]:
    """The candidate stack ``(K, Y, X)`` and sources for ``config.candidates``."""
    shape = labels.shape
    min_area = cand.scaled_min_area(shape, config.min_area, config.reference_shape)
    if config.candidates == "paper":
        masks, sources = cand.paper_candidates(labels, min_area)
    else:
        comp_min = None
        if config.component_min_area is not None:
            comp_min = cand.scaled_min_area(shape, config.component_min_area, config.reference_shape)
        masks, sources = cand.extended_candidates(
            labels,
            levels,
            min_area,
            component_min_area=comp_min,
            holes=config.fill_holes,
            dedupe_iou=config.dedupe_iou,
            max_candidates=config.max_candidates,
        )
    return cand.stack(masks, shape), sources


def check_propose_size(case: Case) -> None:
    """Raise :class:`~scarceseg.io.limits.ImageTooLargeError` when proposing on ``case`` would exceed the
    memory limit (:func:`scarceseg.io.limits.size_limit`), before any work is done; :class:`InputError`
    for an image too small to hold a lesion (a side under :data:`MIN_SIDE` pixels)."""
    from scarceseg.io.limits import check_method_memory

    if min(case.shape) < MIN_SIDE:
        raise InputError(case.source or case.case_id or None,
                         f"image of {' x '.join(map(str, case.shape))} pixels is too small to propose regions "
                         f"(at least {MIN_SIDE} x {MIN_SIDE})")
    check_method_memory(case.source or case.case_id or None, tuple(case.shape), BYTES_PER_PIXEL,
                        "proposing candidates")


def propose_case(case: Case, config: UDCConfig | str | None = None, channels: str = "flair", seed: int = 0) -> Proposal:
    """Cluster one 2D case and turn the clusters into candidate masks.

    Parameters
    ----------
    case : Case
        ``image`` of shape ``(C, Y, X)``.
    config : UDCConfig or {"fast", "faithful"}, optional
        Default: :meth:`UDCConfig.fast`.
    channels : {"flair", "all"}
        ``"flair"``: the channel named FLAIR (any case), else channel 0; ``"all"``: every channel.
    seed : int

    Returns
    -------
    Proposal

    Raises
    ------
    DimensionError
        The case is 3D (the method is 2D; propose slices instead).
    ImageTooLargeError
        Proposing would need more memory than the size limit allows (see :func:`check_propose_size`).
    """
    if case.ndim != 2:
        raise DimensionError(
            case.source or case.case_id or None,
            f"propose works on 2D images; this case is 3D with shape {case.shape} "
            "(slice the volume first, e.g. Dataset.as_slices())",
        )
    check_propose_size(case)
    cfg = UDCConfig.preset(config)
    start = time.perf_counter()
    image, names = select_channels(case, channels)
    image01 = normalise(image)
    result = udc_cluster(image01, cfg, seed=seed, normalised=True)
    masks, sources = make_candidates(result.labels, result.levels, cfg)
    seconds = time.perf_counter() - start
    config_dict = asdict(cfg)
    config_dict.update(
        seed=int(seed),
        input_channels=channels,
        channel_names=list(names),
        run={
            "n_iters": result.n_iters,
            "n_clusters": result.n_clusters,
            "reached": result.reached,
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
        },
    )
    return Proposal(
        case_id=case.case_id,
        image=image01,
        labels=result.labels,
        masks=masks,
        candidates=cand.describe_candidates(masks, sources),
        config=config_dict,
        seconds=seconds,
        patient_id=case.patient_id,
        source="" if case.source is None else str(case.source),
    )
