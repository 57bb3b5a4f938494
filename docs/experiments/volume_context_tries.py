"""Tries at the few-shot learner's volume context (docs/fewshot.md, "Volume context").

Re-run from the repository root (the prior on OpenVINO, the embedding cache of ``bench fewshot``)::

    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/volume_context_tries.py weights
    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/volume_context_tries.py stack
    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/volume_context_tries.py channels

``weights``: the default learner's trained heads, with other ``context_weights`` (the first is the slice's own).
``stack``: whole-stack rules on each test patient's slices: a second pass that also reads the neighbours' decoded
masks; the largest 3D component of the decoded masks; a slice outside that component re-prompted with the box of
the component on the nearest slice. ``channels``: the localiser also reads the pre- and post-contrast channels.
All: LGG, 10 shots, 3 seeds, the bench's 100 test slices of 24 held-out patients.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from _common import SeedMeans, bench_split, lgg_parser, seeds_of
from scipy import ndimage

from scarceseg.datasets.slices import NeighbourSlices, stack_position
from scarceseg.methods import prior_fewshot as pf
from scarceseg.metrics import dice
from scarceseg.prior.embeddings import image_key
from scarceseg.prior.prompts import box_from_mask

WEIGHTS = {"alone": (1.0,), "0.5/0.25": (0.5, 0.25), "1/3 each": (0.34, 0.33), "default 0.30/0.20/0.15":
           (0.30, 0.20, 0.15), "0.2 x5": (0.2, 0.2, 0.2), "0.2 x7": (0.2, 0.2, 0.2, 0.2),
           "0.20/0.18/0.15/0.10/0.05": (0.20, 0.18, 0.15, 0.10, 0.05)}
FULL: dict[str, object] = {}  # image key -> its case (for the extra channels)


class ChannelsFewShot(pf.PriorFewShot):
    """The default learner whose localiser also reads channels 0 and 2's 4x4 mean and max."""

    def _new_localiser(self):
        return pf.LocaliserHead(self.config.head_width, 256 + 2 + 4, self.config.head_depth)

    def _inputs(self, image, embedding):
        case = FULL[image_key(image)]
        extra = []
        for ch in (0, 2):
            t = self.store.prior.preprocess(np.asarray(case.image[ch], np.float32))[0][:, :1]
            extra += [F.avg_pool2d(t, 4), F.max_pool2d(t, 4)]
        return torch.cat([super()._inputs(image, embedding), *extra], dim=1)


def decode(model, image, blob):
    if blob.sum() < model.config.min_area:
        return np.zeros(blob.shape, dtype=bool)
    return model.store.prior.decode(model.store.get(image), box=box_from_mask(blob, margin=5))[0].prob > 0.5


def stack_rules(model, ds, test) -> list[dict]:
    """Per test slice: Dice of the default (context), the two-pass, the largest-3D and the re-prompt rules."""
    rows = []
    by_patient: dict[str, list] = {}
    for cid in ds.case_ids:
        by_patient.setdefault(ds.patient_of(cid), []).append(cid)
    for patient in sorted({ds.patient_of(c) for c in test}):
        cases = sorted((ds.load(c) for c in by_patient[patient]), key=lambda c: stack_position(c)[1])
        images = [pf.prior_channel(c) for c in cases]
        index = [stack_position(c)[1] for c in cases]
        near = [{index[j] - index[i]: images[j] for j in range(len(cases)) if 0 < abs(index[j] - index[i]) <= 2}
                for i in range(len(cases))]
        own = [model._localise_cached(im) for im in images]
        stacked = [model.stack_probability(own[i], near[i]) for i in range(len(cases))]
        masks = np.stack([decode(model, images[i], pf.confident_component(stacked[i], 0.5, 30))
                          for i in range(len(cases))])
        # second pass: 70 % the stacked probability, 30 % the neighbours' decoded masks (same weights, no self)
        w = model.config.context_weights
        second = []
        for i in range(len(cases)):
            pairs = [(w[abs(d)], masks[index.index(index[i] + d)]) for d in (-2, -1, 1, 2) if index[i] + d in index]
            mix = sum(a * m for a, m in pairs) / sum(a for a, _ in pairs) if pairs else 0 * stacked[i]
            second.append(decode(model, images[i], pf.confident_component(0.7 * stacked[i] + 0.3 * mix, 0.5, 30)))
        labels, count = ndimage.label(masks, structure=np.ones((3, 3, 3), dtype=bool))
        main = labels == (1 + int(np.argmax(np.bincount(labels.ravel())[1:]))) if count else np.zeros_like(masks)
        with_main = [i for i in range(len(cases)) if main[i].any()]
        for i, case in enumerate(cases):
            if case.case_id not in test:
                continue
            truth = case.target.astype(bool)
            reprompt = masks[i]
            if not main[i].any() and with_main:
                nearest = min(with_main, key=lambda j: abs(j - i))
                reprompt = decode(model, images[i], main[nearest])
            rows.append({"context (default)": dice(masks[i], truth), "two-pass": dice(second[i], truth),
                         "largest 3D component": dice(main[i], truth), "re-prompt outside it": dice(reprompt, truth)})
    return rows


def main() -> None:
    ap = lgg_parser()
    ap.add_argument("try_", choices=["weights", "stack", "channels"])
    args = ap.parse_args()
    seeds = seeds_of(args)
    p, ds, store = bench_split(args)
    neighbours = NeighbourSlices.of_dataset(ds)
    load = ds.load
    if args.try_ == "channels":
        def load(cid, _load=ds.load):  # remember every loaded case by its FLAIR image
            case = _load(cid)
            FULL[image_key(pf.prior_channel(case))] = case
            return case
        neighbours._load = load
    test = set(p["test"])
    table = SeedMeans()
    for seed in seeds:
        cls = ChannelsFewShot if args.try_ == "channels" else pf.PriorFewShot
        model = cls(pf.FewShotConfig(), store=store)
        model.fit([load(c) for c in p["train"][seed]], seed=seed)
        if args.try_ == "stack":
            rows = stack_rules(model, ds, test)
        else:
            rows = []
            variants = WEIGHTS if args.try_ == "weights" else {"alone": (1.0,), "context (default)": None}
            cases = [load(c) for c in p["test"]]
            default = model.config
            for case in cases:
                row = {}
                for name, weights in variants.items():
                    model.config = default if weights is None else dataclasses.replace(default, context_weights=weights)
                    row[name] = dice(model.predict(case, neighbours(case, model.context)).mask, case.target)
                rows.append(row)
            model.config = default
        table.add(seed, rows)
    table.done()


if __name__ == "__main__":
    main()
