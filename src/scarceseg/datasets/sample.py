"""Built-in sample data: synthetic FLAIR-like brain slices with lesions, written in the LGG layout.

The anatomy is real: axial slices of the MNI ICBM152 2009a symmetric template (T1 and grey/white
matter probability maps), shipped with scarceseg as ``datasets/data/mni152_2009a_sym_slab.npy.xz`` (1.4 MB;
see :data:`TEMPLATE_FILE` and the notice next to it), so nothing is downloaded. Each slice is
turned into three MR-like channels the way the kaggle_3m LGG set stores them, ``(pre-contrast, FLAIR,
post-contrast)``, given a skull and scalp (the template is skull-stripped, the LGG slices are not), a
lesion, a bias field and Rician noise, and written as

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
import lzma
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from scarceseg.errors import ScarcesegError
from scarceseg.preprocess.head import largest_component

SHAPE = (256, 256)
CHANNEL_NAMES = ("pre-contrast", "FLAIR", "post-contrast")
# Axial template levels (voxel index k; MNI z = k - 72 mm) that slices are drawn from: from the
# temporal lobes to just below the vertex, where the real LGG set has its tumour-positive slices.
Z_RANGE = (52.0, 128.0)
#: The template as scarceseg ships it: the axial levels ``k = 52..128`` that :data:`Z_RANGE` interpolates
#: between, of nilearn 0.14's package files ``mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz``
#: (uint8, 1 mm, index order (x, y, z), full grid 197 x 233 x 189), cropped to ``x 25..171, y 26..209``,
#: which holds every non-zero voxel of those levels. One uint8 array ``(3, 147, 184, 77)`` = (t1, gm, wm),
#: ``np.save`` format, xz-compressed with a delta filter along z. Licence: ``MNI152_NOTICE.txt`` beside it.
TEMPLATE_FILE = Path(__file__).parent / "data" / "mni152_2009a_sym_slab.npy.xz"
#: Full template grid (x, y, z) and the index of the slab's first voxel in it.
TEMPLATE_SHAPE = (197, 233, 189)
SLAB_START = (25, 26, 52)
# Lesion area as a fraction of the 256x256 slice: log-normal around the real set's median (2.3%),
# clipped to the range of the bulk of the real set.
LESION_FRACTION_MEDIAN = 0.023
LESION_FRACTION_LOG_SD = 0.85
LESION_FRACTION_RANGE = (0.003, 0.09)


@dataclass(frozen=True)
class Template:
    """The axial levels of the MNI ICBM152 2009a template that the sample uses (uint8, 1 mm, order (x, y, z)).

    Attributes
    ----------
    t1, gm, wm : ndarray, shape (197, 233, Z), uint8
        Skull-stripped T1 and grey/white-matter probability maps scaled to 0..255, on the template's full
        x-y grid (zero outside the brain), levels ``z_start .. z_start + Z - 1``.
    z_start : int
        Template level (voxel index k) of the first slice.
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    z_start: int = 0


def load_template(path: str | Path = TEMPLATE_FILE) -> Template:
    """Read the shipped template slab (about 0.3 s); see :class:`Template` and :data:`TEMPLATE_FILE`."""
    path = Path(path)
    try:
        with lzma.open(path) as f:
            slab = np.load(f, allow_pickle=False)
    except (OSError, EOFError, ValueError, lzma.LZMAError) as exc:
        raise ScarcesegError(f"{path}: cannot read the sample template shipped with scarceseg ({exc}); "
                             "reinstall scarceseg") from exc
    if slab.dtype != np.uint8 or slab.ndim != 4 or slab.shape[0] != 3:
        raise ScarcesegError(f"{path}: unexpected template array {slab.dtype} {slab.shape}; reinstall scarceseg")
    x0, y0, z0 = SLAB_START
    pad = ((x0, TEMPLATE_SHAPE[0] - x0 - slab.shape[1]), (y0, TEMPLATE_SHAPE[1] - y0 - slab.shape[2]), (0, 0))
    t1, gm, wm = (np.pad(vol, pad) for vol in slab)
    return Template(t1=t1, gm=gm, wm=wm, z_start=z0)


# --------------------------------------------------------------------------------------------------
# geometry: one axial template level -> a 256x256 slice with random pose
# --------------------------------------------------------------------------------------------------

def _axial_maps(template: Template, z: float) -> np.ndarray:
    """Tissue maps of one axial level, linearly interpolated between template slices.

    Returns
    -------
    ndarray, shape (3, 233, 197), float32
        ``(t1, gm, wm)`` in ``[0, 1]``, rows running anterior -> posterior, columns left -> right index.
    """
    k0 = int(np.floor(z))
    w = np.float32(z - k0)
    i0 = k0 - template.z_start
    if not 0 <= i0 < template.t1.shape[2] - 1:
        raise ValueError(f"template level {z} is outside the shipped levels {template.z_start}.."
                         f"{template.z_start + template.t1.shape[2] - 1}")
    out = []
    for vol in (template.t1, template.gm, template.wm):
        sl = (1 - w) * vol[:, :, i0].astype(np.float32) + w * vol[:, :, i0 + 1].astype(np.float32)
        out.append(sl.T[::-1] / np.float32(255.0))
    return np.stack(out)


def _pose(maps: np.ndarray, angle_deg: float, scale: float, aspect: float, shift: tuple[float, float],
          flip: bool) -> np.ndarray:
    """Resample ``(M, H, W)`` maps onto the 256x256 grid: rotate, scale (pixels per mm), shift, flip.

    The brain's centroid lands at the image centre plus ``shift`` (pixels, (dy, dx)).
    """
    from scipy import ndimage

    brain = maps[0] > 0.02
    cy, cx = (float(c) for c in np.argwhere(brain).mean(axis=0))
    theta = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    zoom = np.diag([1.0 / (scale * aspect), (-1.0 if flip else 1.0) * aspect / scale])
    matrix = rot @ zoom  # output offset (pixels) -> input offset (mm)
    centre_out = np.array([(SHAPE[0] - 1) / 2 + shift[0], (SHAPE[1] - 1) / 2 + shift[1]])
    offset = np.array([cy, cx]) - matrix @ centre_out
    return np.stack([ndimage.affine_transform(m, matrix, offset=offset, output_shape=SHAPE, order=1,
                                              mode="constant", cval=0.0) for m in maps])


def _smooth_noise(rng: np.random.Generator, sigma: float, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """Gaussian-smoothed white noise with unit standard deviation, shape ``shape``.

    Smoothed in the Fourier domain (periodic), which costs the same for any ``sigma`` (pixels).
    """
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    transfer = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy ** 2 + fx ** 2))
    field = np.fft.irfft2(np.fft.rfft2(white) * transfer, s=shape)
    return (field - field.mean()) / (field.std() + 1e-12)


def _band(d: np.ndarray, lo: float, hi: float, soft: float = 0.6) -> np.ndarray:
    """Soft indicator of ``lo <= d < hi`` with logistic edges of width ``soft``."""
    return 1.0 / (1.0 + np.exp(-(d - lo) / soft)) - 1.0 / (1.0 + np.exp(-(d - hi) / soft))


def _head_layers(brain: np.ndarray, scale: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Extra-cerebral layers around a (skull-stripped) brain: CSF gap, skull, diploe, scalp fat, skin.

    Distances are measured outward from the convex hull of the brain, so the skull does not follow the
    gyri; layer thicknesses vary smoothly around the head.
    """
    from scipy import ndimage
    from scipy.spatial import ConvexHull
    from skimage.draw import polygon

    points = np.argwhere(brain)
    corners = points[ConvexHull(points).vertices]
    hull = brain.copy()
    hull[polygon(corners[:, 0], corners[:, 1], brain.shape)] = True
    d = ndimage.distance_transform_edt(~hull) + 0.7 * _smooth_noise(rng, 14.0)
    gap = rng.uniform(1.0, 2.5) * scale
    skull = rng.uniform(4.0, 7.0) * scale
    fat = rng.uniform(2.5, 5.0) * scale
    skin = 1.5 * scale
    layers = {
        "csf_gap": np.clip(_band(d, -1e3, gap), 0, 1) * ~brain,
        "skull": _band(d, gap, gap + skull),
        "diploe": _band(d, gap + 0.4 * skull, gap + 0.6 * skull, soft=0.5),
        "fat": _band(d, gap + skull, gap + skull + fat),
        "skin": _band(d, gap + skull + fat, gap + skull + fat + skin),
        "dura": _band(d, gap - 0.8, gap + 0.4, soft=0.4),
    }
    return layers


# --------------------------------------------------------------------------------------------------
# lesion
# --------------------------------------------------------------------------------------------------

def _lesion_shape(brain: np.ndarray, wm: np.ndarray, area: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Sample an irregular lesion of about ``area`` pixels inside ``brain``, centred mostly in WM.

    The shape is the super-level set of a field ``1 - rho / r(theta) + noise``: a rotated ellipse whose
    radius is perturbed by angular harmonics 2..5, roughened by smoothed noise, optionally joined by a
    second lobe; the level is chosen so that exactly the ``area`` highest pixels inside the brain are in.

    Returns
    -------
    mask : ndarray, shape (Y, X), bool
    field : ndarray, shape (Y, X), float
        Higher towards the lesion core (used for a cystic core and the internal texture).
    params : dict
    """
    from scipy import ndimage

    radius = np.sqrt(area / np.pi)
    depth = ndimage.distance_transform_edt(brain)
    in_wm = rng.random() < 0.85
    weight = (wm ** 2 if in_wm else np.ones_like(wm)) * (depth >= min(0.6 * radius, 0.5 * depth.max()))
    if weight.sum() <= 0:
        weight = depth.astype(float)
    flat = weight.ravel() / weight.sum()
    cy, cx = np.unravel_index(int(rng.choice(flat.size, p=flat)), brain.shape)
    elong = rng.uniform(0.6, 1.0)
    phi = rng.uniform(0, np.pi)
    a, b = radius / np.sqrt(elong), radius * np.sqrt(elong)
    harmonics = [(m, rng.normal(0, 0.1 / (m - 1)), rng.uniform(0, 2 * np.pi)) for m in range(2, 6)]

    yy, xx = np.mgrid[0:brain.shape[0], 0:brain.shape[1]].astype(float)

    def blob(y0: float, x0: float, sa: float, sb: float) -> np.ndarray:
        dy, dx = yy - y0, xx - x0
        u = dx * np.cos(phi) + dy * np.sin(phi)
        v = -dx * np.sin(phi) + dy * np.cos(phi)
        ang = np.arctan2(v, u)
        r = 1.0 + sum(c * np.cos(m * ang + p) for m, c, p in harmonics)
        return 1.0 - np.hypot(u / sa, v / sb) / np.maximum(r, 0.3)

    field = blob(cy, cx, a, b)
    lobe = None
    if rng.random() < 0.4:
        ang = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(0.7, 1.1) * radius
        size = rng.uniform(0.4, 0.7)
        ly, lx = cy + dist * np.sin(ang), cx + dist * np.cos(ang)
        field = np.maximum(field, blob(ly, lx, size * a, size * b))
        lobe = {"centre_yx": [round(float(ly), 1), round(float(lx), 1)], "relative_size": round(float(size), 3)}
    roughness = rng.uniform(0.08, 0.2)
    field = field + roughness * _smooth_noise(rng, max(radius / 2.5, 1.5))
    inside = field[brain]
    area = int(min(area, inside.size))
    level = np.partition(inside, -area)[-area]
    mask = ndimage.binary_fill_holes(largest_component((field >= level) & brain)) & brain
    params = {
        "centre_yx": [int(cy), int(cx)], "in_white_matter": bool(in_wm), "radius_px": round(float(radius), 2),
        "elongation": round(float(elong), 3), "orientation_rad": round(float(phi), 3),
        "harmonics": [[m, round(float(c), 3)] for m, c, _ in harmonics], "second_lobe": lobe,
        "roughness": round(float(roughness), 3),
    }
    return mask, np.where(brain, field, inside.min()), params


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------------------------------

def _lesion_look(mask: np.ndarray, field: np.ndarray, radius: float, brain_soft: np.ndarray,
                 rng: np.random.Generator) -> dict:
    """Sample how a lesion looks: soft margin with edema-like tail, texture, cystic core, enhancement.

    Returns
    -------
    dict
        ``alpha`` (Y, X) in [0, 1], the lesion's weight in the image (1 inside, a logistic edge of width
        ``margin_px`` and an exponential tail outside); ``texture``, ``core``, ``enhance`` (Y, X);
        the scalars ``contrast`` (FLAIR vs white matter) and ``core_darkening``; ``params`` for the manifest.
    """
    from scipy import ndimage

    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    margin = rng.uniform(0.7, 1.8)
    edema_amp = rng.uniform(0.1, 0.45)
    edema_len = rng.uniform(1.5, 5.0)
    alpha = _sigmoid((inside - outside + 0.5) / margin)
    alpha = np.maximum(alpha, edema_amp * np.exp(-outside / edema_len) * (~mask) * brain_soft)
    contrast = rng.uniform(1.35, 2.2)
    texture = 1.0 + rng.uniform(0.03, 0.1) * _smooth_noise(rng, 4.0) + 0.03 * _smooth_noise(rng, 1.5)
    fade = rng.uniform(0.0, 0.25)  # signal fading from the core to the edge
    texture = texture * (1 - fade * (1 - np.clip(inside / (0.5 * radius + 1), 0, 1)))
    cystic = bool(rng.random() < 0.2 and contrast > 1.6 and mask.sum() > 400)
    core = np.zeros(mask.shape)
    if cystic:
        level = np.quantile(field[mask], 1 - rng.uniform(0.15, 0.35))
        core = _sigmoid((field - level) / 0.03) * mask
    core_darkening = rng.uniform(0.65, 0.8)
    enhancing = bool(rng.random() < 0.25)
    enhance = np.zeros(mask.shape)
    if enhancing:
        spots = _smooth_noise(rng, 3.0, mask.shape) > 1.2
        enhance = ndimage.gaussian_filter((spots & mask).astype(float), 1.0)
    params = {
        "flair_contrast_vs_wm": round(float(contrast), 3), "margin_px": round(float(margin), 3),
        "core_to_edge_fade": round(float(fade), 3), "edema_amplitude": round(float(edema_amp), 3),
        "edema_length_px": round(float(edema_len), 3), "cystic_core": cystic, "enhancing": enhancing,
    }
    return {"alpha": alpha, "texture": texture, "core": core, "enhance": enhance, "contrast": contrast,
            "core_darkening": core_darkening, "params": params}


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
    t1, gm, wm = _pose(_axial_maps(template, z), angle, scale, aspect, shift, flip)
    brain_soft = np.clip(t1 / 0.08, 0, 1)
    brain = ndimage.binary_fill_holes(brain_soft > 0.5)
    csf = np.clip(brain_soft - gm - wm, 0, 1)
    ext = _head_layers(brain, scale, rng)  # skull and scalp

    # ---- lesion
    fraction = float(np.clip(np.exp(rng.normal(np.log(LESION_FRACTION_MEDIAN), LESION_FRACTION_LOG_SD)),
                             *LESION_FRACTION_RANGE))
    area = int(min(round(fraction * SHAPE[0] * SHAPE[1]), 0.45 * brain.sum()))
    mask, field, shape_params = _lesion_shape(brain, wm, area, rng)
    look = _lesion_look(mask, field, shape_params["radius_px"], brain_soft, rng)

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
