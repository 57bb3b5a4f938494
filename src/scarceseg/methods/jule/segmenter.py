"""Paper 001's pipeline on one image: :class:`JuleSegmenter` (fit / segment / save / load) and its configs.

``JuleSegmenter.fit(image, region)`` samples ``n_s`` patches in the region, runs JULE's recurrent process
(:func:`scarceseg.methods.jule.recurrent.run_jule`) and keeps the trained CNN; ``segment(image, region, k)``
embeds the patches on a stride-``s`` grid, clusters the representations with k-means into ``K`` clusters
and paints each ``s``-sided sub-patch with its cluster (labels ``1..K`` ordered by mean intensity,
0 outside the region). The CNN is trained on the volume it segments, as in the paper.

Two configurations (:data:`CONFIGS`):

* ``paper``: the paper's values (10,000 patches of ``27^3``, the Figure 2 CNN, ``C = 100``, ``s = 5``).
  On one CPU thread one forward pass of that CNN takes ~17 ms per patch and a training step ~70 ms
  (measured), so a BRATS volume would take hours; it is kept for machines with a GPU.
* ``cpu``: the same method scaled down: 4,000 patches of ``9^3``, ``2^3`` kernels (side 9 -> 8 -> 4 -> 3 -> 2),
  32 channels, dense 256 -> 64, ``C = 10``, two epochs per period and three on the final labels, learning
  rate 0.001, ``s = 3``, and the region's intensities continued outside it before patches are cut
  (:func:`~scarceseg.methods.jule.patches.fill_outside`). About 100x fewer operations per patch than
  ``paper``. These choices were made from measurements on one BRATS volume (pat0001), see ``docs/jule.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from scarceseg.cluster.volume_baselines import foreground_region, order_by_intensity
from scarceseg.configs import ConfigDict
from scarceseg.errors import CorruptFileError, InputError
from scarceseg.methods.contract import write_method_file
from scarceseg.methods.jule.patches import (
    extract_patches,
    fill_outside,
    grid_centres,
    pad_for_patches,
    project_labels,
    sample_centres,
)
from scarceseg.methods.jule.recurrent import embed, run_jule
from scarceseg.nets.checkpoint import save_checkpoint
from scarceseg.nets.jule_cnn import JuleCNN
from scarceseg.nets.runtime import resolve_device, seed_everything, torch_threads

FORMAT = "scarceseg-jule"


@dataclass
class JULEConfig(ConfigDict):
    """Hyper-parameters of paper 001's JULE + k-means segmentation; defaults are the paper's."""

    n_patches: int = 10_000  # paper 001 sec. 3.2: 10,000 random training patches
    patch: int = 27  # sec. 2.4 / 3.2: 27^3 patches
    kernel: int = 5  # sec. 2.4: 5^3 kernels, stride 1
    channels: int = 50  # sec. 2.4: 50 kernels per convolution
    hidden: int = 1350  # sec. 2.4 / Fig. 2: first dense layer
    out_features: int = 160  # sec. 2.4 / Fig. 2: representation size
    n_final_clusters: int = 100  # sec. 3.2: C = 100 (lung-A, lung-C; 10 for lung-B)
    stride: int = 5  # sec. 3.2: segmentation patches every 5 voxels, 5^3 sub-patches
    k: int = 3  # sec. 3.2: K = 3 k-means clusters
    eta: float = 0.9  # JULE sec. 4.1 (our reading): unrolling rate, share of clusters merged per period
    k_s: int = 20  # JULE sec. 4.1: neighbours of the sample graph
    a: float = 1.0  # JULE sec. 4.1: sigma^2 scale
    k_c: int = 5  # JULE sec. 4.1: neighbour clusters in the merging criterion and loss
    lam: float = 1.0  # JULE sec. 4.1: lambda of the merging criterion
    epochs: int = 20  # JULE (our reading): CNN epochs per backward pass
    final_epochs: int | None = None  # paper 001 sec. 2.2: extra pass on the final labels (None: = epochs)
    lr: float = 0.01  # JULE sec. 4.1: SGD learning rate
    momentum: float = 0.9  # JULE sec. 4.1
    weight_decay: float = 5e-5  # JULE sec. 4.1
    batch_size: int = 100  # ours: triplets per SGD step
    margin: float = 0.2  # ours: hinge triplet margin on cosine similarity
    kmeans_n_init: int = 10  # ours: k-means restarts (paper: "conventional k-means")
    fill_outside: bool = False  # ours: continue the region's intensities outside it before cutting patches
    threads: int | None = 1  # ours: torch threads (1 is fastest on a shared 2-core machine)
    device: str = "cpu"  # ours: "auto" uses a GPU when there is one (the paper config needs one)
    ndim: int = 3  # 3 for volumes (paper); 2 for slices
    name: str = "paper"



#: ``--config`` choices: the paper's values and the CPU configuration the benchmark runs.
CONFIGS: dict[str, JULEConfig] = {
    "paper": JULEConfig(),
    "cpu": JULEConfig(n_patches=4000, patch=9, kernel=2, channels=32, hidden=256, out_features=64,
                      n_final_clusters=10, stride=3, epochs=2, final_epochs=3, lr=0.001, batch_size=64,
                      fill_outside=True, name="cpu"),
}


def get_config(config: str | JULEConfig | None) -> JULEConfig:
    """A :class:`JULEConfig` from a name of :data:`CONFIGS` (default ``cpu``), a JSON file or a config (copied).

    A JSON file holds the config's fields (unknown keys ignored), or a saved model's ``config.json``.
    """
    if config is None:
        config = "cpu"
    if isinstance(config, JULEConfig):
        return replace(config)
    if config in CONFIGS:
        return replace(CONFIGS[config])
    path = Path(config)
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            return JULEConfig.from_dict(values.get("config", values))
        except (ValueError, TypeError, AttributeError) as exc:
            raise CorruptFileError(path, f"not a JULE config: {exc}") from None
    raise InputError(None, f"unknown JULE config {config!r}; choose one of {', '.join(CONFIGS)} or a .json file")


def read_region(path: str | Path, like) -> np.ndarray:
    """A region mask file (any format :func:`scarceseg.io.read_image` reads) as bool: value > 0.5.

    Accepts masks stored as floats (e.g. BRATS ``brainmask`` holds 0.99999997), {0, 1} or {0, 255}.

    Raises
    ------
    ShapeMismatchError
        The mask's spatial shape differs from ``like``'s.
    """
    from scarceseg.errors import ShapeMismatchError
    from scarceseg.io import read_image

    mask = read_image(path).image[0]
    if mask.shape != tuple(like.shape):
        raise ShapeMismatchError(path, f"mask shape {mask.shape} differs from the image shape {tuple(like.shape)}")
    return mask > 0.5


def resolve_region(image: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    """``region`` as bool (the Otsu foreground of ``image`` when None), checked: same shape, not empty."""
    if region is None:
        region = foreground_region(image)
    region = np.asarray(region, dtype=bool)
    if region.shape != image.shape:
        raise InputError(None, f"region shape {region.shape} differs from the image shape {image.shape}")
    if not region.any():
        raise InputError(None, "the region to cluster is empty (no voxel above the threshold / in the mask)")
    return region


@dataclass
class JuleSegmenter:
    """A CNN trained by JULE on one image, with the patch standardisation it was trained with."""

    net: JuleCNN
    config: JULEConfig
    mean: float = 0.0
    std: float = 1.0
    seed: int = 0
    summary: dict = field(default_factory=dict)

    # ---- training --------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, image: np.ndarray, region: np.ndarray | None = None, config: str | JULEConfig | None = None,
            seed: int = 0, echo: Callable[[str], None] | None = None) -> JuleSegmenter:
        """Learn representations of ``image``'s patches with JULE.

        Parameters
        ----------
        image : ndarray, shape (Z, Y, X) (or (Y, X) with ``config.ndim = 2``)
            One channel (e.g. FLAIR).
        region : ndarray of the same shape, bool, optional
            Patch centres are drawn here; :func:`foreground_region` (Otsu) when omitted.
        config : str or JULEConfig, optional
            ``"cpu"`` (default), ``"paper"`` or a config.
        seed : int
            Seeds patch sampling, weights and triplets: the same seed gives the same network.
        echo : callable, optional
            Receives progress lines.
        """
        cfg = get_config(config)
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != cfg.ndim:
            raise InputError(None, f"config {cfg.name!r} is {cfg.ndim}D but the image has shape {image.shape}")
        region = resolve_region(image, region)
        rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        with torch_threads(cfg.threads):
            seed_everything(seed)
            net = JuleCNN(cfg.patch, cfg.kernel, cfg.channels, cfg.hidden, cfg.out_features, cfg.ndim)
            net = net.to(resolve_device(cfg.device))
            centres = sample_centres(region, cfg.n_patches, rng)
            source = fill_outside(image, region) if cfg.fill_outside else image
            patches = extract_patches(pad_for_patches(source, cfg.patch), centres, cfg.patch)
            mean, std = float(patches.mean()), float(patches.std()) or 1.0
            tensor = torch.from_numpy((patches - mean) / std).unsqueeze(1)
            labels, history = run_jule(
                net, tensor, cfg.n_final_clusters, eta=cfg.eta, k_s=cfg.k_s, a=cfg.a, k_c=cfg.k_c, lam=cfg.lam,
                epochs=cfg.epochs, final_epochs=cfg.final_epochs, lr=cfg.lr, momentum=cfg.momentum,
                weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, margin=cfg.margin, rng=rng, echo=echo)
        summary = {"n_patches": int(len(centres)), "clusters_per_period": history.clusters,
                   "loss_per_period": history.losses, "final_clusters": int(labels.max()) + 1,
                   "seconds_forward": round(history.seconds_forward, 2),
                   "seconds_backward": round(history.seconds_backward, 2),
                   "seconds_fit": round(time.perf_counter() - t0, 2)}
        return cls(net.eval(), cfg, mean, std, seed, summary)

    # ---- segmentation ----------------------------------------------------------------------------------
    def features(self, image: np.ndarray, region: np.ndarray | None = None, stride: int | None = None,
                 batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Representations of the patches centred on the stride-``s`` sub-patch grid over ``region``.

        Returns
        -------
        centres : ndarray, shape (N, ndim), int64
        features : ndarray, shape (N, D), float64
        """
        image = np.asarray(image, dtype=np.float32)
        region = resolve_region(image, region)
        stride = int(stride or self.config.stride)
        centres = grid_centres(region, stride)
        source = fill_outside(image, region) if self.config.fill_outside else image
        padded = (pad_for_patches(source, self.config.patch) - self.mean) / self.std
        out = []
        with torch_threads(self.config.threads):
            for start in range(0, len(centres), batch_size):
                batch = extract_patches(padded, centres[start:start + batch_size], self.config.patch)
                out.append(embed(self.net, torch.from_numpy(batch).unsqueeze(1), batch_size))
        return centres, np.concatenate(out)

    def segment_many(self, image: np.ndarray, ks: Sequence[int], region: np.ndarray | None = None,
                     stride: int | None = None) -> dict[int, np.ndarray]:
        """Label maps for several ``K`` from one feature extraction.

        Returns
        -------
        dict of int to ndarray
            ``K`` -> label map of ``image``'s shape, int32, 0 outside the region, ``1..K`` by mean intensity.
        """
        from sklearn.cluster import KMeans

        image = np.asarray(image, dtype=np.float32)
        region = resolve_region(image, region)
        stride = int(stride or self.config.stride)
        centres, feats = self.features(image, region, stride)
        out = {}
        for k in ks:
            k_eff = int(min(k, len(feats)))
            km = KMeans(n_clusters=k_eff, n_init=self.config.kmeans_n_init, random_state=self.seed).fit(feats)
            labels = project_labels(km.labels_ + 1, centres, image.shape, stride, region)
            out[int(k)] = order_by_intensity(labels, image)
        return out

    def segment(self, image: np.ndarray, region: np.ndarray | None = None, k: int | None = None,
                stride: int | None = None) -> np.ndarray:
        """One label map with ``K`` clusters (``config.k`` by default); see :meth:`segment_many`."""
        k = int(k or self.config.k)
        return self.segment_many(image, [k], region, stride)[k]

    # ---- files -----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path/model.safetensors`` and ``path/config.json``; returns the folder."""
        from scarceseg import __version__

        meta = {"format": FORMAT, "format_version": 1, "scarceseg_version": __version__,
                "config": asdict(self.config), "net": self.net.config(), "mean": self.mean, "std": self.std,
                "seed": self.seed, "summary": self.summary}
        folder = save_checkpoint(path, self.net, meta)
        write_method_file(folder, "jule", "segmenter", {})
        return folder

    @classmethod
    def load(cls, path: str | Path) -> JuleSegmenter:
        """Read a folder written by :meth:`save`.

        Raises
        ------
        InputError
            The folder or one of its two files is missing.
        CorruptFileError
            ``config.json`` or ``model.safetensors`` does not decode or does not fit the network.
        """
        from safetensors.torch import load_file

        folder = Path(path)
        for name in ("config.json", "model.safetensors"):
            if not (folder / name).is_file():
                raise InputError(folder / name, "missing: not a JULE model folder")
        try:
            meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
            config = JULEConfig.from_dict(meta["config"])
            net = JuleCNN(**meta["net"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptFileError(folder / "config.json", f"not a JULE config: {exc}") from None
        try:
            net.load_state_dict(load_file(str(folder / "model.safetensors")))
        except Exception as exc:  # safetensors raises its own error types on damaged files
            raise CorruptFileError(folder / "model.safetensors", f"cannot load the weights: {exc}") from None
        net = net.to(resolve_device(config.device))
        return cls(net.eval(), config, float(meta["mean"]), float(meta["std"]), int(meta.get("seed", 0)),
                   meta.get("summary") or {})
