"""Does the localiser find lesions better from the prior's earlier encoder layers? (docs/fewshot.md)

Re-run from the repository root (the prior's torch encoder for the layers, the embedding cache of
``bench fewshot`` for the final embedding)::

    python docs/experiments/encoder_layers_tries.py

The localiser head reads, beside the final embedding (256 channels, 64x64) and the intensity channels, the
output of one of TinyViT's earlier stages: stage 0 (128 channels at 128x128, averaged to 64x64) or stage 1
(160 channels at 64x64). Every slice alone (no volume context), LGG, 10 shots, 3 seeds, the bench's 100 test
slices. The stages' outputs are cached as float16 in ``bench_out/encoder_layers_cache``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import SeedMeans, bench_split, lgg_parser, seeds_of

from scarceseg.methods import prior_fewshot as pf
from scarceseg.metrics import dice
from scarceseg.prior.embeddings import image_key

CACHE = Path("bench_out/encoder_layers_cache")
STAGES = {"stage 0": (0, 128), "stage 1": (1, 160)}


def stage_outputs(prior, image: np.ndarray) -> dict[int, torch.Tensor]:
    """Stages 0 and 1 of the prior's image encoder on ``image``, as ``(1, C, 64, 64)`` maps (cached)."""
    path = CACHE / f"{image_key(image)}.npz"
    if path.exists():
        data = np.load(path)
        return {k: torch.from_numpy(data[f"s{k}"].astype(np.float32)) for k in (0, 1)}
    encoder = prior.net.image_encoder
    seen: dict[int, torch.Tensor] = {}
    hooks = [encoder.layers[k].register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o)) for k in (0, 1)]
    try:
        with torch.inference_mode():
            encoder(prior.preprocess(image)[0])
    finally:
        for hook in hooks:
            hook.remove()
    maps = {}
    for k, tokens in seen.items():
        side = int(round(tokens.shape[1] ** 0.5))
        grid = tokens.transpose(1, 2).reshape(1, tokens.shape[2], side, side)
        maps[k] = F.adaptive_avg_pool2d(grid, 64) if side != 64 else grid
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"s{k}": v.numpy().astype(np.float16) for k, v in maps.items()})
    return maps


class StageFewShot(pf.PriorFewShot):
    """The default learner whose head also reads one earlier encoder stage."""

    stage = 1
    channels = 160

    def _new_localiser(self):
        return pf.LocaliserHead(self.config.head_width, 256 + 2 + self.channels, self.config.head_depth)

    def _inputs(self, image, embedding):
        extra = stage_outputs(self.store.prior, image)[self.stage]
        return torch.cat([super()._inputs(image, embedding), extra], dim=1)


def main() -> None:
    ap = lgg_parser()
    args = ap.parse_args()
    seeds = seeds_of(args)
    p, ds, store = bench_split(args)
    cases = [ds.load(c) for c in p["test"]]
    alone = pf.FewShotConfig(context_weights=(1.0,))
    table = SeedMeans()
    for seed in seeds:
        train = [ds.load(c) for c in p["train"][seed]]
        models = {"default": pf.PriorFewShot(alone, store=store)}
        for name, (stage, channels) in STAGES.items():
            model = StageFewShot(alone, store=store)
            model.stage, model.channels = stage, channels
            models[f"+ {name}"] = model
        for model in models.values():
            model.fit(train, seed=seed)
        rows = [{name: dice(model.predict(case).mask, case.target) for name, model in models.items()}
                for case in cases]
        table.add(seed, rows, note=", every slice alone")
    table.done()


if __name__ == "__main__":
    main()
