"""Built-in sample data: synthetic FLAIR-like brain slices with lesions, written in the LGG layout.

The anatomy is real: axial slices of the MNI ICBM152 2009a symmetric template (T1 and grey/white
matter probability maps), shipped with scarceseg as ``datasets/data/mni152_2009a_sym_slab.npy.xz`` (1.4 MB;
see :data:`~scarceseg.datasets.sample_anatomy.TEMPLATE_FILE` and the notice next to it), so nothing is
downloaded. Each slice is turned into three MR-like channels the way the kaggle_3m LGG set stores them,
``(pre-contrast, FLAIR, post-contrast)``, given a skull and scalp (the template is skull-stripped, the LGG slices
are not; :mod:`~scarceseg.datasets.sample_anatomy`), a lesion (:mod:`~scarceseg.datasets.sample_lesion`), a bias
field and Rician noise, and written as

.. code-block:: text

    out_dir/images/SAMPLE_<PP>_<date>_<slice>.tif        256x256x3 uint8, LZW
    out_dir/masks/SAMPLE_<PP>_<date>_<slice>_mask.tif    256x256x3 uint8 {0, 255}, identical channels
    out_dir/manifest.json                                seed and per-case parameters
    out_dir/README.txt

One slice per patient, so patient-level N-shot splits work. The generator follows the TorchIO habit:
each case first *samples* its parameters from ``np.random.default_rng([seed, index])`` and then
*renders* them deterministically, so the same seed gives byte-identical files and case ``i`` does not
depend on ``n``.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from scarceseg.datasets.sample_anatomy import (
    SHAPE,
    TEMPLATE_FILE,
    Z_RANGE,
    Template,
    axial_maps,
    head_layers,
    load_template,
    pose,
)
from scarceseg.datasets.sample_lesion import (
    LESION_FRACTION_LOG_SD,
    LESION_FRACTION_MEDIAN,
    LESION_FRACTION_RANGE,
    lesion_look,
    lesion_shape,
)

CHANNEL_NAMES = ("pre-contrast", "FLAIR", "post-contrast")


def _scanner(images: tuple[np.ndarray, ...], rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Slight blur, a smooth multiplicative bias field per channel, Rician noise, scaling to uint8.

    Parameters
    ----------
    images : tuple of ndarray, each shape (Y, X)
        Channels in relative units (white matter = 1).

    Returns
    -------
    image : ndarray, shape (Y, X, C), uint8
    params : dict
    """
    from scipy import ndimage

    shape = images[0].shape
    yy, xx = np.mgrid[-1:1:shape[0] * 1j, -1:1:shape[1] * 1j]
    basis = np.stack([xx, yy, xx ** 2 - 1 / 3, yy ** 2 - 1 / 3, xx * yy])  # (5, Y, X)
    wm_level = rng.uniform(32, 58)
    noise_sd = rng.uniform(0.03, 0.06)
    bias_coef = rng.normal(0, 0.12, size=(len(images), 5))
    gains = rng.uniform(0.9, 1.15, size=len(images)) * np.array([1.25, 1.0, 1.25])[: len(images)]
    sd = noise_sd * wm_level
    channels = []
    for c, img in enumerate(images):
        bias = np.exp(np.tensordot(bias_coef[c], basis, axes=1))
        img = ndimage.gaussian_filter(img, 0.6) * bias * wm_level * gains[c]
        img = np.hypot(img + sd * rng.standard_normal(shape), sd * rng.standard_normal(shape))
        channels.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    params = {"wm_level_uint8": round(float(wm_level), 2), "rician_sd_rel": round(float(noise_sd), 4),
              "bias_coefficients": np.round(bias_coef, 4).tolist()}
    return np.stack(channels, axis=-1), params


def synthesize_case(template: Template, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Sample the parameters of one case with ``rng``, then render it.

    Parameters
    ----------
    template : Template
        From :func:`load_template`.
    rng : numpy.random.Generator
        The only source of randomness.

    Returns
    -------
    image : ndarray, shape (256, 256, 3), uint8
        Channels ``(pre-contrast, FLAIR, post-contrast)`` as in the kaggle_3m LGG TIFFs.
    mask : ndarray, shape (256, 256), bool
        The lesion (crisp; the image has a soft, edema-like margin around it).
    params : dict
        Everything that was sampled (JSON-serialisable), as written to ``manifest.json``.
    """
    from scipy import ndimage

    # ---- pose and anatomy
    z = rng.uniform(*Z_RANGE)
    angle = float(np.clip(rng.normal(0, 6), -15, 15))
    scale = rng.uniform(0.95, 1.2)
    aspect = rng.uniform(0.95, 1.05)
    shift = (rng.uniform(-8, 8), rng.uniform(-8, 8))
    flip = bool(rng.random() < 0.5)
    t1, gm, wm = pose(axial_maps(template, z), angle, scale, aspect, shift, flip)
    brain_soft = np.clip(t1 / 0.08, 0, 1)
    brain = ndimage.binary_fill_holes(brain_soft > 0.5)
    csf = np.clip(brain_soft - gm - wm, 0, 1)
    ext = head_layers(brain, scale, rng)  # skull and scalp

    # ---- lesion
    fraction = float(np.clip(np.exp(rng.normal(np.log(LESION_FRACTION_MEDIAN), LESION_FRACTION_LOG_SD)),
                             *LESION_FRACTION_RANGE))
    area = int(min(round(fraction * SHAPE[0] * SHAPE[1]), 0.45 * brain.sum()))
    mask, field, shape_params = lesion_shape(brain, wm, area, rng)
    look = lesion_look(mask, field, shape_params["radius_px"], brain_soft, rng)

    # ---- contrasts (white matter = 1) and composition
    outside_brain = 1 - brain_soft
    gm_flair = rng.uniform(1.15, 1.3)
    csf_flair = rng.uniform(0.12, 0.25)
    fat_flair = rng.uniform(2.4, 3.2)
    flair = wm + gm_flair * gm + csf_flair * (csf + ext["csf_gap"] * outside_brain) \
        + 0.1 * ext["skull"] + 0.8 * ext["diploe"] + fat_flair * ext["fat"] + 1.2 * ext["skin"]
    flair = flair + 0.8 * (flair - ndimage.gaussian_filter(flair, 2.0))  # the template is an average: crisper
    lesion_flair = look["contrast"] * look["texture"] * (1 - (1 - look["core_darkening"]) * look["core"])
    flair = (1 - look["alpha"]) * flair + look["alpha"] * lesion_flair

    t1n = t1 / 0.86  # template white matter sits at ~220/255
    fat_t1 = rng.uniform(1.2, 1.5)
    pre = t1n + 0.15 * ext["csf_gap"] * outside_brain + 0.08 * ext["skull"] + 0.5 * ext["diploe"] \
        + fat_t1 * ext["fat"] + 0.8 * ext["skin"]
    pre = pre + 0.8 * (pre - ndimage.gaussian_filter(pre, 2.0))
    lesion_t1 = rng.uniform(0.55, 0.8) * look["texture"] * (1 - 0.5 * look["core"])
    pre = (1 - look["alpha"]) * pre + look["alpha"] * lesion_t1
    post = pre * rng.uniform(0.95, 1.1) + 0.6 * ext["dura"] + rng.uniform(0.8, 1.6) * look["enhance"]

    image, scanner_params = _scanner((pre, flair, post), rng)
    params = {
        "template_z_index": round(float(z), 2),
        "rotation_deg": round(angle, 2), "pixels_per_mm": round(float(scale), 3),
        "aspect": round(float(aspect), 3), "shift_yx_px": [round(float(s), 2) for s in shift], "flip_lr": flip,
        "lesion": {
            "target_fraction": round(fraction, 5),
            "fraction": round(float(mask.mean()), 5),
            "pixels": int(mask.sum()),
            **shape_params,
            **look["params"],
        },
        **scanner_params,
    }
    return image, mask, params


# --------------------------------------------------------------------------------------------------
# the set
# --------------------------------------------------------------------------------------------------

_README = """\
SYNTHETIC sample data written by scarceseg.datasets.sample.make_sample_data (seed {seed}, n {n}).
These are NOT patient images. Each slice is an axial level of the MNI ICBM152 2009a symmetric template
(as shipped with scarceseg) given MR-like contrasts, a synthetic skull and scalp, a random pose, one
synthetic lesion (hyperintense on FLAIR), a smooth bias field and Rician noise.

Layout (as the kaggle_3m LGG set, "lgg" layout in scarceseg):
  images/<patient>_<slice>.tif        256x256x3 uint8 LZW TIFF, channels (pre-contrast, FLAIR, post-contrast)
  masks/<patient>_<slice>_mask.tif    256x256x3 uint8, values {{0, 255}}, 3 identical channels
One slice per patient. Per-case parameters (slice level, pose, lesion size/shape/contrast, noise):
manifest.json. Template: MNI ICBM152 2009a, (c) 1993-2009 Louis Collins, McConnell Brain Imaging
Centre, Montreal Neurological Institute, McGill University (Fonov et al., NeuroImage 2011); its notice is
scarceseg/datasets/data/MNI152_NOTICE.txt in the scarceseg package.
"""


def make_sample_data(out_dir: str | Path, n: int = 20, seed: int = 0) -> list[Path]:
    """Write ``n`` synthetic FLAIR-like brain slices with lesion masks in the LGG (kaggle_3m) layout.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing. Earlier ``SAMPLE_*`` files in ``images/`` and ``masks/`` are removed first,
        so the folder holds exactly this set; other files are left alone.
    n : int
        Number of slices, one per patient (``SAMPLE_01`` ...).
    seed : int
        Case ``i`` is drawn from ``np.random.default_rng([seed, i])``: the same seed gives byte-identical
        files, and the first cases do not change with ``n``.

    Returns
    -------
    list of Path
        The image files ``out_dir/images/SAMPLE_<PP>_<date>_<slice>.tif`` in case order; each mask is
        ``out_dir/masks/<same stem>_mask.tif``.
    """
    import tifffile

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out_dir = Path(out_dir)
    images_dir, masks_dir = out_dir / "images", out_dir / "masks"
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    for old in [*images_dir.glob("SAMPLE_*.tif"), *masks_dir.glob("SAMPLE_*_mask.tif")]:
        old.unlink()

    template = load_template()
    width = max(2, len(str(n)))
    cases, paths = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        image, mask, params = synthesize_case(template, rng)
        scan_date = (date(1995, 1, 1) + timedelta(days=int(rng.integers(0, 20 * 365)))).strftime("%Y%m%d")
        slice_no = int(round(params["template_z_index"])) - 40
        patient = f"SAMPLE_{i + 1:0{width}d}_{scan_date}"
        stem = f"{patient}_{slice_no}"
        write = {"photometric": "rgb", "compression": "lzw", "predictor": True, "rowsperstrip": 10,
                 "metadata": None, "software": False}
        tifffile.imwrite(images_dir / f"{stem}.tif", image, **write)
        mask8 = np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=-1)
        tifffile.imwrite(masks_dir / f"{stem}_mask.tif", mask8, **write)
        paths.append(images_dir / f"{stem}.tif")
        cases.append({"case_id": stem, "patient_id": patient, "image": f"images/{stem}.tif",
                      "mask": f"masks/{stem}_mask.tif", **params})

    manifest = {
        "synthetic": True,
        "generator": "scarceseg.datasets.sample.make_sample_data",
        "seed": seed, "n": n, "shape": list(SHAPE), "channels": list(CHANNEL_NAMES), "flair_channel": 1,
        "template": f"MNI ICBM152 2009a symmetric (scarceseg package data: {TEMPLATE_FILE.name})",
        "cases": cases,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    (out_dir / "README.txt").write_text(_README.format(seed=seed, n=n), encoding="utf-8")
    return paths
