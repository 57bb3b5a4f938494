"""Tries at the few-shot localiser that did not earn a place (docs/fewshot.md, "Two more tries").

Re-run from the repository root (the prior on OpenVINO, the embedding cache of ``bench fewshot``)::

    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/fewshot_localiser_tries.py candidates \
        --candidates bench_out/selector_prior_3seeds/prior_candidates
    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/fewshot_localiser_tries.py asymmetry --mode pos
    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/fewshot_localiser_tries.py asymmetry --mode abs
    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/fewshot_localiser_tries.py pick --pick random
    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/fewshot_localiser_tries.py boxes

``candidates`` needs the prior's candidates of the 100 test slices, which ``bench fewshot --methods
selector-prior --out OUT`` leaves in ``OUT/prior_candidates``.
"""
from __future__ import annotations

import argparse
import glob

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from scarceseg.bench.fewshot_bench import held_out, plan
from scarceseg.datasets.splits import n_shot
from scarceseg.methods import prior_fewshot as pf
from scarceseg.metrics import dice
from scarceseg.prior.prompts import box_from_mask


def mirror(t: torch.Tensor) -> torch.Tensor:
    """``t`` (1, 1, H, W) reflected about its intensity-weighted column centre (outside the image: 0)."""
    col = t[0, 0].clamp(min=0).sum(0)
    total = float(col.sum())
    cx = float((col * torch.arange(len(col))).sum()) / total if total > 0 else (len(col) - 1) / 2
    xs = torch.round(2 * cx - torch.arange(t.shape[-1])).long()
    ok = (xs >= 0) & (xs < t.shape[-1])
    out = torch.zeros_like(t)
    out[..., ok] = t[..., xs[ok]]
    return out


class AsymmetryFewShot(pf.PriorFewShot):
    """The default learner with two more localiser inputs: the left-right asymmetry's mean and max per cell."""

    mode = "pos"

    def _new_localiser(self):
        return pf.LocaliserHead(self.config.head_width, 256 + 2 + 2, self.config.head_depth)

    def _inputs(self, image, embedding):
        t = self.store.prior.preprocess(image)[0][:, :1]
        diff = t - mirror(t)
        a = diff.clamp(min=0) if self.mode == "pos" else diff.abs()
        return torch.cat([super()._inputs(image, embedding), F.avg_pool2d(a, 4), F.max_pool2d(a, 4)], dim=1)


def box_rules(model, image: np.ndarray, truth: np.ndarray) -> dict:
    """Dice of the prior's mask from the box of: the most confident localiser component (the default), the union
    of all components of >= 30 px, the union of those within 90 % of the best mean probability, the truth."""
    prob, emb = model.localise(image)
    labels, count = ndimage.label(prob > 0.5, structure=np.ones((3, 3), dtype=bool))
    index = np.arange(1, count + 1)
    sizes = ndimage.sum_labels(np.ones(prob.shape), labels, index) if count else np.zeros(0)
    means = ndimage.mean(prob, labels, index) if count else np.zeros(0)
    ok = sizes >= 30
    blobs = {"truth box": truth}
    if ok.any():
        best = index[np.lexsort((-sizes, -np.where(ok, means, -np.inf)))[0]]
        blobs.update({"confident": labels == best, "union": np.isin(labels, index[ok]),
                      "union within 90 %": np.isin(labels, index[ok & (means >= 0.9 * means[best - 1])])})
    out = {}
    for name in ("confident", "union", "union within 90 %", "truth box"):
        if name not in blobs:
            out[name] = 0.0
            continue
        mask = model.store.prior.decode(emb, box=box_from_mask(blobs[name], margin=5))[0].prob > 0.5
        out[name] = float(dice(mask, truth))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("try_", choices=["candidates", "asymmetry", "pick", "boxes"])
    ap.add_argument("--pick", choices=["largest", "random"], default="largest")
    ap.add_argument("--data", default="../shared/data/lgg")
    ap.add_argument("--cache", default="bench_out/emb_cache")
    ap.add_argument("--candidates", default="bench_out/selector_prior_3seeds/prior_candidates")
    ap.add_argument("--mode", choices=["pos", "abs"], default="pos")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    p = plan(args.data, 10, seeds, every=2, test_slices=100)
    ds = p["dataset"]
    test = [ds.load(c) for c in p["test"]]
    store = pf.EmbeddingStore(folder=args.cache)
    AsymmetryFewShot.mode = args.mode
    means = []
    pool = held_out(ds, every=2, test_slices=100)[0]
    for seed in seeds:
        ids = n_shot(ds, 10, seed=seed, pool=pool, pick=args.pick) if args.try_ == "pick" else p["train"][seed]
        train = [ds.load(c) for c in ids]
        cls = AsymmetryFewShot if args.try_ == "asymmetry" else pf.PriorFewShot
        model = cls(pf.FewShotConfig(), store=store)
        model.fit(train, seed=seed)
        rows = []
        for case in test:
            image, truth = pf.prior_channel(case), case.target.astype(bool)
            mask = model.predict_image(image)[1].astype(bool)
            if args.try_ == "boxes":
                rows.append(box_rules(model, image, truth))
                continue
            if args.try_ in ("asymmetry", "pick"):
                rows.append({"default": dice(mask, truth)})
                continue
            (path,) = glob.glob(f"{args.candidates}/{case.case_id}-*.npz")
            cands = np.unpackbits(np.load(path)["masks"], axis=-1).astype(bool)
            allc = np.concatenate([cands, mask[None]])
            prob = model.localise(image)[0]
            soft = 2 * (allc * prob[None]).sum((1, 2)) / (allc.sum((1, 2)) + prob.sum() + 1e-6)
            d = np.array([dice(c, truth) for c in allc])
            rows.append({"default": d[-1], "agreement": d[soft.argmax()],
                         "agreement, candidates only": d[:-1][soft[:-1].argmax()], "ceiling": d.max()})
        summary = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0]}
        means.append(summary)
        print(f"seed {seed}: {summary}", flush=True)
    print("mean over seeds:", {k: round(float(np.mean([m[k] for m in means])), 3) for k in means[0]})


if __name__ == "__main__":
    main()
