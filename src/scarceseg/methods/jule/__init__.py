"""Paper 001 as one method: JULE representation learning on patches of one volume, then k-means segmentation.

Moriya et al. (2018) apply JULE (Yang et al. 2016) to ``w^3`` patches of one volume and segment it by
k-means on the learned representations. The whole method lives in this package:

* :mod:`~scarceseg.methods.jule.patches` — patch sampling and cutting, the stride grid, sub-patch projection;
* :mod:`~scarceseg.methods.jule.recurrent` — the recurrent process (GDL merging forward pass from
  :mod:`scarceseg.cluster.gdl`, triplet backward pass), :func:`run_jule`;
* :mod:`~scarceseg.methods.jule.segmenter` — :class:`JULEConfig`, :data:`CONFIGS` (``paper``, ``cpu``) and
  :class:`JuleSegmenter` (fit / segment / save / load);
* :mod:`~scarceseg.methods.jule.method` — :class:`JuleMethod`, the registered ``jule`` Segmenter.

Its CNN (Figure 2) is :class:`scarceseg.nets.jule_cnn.JuleCNN`.

Deviations from the paper (also in ``docs/jule.md``): the target region is a mask (brain mask, or Otsu
foreground by default) rather than a hand-set threshold; the backward pass uses a hinge triplet loss on
cosine similarity (see :mod:`scarceseg.methods.jule.recurrent`); the JULE hyper-parameters that paper 001
leaves to "the original JULE" (unrolling rate, ``K_s``, ``K_c``, ``lambda``, SGD settings, epochs) are our
reading of Yang et al. 2016.

References
----------
.. [1] Moriya et al., "Unsupervised segmentation of 3D medical images based on clustering and deep
   representation learning", SPIE Medical Imaging 2018 (paper 001 in ``shared/papers``).
.. [2] J. Yang, D. Parikh, D. Batra, "Joint unsupervised learning of deep representations and image
   clusters", CVPR 2016.
"""

from scarceseg.methods.jule.method import JuleMethod
from scarceseg.methods.jule.recurrent import JuleHistory, run_jule
from scarceseg.methods.jule.segmenter import (
           CONFIGS,
           FORMAT,
           JULEConfig,
           JuleSegmenter,
           get_config,
           read_region,
           resolve_region,
)

__all__ = ["CONFIGS", "FORMAT", "JULEConfig", "JuleHistory", "JuleMethod", "JuleSegmenter", "get_config", "read_region",
           "resolve_region", "run_jule"]
