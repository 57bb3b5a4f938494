"""The prior's image embeddings, cached: in memory and as float16 ``.npy`` files keyed by image content.

Every learner on the frozen prior (the few-shot learner, PixelDRL-MG's prior features, the selector's
candidates, the adapted decoder of :mod:`scarceseg.prior.adapt`) and the benches that compare them share
one :class:`EmbeddingStore`, so each image is encoded once, by whichever backend the prior runs on.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scarceseg.prior.model import INPUT_SIZE, LOWRES_SIZE, Embedding, get_prior, image_key

_RECENT: OrderedDict[str, torch.Tensor] = OrderedDict()  # shared by stores without a folder (last 32 images)


class EmbeddingStore:
    """Prior embeddings of 2D images, in memory and (optionally) as float16 ``<key>.npy`` files in ``folder``."""

    def __init__(self, prior=None, folder: str | Path | None = None, write: bool = True) -> None:
        self._prior = prior
        self.folder = Path(folder) if folder is not None else None
        self.write = write  # False: read cached files, never add any
        self._memory: OrderedDict[str, torch.Tensor] = _RECENT if folder is None and prior is None else OrderedDict()
        self.encoded = 0  # how many images this store had to encode

    @property
    def prior(self):
        if self._prior is None:
            self._prior = get_prior()
        return self._prior

    def get(self, image: np.ndarray):
        """The :class:`~scarceseg.prior.model.Embedding` of ``image`` ``(Y, X)`` (features float32)."""
        key = image_key(image)
        height, width = image.shape
        scale = INPUT_SIZE / max(height, width)
        resized = (max(1, round(height * scale)), max(1, round(width * scale)))
        feats = self._memory.get(key)
        path = self.folder / f"{key}.npy" if self.folder is not None else None
        if feats is None and path is not None and path.is_file():
            feats = torch.from_numpy(np.load(path).astype(np.float32))[None]
        if feats is None and getattr(self.prior, "cached", lambda _: False)(image):  # encoded by the app already
            feats = self.prior.embed(image).features.cpu().clone().to(torch.float16).to(torch.float32)
        if feats is None:
            tensor, _, _ = self.prior.preprocess(image)
            feats = self.prior.encode(tensor).clone()  # on the prior's backend (torch, onnx, openvino)
            feats = feats.to(torch.float16).to(torch.float32)  # the same values whether cached or not
            self.encoded += 1
            if path is not None and self.write:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # atomic: workers share the folder
                with tmp.open("wb") as fh:
                    np.save(fh, feats[0].numpy().astype(np.float16))
                os.replace(tmp, path)
        self._memory[key] = feats
        self._memory.move_to_end(key)
        # the shared store keeps 32 images; a folder store 64 (the rest is on disk); a store of its own prior
        # (the app's) keeps every image it encoded
        limit = 32 if self._memory is _RECENT else 64 if self.folder is not None else None
        while limit is not None and len(self._memory) > limit:
            self._memory.popitem(last=False)
        return Embedding(features=feats, original_shape=(height, width), resized_shape=resized, key=key)


def lowres_target(mask: np.ndarray, resized: tuple[int, int]) -> torch.Tensor:
    """``(256, 256)`` float target: ``mask`` resized into the prior's padded input frame."""
    t = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    t = F.interpolate(t, size=resized, mode="bilinear", align_corners=False)
    t = F.pad(t, (0, LOWRES_SIZE - resized[1], 0, LOWRES_SIZE - resized[0]))
    return (t[0, 0] > 0.5).float()
