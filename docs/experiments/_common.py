"""What the experiment scripts share: the LGG bench's arguments and the per-seed summary lines."""
from __future__ import annotations

import argparse

import numpy as np


def lgg_parser(description: str | None = None) -> argparse.ArgumentParser:
    """``--data``, ``--cache`` (the embedding cache of ``bench fewshot``) and ``--seeds`` (comma-separated)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", default="../shared/data/lgg")
    ap.add_argument("--cache", default="bench_out/emb_cache")
    ap.add_argument("--seeds", default="0,1,2")
    return ap


def seeds_of(args: argparse.Namespace) -> list[int]:
    return [int(s) for s in args.seeds.split(",")]


def bench_split(args: argparse.Namespace, shots: int = 10):
    """``(plan, dataset, store)``: ``bench fewshot``'s split (every 2nd slice of the test patients, thinned to
    100; ``shots`` training slices per seed) and the embedding store on ``--cache``."""
    from scarceseg.bench.fewshot_bench import plan
    from scarceseg.prior.embeddings import EmbeddingStore

    p = plan(args.data, shots, seeds_of(args), every=2, test_slices=100)
    return p, p["dataset"], EmbeddingStore(folder=args.cache)


class SeedMeans:
    """Prints each seed's mean per column (``add``), then the mean over seeds (``done``)."""

    def __init__(self) -> None:
        self.means: list[dict[str, float]] = []

    def add(self, seed: int, rows: list[dict[str, float]], note: str = "") -> None:
        summary = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0]}
        self.means.append(summary)
        print(f"seed {seed} ({len(rows)} slices{note}): {summary}", flush=True)

    def done(self) -> None:
        print("mean over seeds:", {k: round(float(np.mean([m[k] for m in self.means])), 3) for k in self.means[0]})
