"""scarceseg: medical image segmentation when labels are scarce.

Data flows one way: file -> Case -> method -> mask (+ probabilities) -> metrics -> report.
"""

from __future__ import annotations

__version__ = "0.1.0"
