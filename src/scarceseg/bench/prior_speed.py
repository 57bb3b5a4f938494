"""``scarceseg bench prior-click`` and ``scarceseg bench prior-speed``: the click → mask strategies on a fixed
slice subset, and the prior's speed (embedding, box → mask, click → mask) with the load average beside."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from scarceseg.metrics import dice


def run_click_bench(data: Path, every: int = 8, limit: int | None = None,
                    methods: Sequence[str] | None = None, out: Path | None = None, threads: int | None = 1,
                    prior=None, echo: Callable = print) -> dict:
    """Mean/median Dice of each click → mask strategy from one click at the truth's innermost pixel.

    Also the truth box + 5 px on the same slices, as the reference a click tries to reach.
    """
    from scarceseg.bench.interactive_bench import first_gesture, load_slices
    from scarceseg.interactive.clicks import innermost_pixel
    from scarceseg.methods.prior_click import CLICK_METHODS, click_to_mask
    from scarceseg.nets.runtime import torch_threads

    methods = list(methods or CLICK_METHODS)
    if prior is None:
        from scarceseg.prior import get_prior

        prior = get_prior()
    scores: dict = {m: [] for m in ["box+5", *methods]}
    times: dict = {m: [] for m in methods}
    partial = None if out is None else Path(out) / "click_methods.partial.jsonl"
    if partial is not None:
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text("", encoding="utf-8")
    with torch_threads(threads):
        slices = load_slices(Path(data), every=every, limit=limit, echo=echo)
        for i, (sid, image, target) in enumerate(slices):
            prob, _ = first_gesture(prior, image, target, "box")
            scores["box+5"].append(dice(prob > 0.5, target))
            point = innermost_pixel(target)
            done: dict = {}
            for m in methods:
                t0 = time.perf_counter()
                if m == "vote" and {"reboxed", "grow"} <= done.keys():
                    # vote = the better-scored of grow and reboxed: no new decoding (times add up)
                    res = max(done["grow"][0], done["reboxed"][0], key=lambda r: r.score)
                    ms = done["grow"][1] + done["reboxed"][1]
                else:
                    res = click_to_mask(prior, image, point, method=m)
                    ms = 1000 * (time.perf_counter() - t0)
                done[m] = (res, ms)
                times[m].append(ms)
                scores[m].append(dice(res.prob > 0.5, target))
            if partial is not None:
                with partial.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"slice": sid, **{m: v[-1] for m, v in scores.items()}}) + "\n")
            echo(f"  {i + 1}/{len(slices)}")
    table = {m: {"mean_dice": float(np.mean(v)), "median_dice": float(np.median(v)), "slices": len(v),
                 "median_ms": float(np.median(times[m])) if m in times else None} for m, v in scores.items()}
    echo("method | mean Dice | median Dice | median ms (after the embedding)")
    for m, r in table.items():
        ms = "" if r["median_ms"] is None else f"{r['median_ms']:.0f}"
        echo(f"{m} | {r['mean_dice']:.3f} | {r['median_dice']:.3f} | {ms}")
    result = {"meta": {"data": str(data), "every": every, "threads": threads, "load_average": os.getloadavg()},
              "table": table}
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "click_methods.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def run_speed_bench(repeats: int = 5, threads: int = 2, size: int = 256, prior=None,
                    backends: Sequence[str] = ("torch",), echo: Callable = print) -> dict:
    """Median seconds of the embedding of a ``size``² image and ms of box / click → mask after it.

    Each repeat embeds a fresh image (no cache hit). With several ``backends`` (``torch``, ``onnx``,
    ``openvino``: where the image encoder runs) the same images go through each in turn, alternating
    within every repeat, and the table gives each backend's embedding time, its ratio to the first
    backend's, the largest absolute difference of its embedding from the first's and the Dice of its
    box mask against the first's. The load average is printed beside, since the machine may be shared.
    """
    import torch

    from scarceseg.methods.prior_click import click_to_mask
    from scarceseg.nets.runtime import torch_threads
    from scarceseg.prior.model import LiteMedSAM

    if prior is None:
        from scarceseg.prior import get_prior

        prior = get_prior()
    backends = list(dict.fromkeys(backends)) or ["torch"]
    priors = {}
    for name in backends:
        priors[name] = prior if getattr(prior, "backend", "torch") == name else LiteMedSAM(prior.net, backend=name)
    used = {name: p.backend for name, p in priors.items()}
    priors = {name: p for name, p in priors.items() if used[name] == name or name == backends[0]}
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    base = 40 + 150 * (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) <= (size / 8) ** 2)
    times = {name: {"embed_s": [], "box_ms": [], "click_ms": []} for name in priors}
    diffs = {name: {"max_abs": [], "box_dice": []} for name in priors}
    box = (size // 2 - size // 8 - 5, size // 2 - size // 8 - 5, size // 2 + size // 8 + 5, size // 2 + size // 8 + 5)
    with torch_threads(threads), torch.inference_mode():
        for r in range(repeats + 1):  # the first round warms up (and builds the ONNX file if needed)
            image = (base + rng.normal(0, 5, base.shape)).astype(np.float32)
            ref = None
            for name, p in priors.items():
                t0 = time.perf_counter()
                emb = p.embed(image)
                embed_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                mask = p.decode(emb, box=box)[0].prob > 0.5
                box_ms = 1000 * (time.perf_counter() - t0)
                t0 = time.perf_counter()
                click_to_mask(p, image, (size // 2, size // 2))
                click_ms = 1000 * (time.perf_counter() - t0)
                if ref is None:
                    ref = (emb.features, mask)
                diffs[name]["max_abs"].append(float((emb.features - ref[0]).abs().max()))
                diffs[name]["box_dice"].append(dice(mask, ref[1]))
                if r:
                    for key, value in (("embed_s", embed_s), ("box_ms", box_ms), ("click_ms", click_ms)):
                        times[name][key].append(value)
    first = next(iter(priors))
    rows = {}
    for name in priors:
        row = {key: float(np.median(v)) for key, v in times[name].items()}
        row["embed_ratio"] = rows.get(first, row)["embed_s"] / row["embed_s"]
        row["max_abs_diff"] = max(diffs[name]["max_abs"])
        row["min_box_dice"] = min(diffs[name]["box_dice"])
        rows[name] = row
    result = {"threads": threads, "size": size, "repeats": repeats, "backends": rows,
              "load_average": list(os.getloadavg())}
    result.update({key: rows[first][key] for key in ("embed_s", "box_ms", "click_ms")})
    for name in backends:
        if name not in priors:
            echo(f"backend {name}: not available here (see the line above), left out")
    echo(f"{size}x{size} image, {threads} threads, median of {repeats} (targets: embedding <= 0.5 s, "
         "box or click -> mask <= 50 ms)")
    echo(f"backend | embedding s | {first} / it | max |emb - {first}| | box-mask Dice vs {first} | box ms | click ms")
    for name, row in rows.items():
        echo(f"{name} | {row['embed_s']:.2f} | {row['embed_ratio']:.2f} | {row['max_abs_diff']:.1e} | "
             f"{row['min_box_dice']:.4f} | {row['box_ms']:.0f} | {row['click_ms']:.0f}")
    echo("load average (1, 5, 15 min): " + ", ".join(f"{v:.1f}" for v in result["load_average"])
         + f" on {os.cpu_count()} cores")
    return result
