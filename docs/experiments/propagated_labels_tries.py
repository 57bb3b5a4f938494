"""Train the localiser also on the labelled slices' neighbours, labelled by propagating the user's mask with the
prior (docs/fewshot.md, "Propagated labels").

Re-run from the repository root (the prior on OpenVINO, the embedding cache of ``bench fewshot``)::

    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/propagated_labels_tries.py

The user labels one slice per patient (the bench's 10 training slices). Its neighbours in the patient's folder
are labelled by MedSAM's 3D protocol: the box of the previous slice's mask (+ 5 px) prompts the prior on the
next slice, outward from the labelled one, until the mask vanishes (< 30 px), stops standing out from its
surroundings (less than 0.3 times the labelled slice's contrast against its ring), or ``reach`` slices are done.
Then the localiser is trained on the labelled slices and these propagated ones. The last variant propagates to
the lesion's ends and adds the slice where propagation stopped, on each side, as lesion-free (``--only NAME``
runs one variant).
LGG, 10 shots, 3 seeds, the bench's 100 test slices of 24 held-out patients, volume context on.
"""
from __future__ import annotations

import numpy as np
from _common import SeedMeans, bench_split, lgg_parser, seeds_of

from scarceseg.datasets.slices import NeighbourSlices
from scarceseg.methods import prior_fewshot as pf
from scarceseg.metrics import dice
from scarceseg.prior.prompts import box_from_mask, contrast


def propagated(store, case, neighbours, reach: int, negatives: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(image, mask)`` pairs of ``case``'s neighbours up to ``reach`` slices each side, labelled by
    propagating its mask with the prior."""
    image, truth = pf.prior_channel(case), np.asarray(case.target, dtype=bool)
    near = {o: pf.prior_channel(c) for o, c in neighbours(case, reach).items()}
    first = contrast(image, truth)
    pairs = []
    for step in (-1, 1):
        previous = truth
        for d in range(1, reach + 1):
            other = near.get(step * d)
            if other is None or not pf.has_contrast(other):
                break
            prob = store.prior.decode(store.get(other), box=box_from_mask(previous, margin=5))[0].prob
            mask = pf.largest_component(prob > 0.5)
            if mask.sum() < 30 or contrast(other, mask) < 0.3 * first:
                if negatives:
                    pairs.append((other, np.zeros_like(mask)))
                break
            pairs.append((other, mask))
            previous = mask
    return pairs


VARIANTS = {"+ propagated, 2 each side": (2, False), "+ propagated, 4 each side": (4, False),
            "+ propagated to the lesion's ends, + the slices past them lesion-free": (30, True)}


def main() -> None:
    ap = lgg_parser()
    ap.add_argument("--only", default="", help="one variant's name (default: all)")
    args = ap.parse_args()
    seeds = seeds_of(args)
    p, ds, store = bench_split(args)
    neighbours = NeighbourSlices.of_dataset(ds)
    cases = [ds.load(c) for c in p["test"]]
    table = SeedMeans()
    for seed in seeds:
        train = [ds.load(c) for c in p["train"][seed]]
        models = {"default": pf.PriorFewShot(pf.FewShotConfig(), store=store)}
        models["default"].fit(train, seed=seed)
        for name, (reach, negatives) in VARIANTS.items():
            if args.only and name != args.only:
                continue
            extra = [pair for case in train for pair in propagated(store, case, neighbours, reach, negatives)]
            flair = [(pf.prior_channel(c), c.target) for c in train]
            model = pf.PriorFewShot(pf.FewShotConfig(), store=store)
            model.fit(flair + extra, seed=seed)
            lesion = sum(int(m.any()) for _, m in extra)
            print(f"seed {seed}, {name}: {len(extra)} propagated slices ({lesion} with lesion)", flush=True)
            models[name] = model
        rows = [{name: dice(model.predict(case, neighbours(case, model.context)).mask, case.target)
                 for name, model in models.items()} for case in cases]
        table.add(seed, rows)
    table.done()


if __name__ == "__main__":
    main()
