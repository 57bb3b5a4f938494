"""``scarceseg bench loop``: label → learn → correct over a cohort, driven by the robot user (issue 15, item 4).

Protocol
--------
**Split (patient-disjoint).** The patients are split once as in ``scarceseg bench fewshot``
(:func:`scarceseg.bench.fewshot_bench.held_out`: seed 0, 70 % / 30 %). The *pool* is one slice per patient of
the 70 % (``pick="largest"``: the slice with the largest lesion; or ``"random"``), in the order the patients are
drawn with ``seed`` (:func:`scarceseg.datasets.n_shot` with ``drawn_order``), so the first ``k`` images are the
``k``-shot set of ``bench fewshot``. The *test set* is every ``every``-th slice of the 30 %, thinned evenly to
``test_slices`` (the same slices as ``bench fewshot`` with the same ``every`` and ``test_slices``). No patient is
in both.

**Stages.** ``rounds`` (e.g. 5, 10, 20) are the numbers of labelled images at which the learner is retrained;
stage 0 has no model. At the stage with ``N`` images labelled:

1. if ``N > 0``, the learner (``fewshot`` by default, created through the method registry, ``fit(seed=seed)``,
   ``steps`` overriding its updates) is trained on the ``N`` images labelled so far **with the masks the robot
   ended with, not the truth**, and its automatic Dice is measured on every test slice;
2. the next batch of pool images (``N`` up to the next round) is labelled by the robot:

   * with a model, its prediction is the starting suggestion. Dice vs truth ≥ ``target`` (0.90): **accepted**
     (one key, counted as **0 interactions**; accepts are reported in their own column). Dice ≥ ``redraw_below``
     (0.5): **corrected** with NoC-robot clicks (:class:`scarceseg.interactive.clicks.NoCRobot`, refiner
     ``prior-mincut`` by default, the suggestion's probability as its ``init``), one interaction per click, until
     Dice ≥ ``target`` or ``clicks`` (10) clicks. An empty suggestion, or one under ``redraw_below``, is
     **redrawn**: the robot draws a box (truth bounding box + 5 px, given to the prior; 1 interaction) and then
     clicks as above;
   * without a model (stage 0), every image is box + clicks.

   The last stage (``N`` = the last round) trains and tests only.

**No learning.** The same pool images are also labelled box + clicks with no model (the ``no-learning`` line):
at stage 0 both runs are the same procedure on the same images, so their interactions are equal.

**Reported per stage**: images labelled ``N``, the batch, mean interactions per image on the batch (and for no
learning), accepts / corrected / boxes (redrawn suggestions among them), clicks, the mean Dice of the labels the
robot produced (vs truth), the automatic Dice of the model trained on ``N`` on the test set (mean ± sd), training
seconds. Files: ``rounds.csv``, ``summary.json``, ``per_image.csv``, ``test_dice.csv``, ``interactions.png``
(interactions per image against images labelled, with the no-learning line; test Dice beside) and ``report.md``.

**Resuming.** After each finished stage, ``state.json`` and ``labels.npz`` (the robot's masks) are written
atomically in ``out``. A rerun with the same settings keeps the finished stages and continues with the next one,
whose first step is training the learner on the labels saved (deterministic on CPU: the same weights as an
uninterrupted run). A stage interrupted midway is redone. Other settings in the same ``out`` are refused.

Embeddings of the prior are cached (float16 ``.npy``, :class:`~scarceseg.methods.prior_fewshot.EmbeddingStore`)
and shared by the robot's box, the learner and the test, so each slice is encoded once per cache.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from scarceseg.bench.loop_report import format_table, summarise, write_outputs
from scarceseg.bench.loop_tasks import LoopJob, label_task, stage_tasks, test_task, unpack_mask
from scarceseg.errors import InputError


@dataclasses.dataclass
class LoopSettings:
    """What defines one loop run (a rerun in the same ``out`` must match it to resume)."""

    data: str
    rounds: tuple[int, ...] = (5, 10, 20)
    test_slices: int = 100
    every: int = 2
    pick: str = "largest"
    clicks: int = 10
    target: float = 0.90
    redraw_below: float = 0.5
    refiner: str = "prior-mincut"
    learner: str = "fewshot"
    steps: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        rounds = tuple(sorted({int(r) for r in self.rounds}))
        if not rounds or rounds[0] < 1:
            raise InputError(None, f"--rounds must be positive image counts, got {list(self.rounds)}")
        self.rounds = rounds
        if not 0 < self.target <= 1 or not 0 <= self.redraw_below <= self.target:
            raise InputError(None, f"need 0 <= redraw_below <= target <= 1, got {self.redraw_below}, {self.target}")
        if self.clicks < 0 or self.test_slices < 1 or self.every < 1:
            raise InputError(None, "--clicks must be >= 0, --test-slices and --every >= 1")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "rounds": list(self.rounds)}


# ---- the split --------------------------------------------------------------------------------------------
def plan_loop(data: str | Path, n_pool: int, seed: int = 0, every: int = 2, test_slices: int = 100,
              pick: str = "largest", layout: str | None = None) -> dict:
    """``{"dataset", "pool": [ids in labelling order], "test": [ids]}``, patient-disjoint."""
    from scarceseg.bench.fewshot_bench import held_out
    from scarceseg.datasets import check_disjoint, n_shot, open_dataset

    ds = open_dataset(data, layout=layout)
    train_part, test = held_out(ds, every=every, test_slices=test_slices)
    patients = len({ds.patient_of(c) for c in train_part})
    if n_pool > patients:
        raise InputError(data, f"the last round asks for {n_pool} images, one per patient, but the pool has "
                         f"{patients} patients")
    pool = n_shot(ds, n_pool, seed=seed, pool=train_part, pick=pick, drawn_order=True)
    check_disjoint({"pool": pool, "test": test}, ds)
    return {"dataset": ds, "pool": pool, "test": test}


# ---- learner through the registry -------------------------------------------------------------------------
def registry_learner(name: str, store=None) -> Callable[[], object]:
    """A factory of fresh learners registered as ``name`` (a segmenter); the fewshot ones share ``store``."""
    from scarceseg.methods import registry

    cls = registry.get(name)
    if getattr(cls, "kind", "") != "segmenter":
        raise InputError(None, f"--learner must be a segmenter; {name!r} is a {getattr(cls, 'kind', '?')}")
    takes_store = "store" in inspect.signature(cls.__init__).parameters

    def make():
        return cls(None, store=store) if takes_store else cls(None)

    return make


# ---- the loop ---------------------------------------------------------------------------------------------
def run_loop_bench(data: str | Path, out: str | Path, rounds: Sequence[int] = (5, 10, 20), test_slices: int = 100,
                   every: int = 2, pick: str = "largest", clicks: int = 10, target: float = 0.90,
                   redraw_below: float = 0.5, refiner: str = "prior-mincut", learner: str = "fewshot",
                   steps: int | None = None, seed: int = 0, cache_dir: str | Path | None = None,
                   threads: int | None = 1, layout: str | None = None, prior=None, progress: bool = False,
                   log: Callable[[str], None] = print, make_learner: Callable[[], object] | None = None,
                   workers: int | None = None, ray: str | None = None) -> dict:
    """Run the loop (see the module docstring) and write its files to ``out``; returns the summary.

    ``prior`` (a loaded LiteMedSAM) and ``make_learner`` (a factory of fresh learners) are for tests; by default
    the shared prior and :func:`registry_learner` of ``learner``.

    Training runs here; each stage's test slices and labelled images are one task each on the cohort runner: in
    this process (``workers`` 1, the default), on a local process pool (``workers`` N) or on Ray (``ray``). A
    worker opens the saved model through the registry and shares the embedding cache. Finished tasks of an
    interrupted stage are kept under ``out/.runs/`` and not redone (the retrained model is the same).
    """
    import torch

    from scarceseg.bench.interactive_bench import make_refiner
    from scarceseg.methods.contract import Budget
    from scarceseg.methods.prior_fewshot import EmbeddingStore
    from scarceseg.nets.runtime import torch_threads

    settings = LoopSettings(data=str(data), rounds=tuple(rounds), test_slices=test_slices, every=every, pick=pick,
                            clicks=clicks, target=target, redraw_below=redraw_below, refiner=refiner,
                            learner=learner, steps=steps, seed=seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out, settings)
    labels = _load_labels(out)
    stages = [0, *settings.rounds]
    p = plan_loop(data, stages[-1], seed=seed, every=every, test_slices=test_slices, pick=pick, layout=layout)
    ds = p["dataset"]
    log(f"loop: pool of {len(p['pool'])} images (one per patient), {len(p['test'])} test slices of "
        f"{len({ds.patient_of(c) for c in p['test']})} other patients; stages at {stages} labelled")
    store = EmbeddingStore(prior=prior, folder=Path(cache_dir) if cache_dir else out / "emb_cache")
    try:
        made_refiner = make_refiner(refiner, store.prior)
    except ValueError as exc:
        raise InputError(None, f"--refiner: {exc}") from None
    make = make_learner or registry_learner(learner, store)
    budget = Budget(steps=steps) if steps else None
    pool_cases = {c: ds.load(c) for c in p["pool"]}
    test_cases = [ds.load(c) for c in p["test"]]

    in_process = ray is None and (workers or 1) == 1
    cache = str(Path(cache_dir) if cache_dir else out / "emb_cache")
    todo = [i for i, n in enumerate(stages) if str(n) not in state["stages"]]
    if len(todo) < len(stages):
        log(f"resuming: stages {[n for n in stages if str(n) in state['stages']]} found in {out}")
    with torch_threads(threads if in_process else None):
        for i in todo:
            n, nxt = stages[i], stages[i + 1] if i + 1 < len(stages) else None
            record = {"labelled": n, "batch": [], "no_learning": [], "test": [], "train_seconds": None,
                      "steps": None, "seconds": {}}
            t_stage, model = time.perf_counter(), None
            if n:
                train = [dataclasses.replace(pool_cases[c], label=labels[c].astype(np.uint8))
                         for c in p["pool"][:n]]
                model = make()
                t0, c0 = time.perf_counter(), time.process_time()
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    hist = model.fit(train, budget=budget, seed=seed)
                record["train_seconds"] = round(time.perf_counter() - t0, 2)
                record["seconds"]["train_cpu"] = round(time.process_time() - c0, 2)
                record["steps"] = hist.get("steps") if isinstance(hist, dict) else None
            job = LoopJob(refiner, cache, clicks, target, redraw_below, data=str(data), layout=layout,
                          live={"model": model, "refiner": made_refiner, "store": store})
            if not in_process and model is not None:
                import tempfile

                from scarceseg.bench.cohort import read_folder

                with tempfile.TemporaryDirectory(prefix="scarceseg-loop-save-") as tmp:
                    model.save(tmp)
                    job.model_files = read_folder(Path(tmp))
            run = dict(job=job, out=out / ".runs" / f"stage-{n}", workers=workers, ray=ray, progress=progress)
            if n:
                records = stage_tasks(test_task, test_cases, "test", description=f"stage {n}: testing", **run)
                record["test"] = [records[c.case_id] for c in test_cases]
            if nxt is not None:
                batch = [pool_cases[c] for c in p["pool"][n:nxt]]
                records = stage_tasks(label_task, batch, "label", description=f"stage {n}: labelling", **run)
                for case in batch:
                    rec, base = records[case.case_id], {"case_id": case.case_id, "patient": ds.patient_of(case.case_id)}
                    labels[case.case_id] = unpack_mask(rec)
                    record["batch"].append({**base, **rec["got"]})
                    record["no_learning"].append({**base, **rec["plain"]})
            record["seconds"]["stage"] = round(time.perf_counter() - t_stage, 2)
            state["stages"][str(n)] = record
            _save(out, state, labels)
            log(_stage_line(record))
    summary = summarise(state, settings)
    write_outputs(out, summary, state)
    log(format_table(summary["table"]))
    log(f"written to {out}")
    return summary


def run_loop_seeds(data: str | Path, out: str | Path, seeds: Sequence[int], cache_dir: str | Path | None = None,
                   log: Callable[[str], None] = print, **kwargs) -> dict:
    """:func:`run_loop_bench` once per seed, in ``out/seed<S>/`` (each resumable on its own), sharing one
    embedding cache (default ``out/emb_cache``); then the pooled table (``pooled.md``, ``pooled.csv``,
    ``pooled.json`` in ``out``). Returns ``{"seeds": {seed: summary}, "pooled": rows}``."""
    from scarceseg.bench.loop_report import format_pooled, write_pooled

    out = Path(out)
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    cache = Path(cache_dir) if cache_dir else out / "emb_cache"
    summaries = {}
    for s in seeds:
        log(f"== seed {s} ==")
        summaries[s] = run_loop_bench(data, out / f"seed{s}", seed=s, cache_dir=cache, log=log, **kwargs)
    rows = write_pooled(out, summaries)
    log(format_pooled(rows))
    log(f"pooled table written to {out / 'pooled.md'}")
    return {"seeds": summaries, "pooled": rows}


def _stage_line(record: dict) -> str:
    parts = [f"stage {record['labelled']} labelled:"]
    if record["test"]:
        d = [t["dice"] for t in record["test"]]
        sd = float(np.std(d, ddof=1)) if len(d) > 1 else 0.0
        parts.append(f"test Dice {np.mean(d):.3f} ± {sd:.3f} (trained in {record['train_seconds']} s)")
    if record["batch"]:
        parts.append(f"batch of {len(record['batch'])}: {np.mean([b['interactions'] for b in record['batch']]):.2f} "
                     f"interactions/image (no learning "
                     f"{np.mean([b['interactions'] for b in record['no_learning']]):.2f})")
    return " ".join(parts)


# ---- state (resuming) -------------------------------------------------------------------------------------
def _load_state(out: Path, settings: LoopSettings) -> dict:
    path = out / "state.json"
    wanted = settings.to_dict()
    if not path.is_file():
        return {"settings": wanted, "stages": {}}
    state = json.loads(path.read_text(encoding="utf-8"))
    if state.get("settings") != wanted:
        diff = sorted(k for k in wanted if state.get("settings", {}).get(k) != wanted[k])
        raise InputError(path, f"holds a loop run with other settings ({', '.join(diff)}): use another --out")
    return state


def _load_labels(out: Path) -> dict[str, np.ndarray]:
    path = out / "labels.npz"
    if not path.is_file():
        return {}
    with np.load(path) as f:
        return {k: f[k].astype(bool) for k in f.files}


def _save(out: Path, state: dict, labels: dict[str, np.ndarray]) -> None:
    """``labels.npz`` then ``state.json``, each written to a temporary name and renamed."""
    tmp = out / "labels.tmp.npz"
    np.savez_compressed(tmp, **labels)
    os.replace(tmp, out / "labels.npz")
    tmp = out / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / "state.json")
