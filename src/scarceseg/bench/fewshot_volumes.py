"""``scarceseg bench fewshot-volumes``: the few-shot learner on whole 3D volumes, every slice, lesion or not.

An automatic method must say "no lesion" where there is none. LGG ships only tumour-positive slices, so this
bench uses whole volumes (BRATS 2015 FLAIR, whole tumour; LA 2018, left atrium):

1. The volumes are shuffled once with ``seed``; the last ``test_volumes`` are held out, the others train.
2. ``shots`` labelled training slices are taken round-robin over the training volumes, each volume giving
   its lesion slices at evenly spaced ranks of lesion area (largest first), so the slices are spread over
   the volumes and over lesion sizes. ``negatives`` lesion-free training slices (with some contrast) are added
   the same way, each with an empty mask.
3. Every axial slice of each held-out volume is segmented with its neighbours in the volume
   (:func:`scarceseg.bench.fewshot_bench.segment_slices`), and again alone. Three rows per volume: every
   slice's mask, the largest 3D component of those masks (``volume_components: largest``, what ``scarceseg
   segment`` writes for a volume by default; the starred row is the model's setting), every slice alone. Each
   gives per-volume 3D Dice, lesion-free slices with any predicted voxel, and the predicted volume (ml) on them.
   Slices without contrast (outside the body) are "no lesion" without running the prior.

Output: ``OUT/per_volume.csv``, ``OUT/summary.json`` and a printed table. The cost is one prior encoding per
slice with contrast (about 3 s each on 2 cores); embeddings are cached in ``cache`` (float16 ``.npy``).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FIELDS = ("variant", "case_id", "dice", "n_slices", "n_lesion_free", "fp_slices", "fp_voxels", "fp_ml",
          "pred_ml", "true_ml", "seconds", "default")


def _spread(ranked: list[int], k: int) -> list[int]:
    """``k`` items of ``ranked`` at evenly spaced ranks (the first always included)."""
    if k >= len(ranked):
        return list(ranked)
    return [ranked[int(i)] for i in np.linspace(0, len(ranked) - 1, k).round()]


def training_slices(volumes: Sequence, shots: int, negatives: int = 0, channel: str = "flair") -> list:
    """``shots`` lesion slices and ``negatives`` lesion-free ones, round-robin over ``volumes`` (2D Cases)."""
    from scarceseg.datasets.slices import slice_case
    from scarceseg.methods.prior_fewshot import has_contrast, prior_channel

    picks = []
    for want, lesion in ((shots, True), (negatives, False)):
        if want <= 0:
            continue
        per_volume = []
        for vol in volumes:
            area = np.asarray(vol.target).reshape(vol.target.shape[0], -1).sum(1)
            if lesion:
                ranked = [int(z) for z in np.argsort(-area, kind="stable") if area[z] > 0]
            else:
                ranked = [z for z in range(len(area)) if area[z] == 0
                          and has_contrast(prior_channel(slice_case(vol, z), channel))]
            quota = -(-want // len(volumes))
            per_volume.append([slice_case(vol, z) for z in _spread(ranked, quota)])
        depth = max((len(g) for g in per_volume), default=0)
        rounds = [g[i] for i in range(depth) for g in per_volume if i < len(g)]  # round-robin over volumes
        picks += rounds[:want]
    return picks


def run_fewshot_volumes(data: str | Path, out: str | Path, shots: int = 10, negatives: Sequence[int] = (0,),
                        test_volumes: int = 1, seed: int = 0, steps: int | None = None,
                        cache_dir: str | Path | None = None, channel: str = "flair", layout: str | None = None,
                        progress: bool = True, log=print) -> dict:
    """Train on slices of some volumes (once per ``negatives`` setting), test on every slice of the others."""
    from scarceseg.bench.fewshot_bench import segment_slices, volume_scores
    from scarceseg.datasets import open_dataset
    from scarceseg.errors import InputError
    from scarceseg.methods import registry
    from scarceseg.methods.prior_fewshot import EmbeddingStore, largest_component_3d

    ds = open_dataset(data, layout=layout)
    ids = list(ds.case_ids)
    if len(ids) <= test_volumes:
        raise InputError(data, f"{len(ids)} volumes: need more than --test-volumes {test_volumes}")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    train_ids, test_ids = order[:-test_volumes], order[-test_volumes:]
    train_vols, test_vols = [ds.load(c) for c in train_ids], [ds.load(c) for c in test_ids]
    if any(v.ndim != 3 or v.target is None for v in train_vols + test_vols):
        raise InputError(data, "this bench needs labelled 3D volumes")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = EmbeddingStore(folder=Path(cache_dir) if cache_dir else out / "emb_cache")
    config = {"channel": channel} if steps is None else {"channel": channel, "steps": steps}
    rows, trained = [], {}
    for neg in negatives:
        train = training_slices(train_vols, shots, neg, channel)
        model = registry.get("fewshot")(config, store=store)  # the registered learner (PriorFewShot behind it)
        hist = model.fit(train, seed=seed, progress=progress)
        name = f"{shots} lesion + {neg} lesion-free slices"
        trained[name] = {"train_slices": [c.case_id for c in train], "train_seconds": round(hist["seconds"], 1),
                         "steps": hist["steps"]}
        log(f"{name} from {len(train_vols)} volumes: trained in {hist['seconds']:.0f} s")
        largest = model.model.config.volume_components == "largest"
        for vol in test_vols:
            t0 = time.perf_counter()
            pred = segment_slices(model, vol, progress, context=True)
            seconds = round(time.perf_counter() - t0, 1)
            # (variant, mask, seconds, what `segment` writes): the slices' masks, only their largest 3D component
            # (volume_components), and every slice alone when the model reads neighbours at all
            masks = [(f"{name}, every slice's mask", pred, seconds, not largest),
                     (f"{name}, largest 3D component", largest_component_3d(pred), seconds, largest)]
            if model.context_slices:
                t0 = time.perf_counter()
                alone = segment_slices(model, vol, progress, context=False)
                masks.append((f"{name}, slices alone", alone, round(time.perf_counter() - t0, 1), False))
            for variant, pred, seconds, default in masks:
                r = volume_scores(pred, vol, vol.spacing)
                rows.append({"variant": variant, **r, "seconds": seconds, "default": default})
                log(f"  {vol.case_id}, {variant.removeprefix(name + ', ')}: Dice {r['dice']:.3f}; "
                    f"{r['fp_slices']} of {r['n_lesion_free']} lesion-free slices with a false positive "
                    f"({r['fp_ml']} ml); predicted {r['pred_ml']} ml, true {r['true_ml']} ml")
            _write(out / "per_volume.csv", rows)
    summary = {"settings": {"data": str(data), "shots": shots, "negatives": list(negatives),
                            "test_volumes": test_ids, "train_volumes": train_ids, "seed": seed, "steps": steps,
                            "channel": channel}, "trained": trained, "rows": rows,
               "mean_dice": {v: float(np.mean([r["dice"] for r in rows if r["variant"] == v]))
                             for v in dict.fromkeys(r["variant"] for r in rows)}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log(format_table(rows))
    return summary


def _write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def format_table(rows: Sequence[dict]) -> str:
    """One line per (variant, volume)."""
    lines = ["variant (* what `scarceseg segment` writes)                   volume                     Dice   "
             "FP slices     FP ml"]
    for r in rows:
        star = "*" if r.get("default") else " "
        lines.append(f"{star}{r['variant']:<60} {r['case_id'][:26]:<26} {r['dice']:.3f}  "
                     f"{r['fp_slices']:>3}/{r['n_lesion_free']:<5} {r['fp_ml']:>8}")
    return "\n".join(lines)
