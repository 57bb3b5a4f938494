"""The lesion of a built-in sample slice: its irregular shape inside the brain and its look (FLAIR contrast,
soft edema-like margin, texture, cystic core, enhancing spots); see :mod:`scarceseg.datasets.sample`."""

from __future__ import annotations

import numpy as np

from scarceseg.datasets.sample_anatomy import smooth_noise
from scarceseg.preprocess.head import largest_component

# Lesion area as a fraction of the 256x256 slice: log-normal around the real set's median (2.3%),
# clipped to the range of the bulk of the real set.
LESION_FRACTION_MEDIAN = 0.023
LESION_FRACTION_LOG_SD = 0.85
LESION_FRACTION_RANGE = (0.003, 0.09)

# --------------------------------------------------------------------------------------------------
# lesion
# --------------------------------------------------------------------------------------------------

def lesion_shape(brain: np.ndarray, wm: np.ndarray, area: int, rng: np.random.Generator
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
    field = field + roughness * smooth_noise(rng, max(radius / 2.5, 1.5))
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

def lesion_look(mask: np.ndarray, field: np.ndarray, radius: float, brain_soft: np.ndarray,
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
    texture = 1.0 + rng.uniform(0.03, 0.1) * smooth_noise(rng, 4.0) + 0.03 * smooth_noise(rng, 1.5)
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
        spots = smooth_noise(rng, 3.0, mask.shape) > 1.2
        enhance = ndimage.gaussian_filter((spots & mask).astype(float), 1.0)
    params = {
        "flair_contrast_vs_wm": round(float(contrast), 3), "margin_px": round(float(margin), 3),
        "core_to_edge_fade": round(float(fade), 3), "edema_amplitude": round(float(edema_amp), 3),
        "edema_length_px": round(float(edema_len), 3), "cystic_core": cystic, "enhancing": enhancing,
    }
    return {"alpha": alpha, "texture": texture, "core": core, "enhance": enhance, "contrast": contrast,
            "core_darkening": core_darkening, "params": params}
