"""LiteMedSAM at inference: encode a 2D image once, then decode any number of prompts from its embedding.

Boxes are ``(y0, x0, y1, x1)`` in pixels of the original image, inclusive (scarceseg's convention);
points are ``(y, x)`` with labels 1 (object) or 0 (background). Outputs are probabilities on the
original grid plus the model's 256×256 low-resolution logits, which can be fed back as a mask prompt.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from scarceseg.errors import InputError

INPUT_SIZE = 256  # LiteMedSAM's encoder input (longest side), 64x64 embedding
LOWRES_SIZE = 256  # mask decoder output and mask-prompt size


@dataclass(frozen=True)
class Embedding:
    """The encoder's output for one 2D image.

    Attributes
    ----------
    features : torch.Tensor
        ``(1, 256, 64, 64)`` image embedding.
    original_shape : tuple of int
        ``(Y, X)`` of the image that was encoded.
    resized_shape : tuple of int
        ``(y, x)`` of the image inside the padded 256×256 input.
    key : str
        Content hash of the image (the cache key).
    """

    features: torch.Tensor
    original_shape: tuple[int, int]
    resized_shape: tuple[int, int]
    key: str

    @property
    def scale(self) -> float:
        return INPUT_SIZE / max(self.original_shape)


@dataclass(frozen=True)
class PriorOutput:
    """One decoded prompt: ``prob`` ``(Y, X)`` in [0, 1], ``logits`` ``(256, 256)`` low-res, ``iou`` score."""

    prob: np.ndarray
    logits: np.ndarray
    iou: float


def image_key(image: np.ndarray) -> str:
    """Content hash of an array (shape, dtype and bytes)."""
    arr = np.ascontiguousarray(image)
    digest = hashlib.sha1(f"{arr.shape}{arr.dtype}".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def normalise(image: np.ndarray) -> np.ndarray:
    """Clip to the 0.5–99.5 percentiles and scale to [0, 1] (MedSAM's MR/CT-agnostic recipe).

    Parameters
    ----------
    image : ndarray
        ``(Y, X)`` one channel, or ``(3, Y, X)`` used as RGB.

    Returns
    -------
    ndarray
        ``(3, Y, X)`` float32 in [0, 1]; a one-channel image is repeated three times.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[None], 3, axis=0)
    elif not (arr.ndim == 3 and arr.shape[0] == 3):
        raise InputError(None, f"the prior takes a 2D image (Y, X) or (3, Y, X), got shape {arr.shape}")
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = np.percentile(arr, [0.5, 99.5])
    if hi - lo < 1e-8:
        lo, hi = float(arr.min()), float(arr.max())
    arr = np.clip((arr - lo) / max(hi - lo, 1e-8), 0.0, 1.0)
    return arr.astype(np.float32)


class LiteMedSAM:
    """The prior, with an in-memory cache of embeddings keyed by image content.

    Parameters
    ----------
    net : torch.nn.Module, optional
        A LiteMedSAM network; by default the pretrained one (:func:`scarceseg.prior.weights.load_network`).
    cache_size : int
        How many embeddings to keep (about 4 MB each).
    backend : str, optional
        Where the image encoder runs: ``torch``, ``onnx`` (onnxruntime) or ``openvino``; by default
        ``$SCARCESEG_PRIOR_BACKEND``, else torch (:mod:`scarceseg.prior.backends`). ``self.backend`` is the
        one actually used (torch when the asked one's package is missing). The prompt encoder always runs on
        torch; a prompt that is only a mask is decoded on torch.
    """

    def __init__(self, net: torch.nn.Module | None = None, cache_size: int = 64, backend: str | None = None):
        from scarceseg.prior.backends import make_runtime

        if net is None:
            from scarceseg.prior.weights import load_network

            net = load_network()
        self.net = net.eval()
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, Embedding] = OrderedDict()
        self._lock = threading.Lock()
        self._dense_pe: torch.Tensor | None = None
        self._encoder, self._decoder, self.backend = make_runtime(self.net, self.dense_pe(), backend)

    # --- encoder -------------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """``(1, 3, 256, 256)`` padded input, the original ``(Y, X)`` and the resized ``(y, x)``."""
        arr = normalise(image)
        height, width = arr.shape[1:]
        scale = INPUT_SIZE / max(height, width)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        tensor = torch.from_numpy(arr)[None]
        if (new_h, new_w) != (height, width):
            tensor = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", align_corners=False,
                                   antialias=scale < 1)
        tensor = F.pad(tensor, (0, INPUT_SIZE - new_w, 0, INPUT_SIZE - new_h))
        return tensor, (height, width), (new_h, new_w)

    def encode(self, tensor: torch.Tensor) -> torch.Tensor:
        """The image encoder on a preprocessed ``(1, 3, 256, 256)`` input, on this prior's backend (no cache)."""
        with torch.inference_mode():
            if self._encoder is not None:
                return self._encoder(tensor)[0]
            encoder = self.net.image_encoder  # may sit on a GPU; the features come back to the CPU
            return encoder(tensor.to(next(encoder.parameters()).device)).cpu()

    def embed(self, image: np.ndarray) -> Embedding:
        """Encode ``image`` (``(Y, X)`` or ``(3, Y, X)``), or return the cached embedding of the same content."""
        key = image_key(image)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        tensor, original, resized = self.preprocess(image)
        features = self.encode(tensor)
        embedding = Embedding(features=features, original_shape=original, resized_shape=resized, key=key)
        with self._lock:
            self._cache[key] = embedding
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return embedding

    def cached(self, image: np.ndarray) -> bool:
        """Whether the embedding of ``image`` is already in the cache."""
        with self._lock:
            return image_key(image) in self._cache

    # --- prompts -> mask -----------------------------------------------------------------------
    def decode(
        self,
        embedding: Embedding,
        box: Sequence[float] | None = None,
        points: Sequence[Sequence[float]] | None = None,
        labels: Sequence[int] | None = None,
        mask_logits: np.ndarray | None = None,
        multimask: bool = False,
        decoder: torch.nn.Module | None = None,
    ) -> list[PriorOutput]:
        """Decode one prompt (any mix of a box, points and a previous low-res mask) into masks.

        Parameters
        ----------
        embedding : Embedding
        box : (y0, x0, y1, x1), optional
            Inclusive pixel box on the original grid.
        points, labels : optional
            ``[(y, x), ...]`` and ``[1|0, ...]``.
        mask_logits : ndarray, optional
            ``(256, 256)`` logits from an earlier :class:`PriorOutput`.
        multimask : bool
            Return the decoder's three masks instead of one.
        decoder : torch.nn.Module, optional
            A mask decoder to run instead of the prior's own (a fine-tuned copy, :mod:`scarceseg.prior.adapt`);
            it runs on torch, on the CPU, whatever backend encoded the image.

        Returns
        -------
        list of PriorOutput
            One output (three with ``multimask``), best IoU score first.
        """
        scale = embedding.scale
        box_t = points_t = mask_t = None
        if box is not None:
            box_t = box_tensor(box, scale)
        if points is not None and len(points) > 0:
            if labels is None or len(labels) != len(points):
                raise InputError(None, "points and labels must have the same length")
            coords = torch.tensor([[[(x + 0.5) * scale, (y + 0.5) * scale] for y, x in points]], dtype=torch.float32)
            points_t = (coords, torch.tensor([list(labels)], dtype=torch.int64))
        if mask_logits is not None:
            mask_t = torch.as_tensor(np.asarray(mask_logits, dtype=np.float32))[None, None]
        if box_t is None and points_t is None and mask_t is None:
            raise InputError(None, "the prior needs a box, a point or a mask prompt")
        pe = self.net.prompt_encoder
        with torch.inference_mode():
            sparse, dense = pe(points=points_t, boxes=box_t, masks=mask_t)
            if decoder is None and self._decoder is not None and sparse.shape[1] > 0:
                masks, scores = self._decoder(embedding.features, sparse, dense)
                keep = slice(1, None) if multimask else slice(0, 1)  # as MaskDecoder.forward selects
                low_res, iou = masks[:, keep], scores[:, keep]
            else:
                low_res, iou = (decoder or self.net.mask_decoder)(
                    image_embeddings=embedding.features,
                    image_pe=self.dense_pe(),
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=multimask,
                )
            outputs = []
            for k in range(low_res.shape[1]):
                logits = low_res[:, k : k + 1]
                outputs.append(PriorOutput(prob=self._to_original(logits, embedding),
                                           logits=logits[0, 0].numpy().copy(), iou=float(iou[0, k])))
        outputs.sort(key=lambda out: -out.iou)
        return outputs

    def dense_pe(self) -> torch.Tensor:
        """The prompt encoder's ``(1, 256, 64, 64)`` positional encoding of the embedding grid (computed once)."""
        if self._dense_pe is None:
            with torch.inference_mode():
                self._dense_pe = self.net.prompt_encoder.get_dense_pe()
        return self._dense_pe

    @staticmethod
    def _to_original(logits: torch.Tensor, embedding: Embedding) -> np.ndarray:
        new_h, new_w = embedding.resized_shape
        factor = LOWRES_SIZE / INPUT_SIZE
        crop = logits[..., : max(1, round(new_h * factor)), : max(1, round(new_w * factor))]
        full = F.interpolate(crop, size=embedding.original_shape, mode="bilinear", align_corners=False)
        return torch.sigmoid(full)[0, 0].numpy().astype(np.float32)

    def predict(self, image: np.ndarray, box=None, points=None, labels=None, mask_logits=None) -> PriorOutput:
        """Embed (cached) and decode one prompt; the single best output."""
        return self.decode(self.embed(image), box=box, points=points, labels=labels, mask_logits=mask_logits)[0]


def box_tensor(box: Sequence[float], scale: float) -> torch.Tensor:
    """The prompt encoder's ``(1, 1, 4)`` box ``(x0, y0, x1, y1)`` on the 256-pixel input grid of an inclusive
    pixel box ``(y0, x0, y1, x1)`` on the original grid (``scale`` = :attr:`Embedding.scale`)."""
    y0, x0, y1, x1 = (float(v) for v in box)
    return torch.tensor([[[x0 * scale, y0 * scale, (x1 + 1) * scale, (y1 + 1) * scale]]])


def decode_lowres(decoder: torch.nn.Module, features: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor,
                  image_pe: torch.Tensor) -> torch.Tensor:
    """Single-mask low-res logits ``(B, 1, 256, 256)`` of a mask decoder for a batch of embeddings, with gradients.

    Parameters
    ----------
    decoder : torch.nn.Module
        SAM's mask decoder (LiteMedSAM's, or a copy being fine-tuned).
    features : Tensor
        ``(B, 256, 64, 64)`` image embeddings.
    sparse, dense : Tensor
        Prompt embeddings from the prompt encoder: one prompt shared by every image (leading size 1), or one
        per image (leading size B).
    image_pe : Tensor
        ``(1, 256, 64, 64)`` positional encoding (:meth:`LiteMedSAM.dense_pe`).
    """
    outs = []
    for i in range(features.shape[0]):  # SAM's decoder expands one image per prompt: one image at a time
        low, _ = decoder(image_embeddings=features[i : i + 1], image_pe=image_pe,
                         sparse_prompt_embeddings=sparse[i : i + 1] if sparse.shape[0] > 1 else sparse,
                         dense_prompt_embeddings=dense[i : i + 1] if dense.shape[0] > 1 else dense,
                         multimask_output=False)
        outs.append(low)
    return torch.cat(outs)


_SHARED: LiteMedSAM | None = None
_SHARED_LOCK = threading.Lock()


def get_prior() -> LiteMedSAM:
    """The process-wide pretrained prior (loaded on first use)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = LiteMedSAM()
        return _SHARED
