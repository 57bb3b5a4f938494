"""The anatomy of the built-in sample slices: the MNI ICBM152 2009a template shipped with scarceseg, an axial
level of it in a random pose, and a synthetic skull and scalp (see :mod:`scarceseg.datasets.sample`)."""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scarceseg.errors import ScarcesegError

SHAPE = (256, 256)
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

def axial_maps(template: Template, z: float) -> np.ndarray:
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


def pose(maps: np.ndarray, angle_deg: float, scale: float, aspect: float, shift: tuple[float, float],
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


def smooth_noise(rng: np.random.Generator, sigma: float, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """Gaussian-smoothed white noise with unit standard deviation, shape ``shape``.

    Smoothed in the Fourier domain (periodic), which costs the same for any ``sigma`` (pixels).
    """
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    transfer = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy ** 2 + fx ** 2))
    field = np.fft.irfft2(np.fft.rfft2(white) * transfer, s=shape)
    return (field - field.mean()) / (field.std() + 1e-12)


def band(d: np.ndarray, lo: float, hi: float, soft: float = 0.6) -> np.ndarray:
    """Soft indicator of ``lo <= d < hi`` with logistic edges of width ``soft``."""
    return 1.0 / (1.0 + np.exp(-(d - lo) / soft)) - 1.0 / (1.0 + np.exp(-(d - hi) / soft))


def head_layers(brain: np.ndarray, scale: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
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
    d = ndimage.distance_transform_edt(~hull) + 0.7 * smooth_noise(rng, 14.0)
    gap = rng.uniform(1.0, 2.5) * scale
    skull = rng.uniform(4.0, 7.0) * scale
    fat = rng.uniform(2.5, 5.0) * scale
    skin = 1.5 * scale
    layers = {
        "csf_gap": np.clip(band(d, -1e3, gap), 0, 1) * ~brain,
        "skull": band(d, gap, gap + skull),
        "diploe": band(d, gap + 0.4 * skull, gap + 0.6 * skull, soft=0.5),
        "fat": band(d, gap + skull, gap + skull + fat),
        "skin": band(d, gap + skull + fat, gap + skull + fat + skin),
        "dura": band(d, gap - 0.8, gap + 0.4, soft=0.4),
    }
    return layers
