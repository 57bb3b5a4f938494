"""Medical image I/O: read by file ending into a :class:`Case`, write masks.

Readers always return a :class:`Case` (image float32, channels first, spatial ``(Z, Y, X)`` or
``(Y, X)``, spacing in the same order); masks are integer label maps of the spatial shape.
"""

from __future__ import annotations

from scarceseg.io.case import Case
from scarceseg.io.checks import check_finite, require_2d, require_3d, to_label_map
from scarceseg.io.formats import MASK_WRITE_ENDINGS, SUPPORTED_ENDINGS, ending_of, is_supported_file, stem_of
from scarceseg.io.info import describe, format_description
from scarceseg.io.readers import read_image, read_mask
from scarceseg.io.writers import write_mask

__all__ = [
    "MASK_WRITE_ENDINGS",
    "SUPPORTED_ENDINGS",
    "Case",
    "check_finite",
    "describe",
    "ending_of",
    "format_description",
    "is_supported_file",
    "read_image",
    "read_mask",
    "require_2d",
    "require_3d",
    "stem_of",
    "to_label_map",
    "write_mask",
]
