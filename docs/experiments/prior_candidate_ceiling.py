"""The candidate ceiling of ``selector-prior`` (best candidate's Dice) under other candidate settings.

Re-run from the repository root (the prior on OpenVINO, the embedding cache of ``bench fewshot``)::

    SCARCESEG_PRIOR_BACKEND=openvino python docs/experiments/prior_candidate_ceiling.py \
        --variant default --variant fine [--limit N]

On ``bench fewshot``'s 100 test slices (LGG, ``--every 2 --test-slices 100``): for each box variant, the mean
best-candidate Dice among the first 24 candidates (the default cap, which keeps the prior's best-scored ones)
and among all that survive deduplication, the candidates and boxes per slice, and the seconds per slice
(decoding only; the embeddings come from the cache). Greedy deduplication in score order makes the capped
list the head of the uncapped one, so one decode gives both. Docs: docs/fewshot.md, "Paper 000 with prior candidates".
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from scarceseg.bench.fewshot_bench import plan
from scarceseg.cluster.prior_candidates import PriorCandidateConfig, prior_candidates
from scarceseg.methods import prior_fewshot as pf
from scarceseg.metrics import dice

CAP = 24  # PriorCandidateConfig's default max_candidates
VARIANTS = {
    "default": {},
    "fine": {"scales": (0.1, 0.15, 0.2, 0.3), "overlap": 0.5},  # more, smaller grid boxes
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/lgg")
    ap.add_argument("--cache", default="bench_out/emb_cache")
    ap.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    ap.add_argument("--limit", type=int, default=None, help="first N test slices only")
    args = ap.parse_args()
    p = plan(args.data, 10, [0], every=2, test_slices=100)
    ids = p["test"][: args.limit] if args.limit else p["test"]
    cases = [p["dataset"].load(c) for c in ids]
    store = pf.EmbeddingStore(folder=args.cache)
    for name in args.variant or ["default"]:
        cfg = PriorCandidateConfig(**{**VARIANTS[name], "max_candidates": 10_000})
        best, capped, count, boxes, seconds = [], [], [], [], []
        for case in cases:
            image, truth = pf.prior_channel(case), case.target.astype(bool)
            emb = store.get(image)
            t0 = time.perf_counter()
            cands = prior_candidates(image, store.prior, emb, cfg)
            seconds.append(time.perf_counter() - t0)
            d = [dice(m, truth) for m in cands.masks]
            best.append(max(d, default=0.0))
            capped.append(max(d[:CAP], default=0.0))
            count.append(len(cands.masks))
            boxes.append(cands.n_boxes)
        print(f"{name}: ceiling {np.mean(capped):.3f} with the first {CAP} candidates, {np.mean(best):.3f} with all "
              f"(median {np.median(best):.3f}, >= 0.85 on {100 * np.mean(np.asarray(best) >= 0.85):.0f} % of "
              f"slices), {np.mean(count):.0f} candidates and "
              f"{np.mean(boxes):.0f} boxes per slice, {np.median(seconds):.2f} s per slice (median), "
              f"{len(cases)} slices", flush=True)


if __name__ == "__main__":
    main()
