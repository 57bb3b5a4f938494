"""Tries at the few-shot learner's localiser inputs, ensembles and box (docs/fewshot.md, "Localiser inputs").

Re-run from the repository root (the prior on OpenVINO, the embedding cache of ``bench fewshot``)::

    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/localiser_inputs_tries.py box
    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/localiser_inputs_tries.py inputs
    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/localiser_inputs_tries.py ensemble

``box``: the default learner's trained heads, with other ways from its probability to the decoder's box (a
hysteresis component grown into ``prob > 0.3``; a wider margin; a margin in proportion to the box).
``inputs``: the head also reads the FLAIR's z-score within the body (per 4x4 patch mean and max, and their mean
over 3x3 and 9x9 patches) instead of, or beside, the min-max normalised image's.
``ensemble``: the mean probability of 3 heads trained with different seeds on the same slices.
``fit``: fit against generalisation: the default head's Dice (its localiser's confident component, and the whole
learner) on its own training slices and on the test slices, every slice alone (``--shots 50`` for 50 shots).
All: LGG, 10 shots, 3 seeds, the bench's 100 test slices of 24 held-out patients, volume context on.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from _common import SeedMeans, bench_split, lgg_parser, seeds_of
from scipy import ndimage

import scarceseg.prior.prompts as prompts
from scarceseg.datasets.slices import NeighbourSlices
from scarceseg.methods import prior_fewshot as pf
from scarceseg.metrics import dice

ORIGINAL_COMPONENT = pf.confident_component
ORIGINAL_BOX = prompts.box_from_mask


def zscore_features(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Per 4x4 patch mean and max of the image's z-score within the body (``tensor`` > 0.02), and the mean over
    3x3 and 9x9 patches: 4 maps ``(1, 1, 64, 64)``."""
    body = tensor > 0.02
    values = tensor[body]
    z = torch.zeros_like(tensor)
    if values.numel() > 1:
        z = torch.where(body, (tensor - values.mean()) / (values.std() + 1e-6), z).clamp(-3, 5)
    mean = F.avg_pool2d(z, 4)
    return [mean, F.max_pool2d(z, 4), F.avg_pool2d(mean, 3, 1, 1, count_include_pad=False),
            F.avg_pool2d(mean, 9, 1, 4, count_include_pad=False)]


class ZScoreFewShot(pf.PriorFewShot):
    """The default learner whose head reads the z-score maps, beside (``keep``) or instead of the min-max ones."""

    keep = True

    def _new_localiser(self):
        return pf.LocaliserHead(self.config.head_width, 256 + 2 * self.keep + 4, self.config.head_depth)

    def _inputs(self, image, embedding):
        tensor = self.store.prior.preprocess(image)[0][:, :1]
        base = super()._inputs(image, embedding) if self.keep else embedding.features
        return torch.cat([base, *zscore_features(tensor)], dim=1)


class ZScoreOnly(ZScoreFewShot):
    keep = False


class Ensemble(pf.PriorFewShot):
    """The mean localiser probability of several trained heads (``members``) on one embedding store."""

    members: list[pf.PriorFewShot] = []

    def localise(self, image):
        outs = [m.localise(image) for m in self.members]
        return np.mean([p for p, _ in outs], axis=0).astype(np.float32), outs[0][1]


def hysteresis(low: float):
    def component(prob, threshold=0.5, min_area=1):
        seed = ORIGINAL_COMPONENT(prob, threshold, min_area)
        if not seed.any():
            return seed
        return ndimage.binary_propagation(seed, structure=np.ones((3, 3), bool), mask=prob > low)
    return component


def proportional_box(fraction: float):
    def box(mask, margin=0):
        tight = ORIGINAL_BOX(mask, 0)
        if tight is None:
            return None
        x0, y0, x1, y1 = tight
        grow = max(margin, fraction * max(x1 - x0, y1 - y0))
        return prompts.clamp_box((x0 - grow, y0 - grow, x1 + grow, y1 + grow), mask.shape)
    return box


class Recording(pf.PriorFewShot):
    """The default learner that remembers the localiser probability of its last slice (for the prompt tries)."""

    last: np.ndarray | None = None

    def stack_probability(self, prob, neighbours):
        self.last = super().stack_probability(prob, neighbours)
        return self.last

    def localise(self, image):
        prob, emb = super().localise(image)
        self.last = prob
        return prob, emb


def extra_prompt(kind: str):
    """A wrapper of the prior's ``decode`` that adds, to the box, the last localiser probability as a mask
    prompt (``mask``) or a positive point at its most probable pixel inside the box (``point``)."""
    def wrap(model):
        original = model.store.prior.decode

        def decode(embedding, box=None, **kwargs):
            prob = model.last
            if kind == "again":  # SAM's refinement: the box again, with the decoder's own first low-res logits
                first = original(embedding, box=box, **kwargs)[0]
                return original(embedding, box=box, mask_logits=first.logits, **kwargs)
            if kind == "mask":
                h, w = embedding.resized_shape
                logits = torch.logit(torch.as_tensor(prob)[None, None].clamp(1e-4, 1 - 1e-4))
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
                kwargs["mask_logits"] = F.pad(logits, (0, 256 - w, 0, 256 - h), value=-9.2)[0, 0].numpy()
            else:
                y0, x0, y1, x1 = box
                inside = prob[y0:y1 + 1, x0:x1 + 1]
                y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
                kwargs.update(points=[(y0 + y, x0 + x)], labels=[1])
            return original(embedding, box=box, **kwargs)
        return original, decode
    return wrap


BOX_VARIANTS = {"default": {}, "hysteresis 0.3": {"component": hysteresis(0.3)},
                "hysteresis 0.2": {"component": hysteresis(0.2)}, "margin 10": {"margin": 10},
                "margin 15 % of side": {"box": proportional_box(0.15)},
                "box + mask prompt": {"prompt": extra_prompt("mask")},
                "box + point at the most probable pixel": {"prompt": extra_prompt("point")},
                "box then box + its own mask": {"prompt": extra_prompt("again")},
                "mean of the decoder's and the localiser's probability": {"blend": 0.5}}


def predict_variant(model, case, near, variant: dict) -> np.ndarray:
    default = model.config
    pf.confident_component = variant.get("component", ORIGINAL_COMPONENT)
    prompts.box_from_mask = variant.get("box", ORIGINAL_BOX)
    if "margin" in variant:
        model.config = dataclasses.replace(default, margin=variant["margin"])
    original = None
    if "prompt" in variant:
        original, model.store.prior.decode = variant["prompt"](model)
    try:
        out = model.predict(case, near)
        if "blend" in variant:
            a = variant["blend"]
            return (a * out.prob + (1 - a) * model.last) > model.config.threshold
        return out.mask
    finally:
        pf.confident_component, prompts.box_from_mask, model.config = ORIGINAL_COMPONENT, ORIGINAL_BOX, default
        if original is not None:
            model.store.prior.decode = original


def main() -> None:
    ap = lgg_parser()
    ap.add_argument("try_", choices=["box", "inputs", "ensemble", "fit"])
    ap.add_argument("--variants", default="", help="comma-separated names of the box variants to run (all)")
    ap.add_argument("--shots", type=int, default=10)
    args = ap.parse_args()
    seeds = seeds_of(args)
    p, ds, store = bench_split(args, args.shots)
    neighbours = NeighbourSlices.of_dataset(ds)
    cases = [ds.load(c) for c in p["test"]]
    table = SeedMeans()
    if args.try_ == "fit":
        alone = pf.FewShotConfig(context_weights=(1.0,))
        for seed in seeds:
            model = pf.PriorFewShot(alone, store=store)
            train = [ds.load(c) for c in p["train"][seed]]
            model.fit(train, seed=seed)
            for name, group in (("training slices", train), ("test slices", cases)):
                loc = [dice(pf.confident_component(model.localise(pf.prior_channel(c))[0], 0.5, 30), c.target)
                       for c in group]
                full = [dice(model.predict(c).mask, c.target) for c in group]
                print(f"seed {seed}, {args.shots} shots, {name} ({len(group)}): localiser {np.mean(loc):.3f}, "
                      f"learner {np.mean(full):.3f}", flush=True)
        return
    for seed in seeds:
        train = [ds.load(c) for c in p["train"][seed]]
        models: dict[str, pf.PriorFewShot] = {"default": Recording(pf.FewShotConfig(), store=store)}
        if args.try_ == "inputs":
            models["z-score beside min-max"] = ZScoreFewShot(pf.FewShotConfig(), store=store)
            models["z-score instead"] = ZScoreOnly(pf.FewShotConfig(), store=store)
        for model in models.values():
            model.fit(train, seed=seed)
        if args.try_ == "ensemble":
            members = [models["default"]]
            for k in (1, 2):
                extra = pf.PriorFewShot(pf.FewShotConfig(), store=store)
                extra.fit(train, seed=seed + 1000 * k)
                members.append(extra)
                ens = Ensemble(pf.FewShotConfig(), store=store)
                ens.members, ens.decoder = list(members), members[0].decoder
                models[f"ensemble of {k + 1}"] = ens
        rows = []
        for case in cases:
            row = {}
            for name, model in models.items():
                near = neighbours(case, model.context)
                if args.try_ == "box":
                    chosen = args.variants.split(",") if args.variants else list(BOX_VARIANTS)
                    for vname in chosen:
                        variant = BOX_VARIANTS[vname]
                        row[vname] = dice(predict_variant(model, case, near, variant), case.target)
                else:
                    row[name] = dice(model.predict(case, near).mask, case.target)
            rows.append(row)
        table.add(seed, rows)
    table.done()


if __name__ == "__main__":
    main()
