"""Layouts of public data sets turned into Cases; patient-level splits.

>>> ds = open_dataset("../shared/data/lgg")          # layout detected: "lgg"
>>> parts = split_patients(ds, (0.7, 0.1, 0.2), seed=0)
>>> for case in ds.subset(parts["train"]).iter_cases(progress=True):
...     flair = case.channel("FLAIR")                   # (Y, X)
"""

from __future__ import annotations

from scarceseg.datasets.base import Dataset, Entry
from scarceseg.datasets.brats import MODALITY_ORDER
from scarceseg.datasets.layouts import DETECTION_ORDER, LAYOUTS, Layout, detect_layout, open_dataset
from scarceseg.datasets.lgg import FLAIR_CHANNEL, LGG_CHANNELS
from scarceseg.datasets.slices import SliceDataset, iter_slices, slice_case
from scarceseg.datasets.splits import SplitError, check_disjoint, kfold, n_shot, n_shot_split, split_patients

__all__ = [
    "DETECTION_ORDER",
    "FLAIR_CHANNEL",
    "LAYOUTS",
    "LGG_CHANNELS",
    "MODALITY_ORDER",
    "Dataset",
    "Entry",
    "Layout",
    "SliceDataset",
    "SplitError",
    "check_disjoint",
    "detect_layout",
    "iter_slices",
    "kfold",
    "n_shot",
    "n_shot_split",
    "open_dataset",
    "slice_case",
    "split_patients",
]
