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

import csv
import dataclasses
import inspect
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError

BOX_MARGIN = 5  # issue 13's protocol: truth box + 5 px
STARTS = ("accept", "correct", "redraw", "box")  # how the robot started an image
TABLE_FIELDS = ("labelled", "batch", "interactions", "interactions_no_learning", "accepts", "corrected",
                "boxes", "clicks", "label_dice", "test_dice_mean", "test_dice_sd", "train_seconds")
IMAGE_FIELDS = ("stage", "run", "case_id", "patient", "start", "suggestion_dice", "interactions", "clicks",
                "dice")


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


# ---- the robot user ---------------------------------------------------------------------------------------
def robot_label(image: np.ndarray, target: np.ndarray, refiner, box_prob: Callable[[], np.ndarray],
                suggestion=None, clicks: int = 10, goal: float = 0.90, redraw_below: float = 0.5) -> dict:
    """Label one image as the robot user does; returns ``mask`` (what it ends with) and the counts.

    Parameters
    ----------
    image : ndarray, shape (Y, X)
        What the refiner sees.
    target : ndarray of bool, shape (Y, X)
        The truth (the robot looks at it to decide and to click; it is never the label).
    refiner
        ``refine(image, prob, clicks, init=) -> prob``.
    box_prob : callable
        ``() -> prob (Y, X)``: the prior's answer to the truth's box + 5 px (called only when a box is drawn).
    suggestion : Prediction, optional
        The model's prediction (``prob``, ``mask``); None: no model, the robot draws a box.

    Returns
    -------
    dict
        ``mask`` (bool (Y, X)), ``start`` (one of :data:`STARTS`), ``suggestion_dice`` (None without a model),
        ``interactions`` (box 1, each click 1, accept 0), ``clicks``, ``dice`` (of ``mask`` vs truth).
    """
    from scarceseg.interactive.clicks import NoCRobot
    from scarceseg.metrics import dice

    target = np.asarray(target, dtype=bool)
    start, sdice, interactions = "box", None, 0
    prob0 = None
    if suggestion is not None:
        mask = np.asarray(suggestion.mask, dtype=bool)
        sdice = float(dice(mask, target))
        if mask.any() and sdice >= goal:
            return {"mask": mask, "start": "accept", "suggestion_dice": sdice, "interactions": 0, "clicks": 0,
                    "dice": sdice}
        if mask.any() and sdice >= redraw_below:
            start = "correct"
            prob0 = np.asarray(suggestion.prob, dtype=np.float32)
            if not np.array_equal(prob0 > 0.5, mask):  # a method whose mask is not prob > 0.5
                prob0 = mask.astype(np.float32)
        else:
            start = "redraw"
    if prob0 is None:
        prob0 = np.asarray(box_prob(), dtype=np.float32)
        interactions = 1
    prob, given, robot = prob0, [], NoCRobot()
    for step in range(1, clicks + 1):
        if dice(prob > 0.5, target) >= goal:
            break
        new = robot(prob > 0.5, target, step)
        if not new:
            break
        given.extend(new)
        prob = refiner.refine(image, prob, given, init=prob0)
    mask = prob > 0.5
    return {"mask": mask, "start": start, "suggestion_dice": sdice, "interactions": interactions + len(given),
            "clicks": len(given), "dice": float(dice(mask, target))}


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


# ---- per-case tasks on the cohort runner --------------------------------------------------------------------
@dataclasses.dataclass
class LoopJob:
    """The shared object of one stage's tasks (test and label): the trained model, the refiner and the settings.

    In this process the live objects are used; a pool or Ray worker gets the model folder's files (bytes) and
    opens them through the registry, loads its own prior, and shares the embedding cache folder.
    """

    refiner: str
    cache_dir: str | None
    clicks: int
    target: float
    redraw_below: float
    model_files: dict | None = None  # None: no model (stage 0)
    live: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)  # model, refiner, store

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["live"] = {}
        return state

    def parts(self) -> tuple[object, object, object]:
        """``(model or None, refiner, embedding store)``, built once per process."""
        if not self.live:
            from scarceseg.bench.interactive_bench import make_refiner
            from scarceseg.methods.prior_fewshot import EmbeddingStore

            store = EmbeddingStore(folder=self.cache_dir)
            model = None
            if self.model_files is not None:
                import tempfile

                from scarceseg.methods.registry import load_model

                self.live["folder"] = tempfile.TemporaryDirectory(prefix="scarceseg-loop-model-")
                folder = Path(self.live["folder"].name)
                for name, data in self.model_files.items():
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)
                    (folder / name).write_bytes(data)
                model = load_model(folder, kind="segmenter")
                if "embedding_cache" in model.inference_options and self.cache_dir is not None:
                    model.set_inference(embedding_cache=self.cache_dir)
            self.live.update(model=model, refiner=make_refiner(self.refiner, store.prior), store=store)
        return self.live.get("model"), self.live["refiner"], self.live["store"]


def test_task(job: LoopJob, item) -> object:
    """Dice of the stage's model on one test slice."""
    from scarceseg.bench.runner import CaseResult
    from scarceseg.metrics import dice

    case = item.data
    model, _, _ = job.parts()
    t0 = time.perf_counter()
    pred = model.predict(case)
    return CaseResult(record={"case_id": case.case_id, "dice": round(float(dice(pred.mask, case.target)), 6),
                              "seconds": round(time.perf_counter() - t0, 3)})


def label_task(job: LoopJob, item) -> object:
    """The robot labels one pool image twice: from the model's suggestion (the loop) and with no model."""
    from scarceseg.bench.runner import CaseResult
    from scarceseg.methods.prior_fewshot import prior_channel
    from scarceseg.prior.prompts import box_from_mask

    case = item.data
    model, refiner, store = job.parts()
    image, truth = prior_channel(case), np.asarray(case.target, dtype=bool)
    answer: list = []

    def box_prob():  # the prior's answer to the truth box, computed once for both runs
        if not answer:
            answer.append(store.prior.decode(store.get(image), box=box_from_mask(truth, BOX_MARGIN))[0].prob)
        return answer[0]

    t0 = time.perf_counter()
    suggestion = model.predict(case) if model is not None else None
    got = robot_label(image, truth, refiner, box_prob, suggestion, job.clicks, job.target, job.redraw_below)
    t1 = time.perf_counter()
    plain = robot_label(image, truth, refiner, box_prob, None, job.clicks, job.target, job.redraw_below)
    t2 = time.perf_counter()
    mask = got.pop("mask")
    plain.pop("mask")
    return CaseResult(record={"got": {**got, "seconds": round(t1 - t0, 3)},
                              "plain": {**plain, "seconds": round(t2 - t1, 3)},
                              "shape": list(mask.shape), "mask": np.packbits(mask).tobytes().hex()})


def _unpack(record: dict) -> np.ndarray:
    shape = tuple(record["shape"])
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(record["mask"]), dtype=np.uint8))
    return bits[: int(np.prod(shape))].reshape(shape).astype(bool)


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
            job = LoopJob(refiner, cache, clicks, target, redraw_below,
                          live={"model": model, "refiner": made_refiner, "store": store})
            if not in_process and model is not None:
                import tempfile

                from scarceseg.bench.cohort import read_folder

                with tempfile.TemporaryDirectory(prefix="scarceseg-loop-save-") as tmp:
                    model.save(tmp)
                    job.model_files = read_folder(Path(tmp))
            run = dict(job=job, out=out / ".runs" / f"stage-{n}", workers=workers, ray=ray, progress=progress)
            if n:
                records = _stage_tasks(test_task, test_cases, "test", description=f"stage {n}: testing", **run)
                record["test"] = [records[c.case_id] for c in test_cases]
            if nxt is not None:
                batch = [pool_cases[c] for c in p["pool"][n:nxt]]
                records = _stage_tasks(label_task, batch, "label", description=f"stage {n}: labelling", **run)
                for case in batch:
                    rec, base = records[case.case_id], {"case_id": case.case_id, "patient": ds.patient_of(case.case_id)}
                    labels[case.case_id] = _unpack(rec)
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


def _stage_tasks(task, cases, kind: str, job: LoopJob, out: Path, workers, ray, progress: bool,
                 description: str) -> dict:
    """Run ``task`` once per case on the cohort runner; ``{case_id: record}``. A case that fails twice stops
    the loop with its reason (a stage is never finished with a case missing)."""
    from scarceseg.bench.runner import CohortItem, run_cohort
    from scarceseg.errors import ScarcesegError

    items = [CohortItem(c.case_id, c) for c in cases]
    report = run_cohort(task, items, out / kind, shared=job, workers=workers or 1, ray=ray, progress=progress,
                        description=description)
    if report.failed or report.skipped:
        lost = ", ".join(f"{cid} ({why})" for cid, why in report.failed + report.skipped)
        raise ScarcesegError(f"{description}: {len(report.failed) + len(report.skipped)} case(s) failed: {lost}")
    return {cid: report.records[cid] for cid in (i.case_id for i in items)}


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


# ---- summary and files ------------------------------------------------------------------------------------
def summarise(state: dict, settings: LoopSettings | None = None) -> dict:
    """``{"settings", "table": [one row per stage], "accept_counts_as": 0}`` from the finished stages."""
    rows = []
    for key in sorted(state["stages"], key=int):
        r = state["stages"][key]
        batch, plain, test = r["batch"], r["no_learning"], [t["dice"] for t in r["test"]]
        ids = [b["case_id"] for b in batch]
        rows.append({
            "labelled": r["labelled"],
            "batch": f"{r['labelled'] + 1}-{r['labelled'] + len(batch)}" if batch else "",
            "batch_ids": ids,
            "interactions": float(np.mean([b["interactions"] for b in batch])) if batch else None,
            "interactions_accept_as_one": (float(np.mean([b["interactions"] + (b["start"] == "accept")
                                                          for b in batch])) if batch else None),
            "interactions_no_learning": float(np.mean([b["interactions"] for b in plain])) if plain else None,
            "accepts": sum(b["start"] == "accept" for b in batch),
            "corrected": sum(b["start"] == "correct" for b in batch),
            "boxes": sum(b["start"] in ("redraw", "box") for b in batch),
            "redrawn": sum(b["start"] == "redraw" for b in batch),
            "clicks": sum(b["clicks"] for b in batch),
            "label_dice": float(np.mean([b["dice"] for b in batch])) if batch else None,
            "label_dice_no_learning": float(np.mean([b["dice"] for b in plain])) if plain else None,
            "test_dice_mean": float(np.mean(test)) if test else None,
            "test_dice_sd": float(np.std(test, ddof=1)) if len(test) > 1 else (0.0 if test else None),
            "test_slices": len(test),
            "train_seconds": r["train_seconds"],
            "steps": r["steps"],
            "train_cpu_seconds": r["seconds"].get("train_cpu"),
            "stage_seconds": r["seconds"].get("stage"),
        })
    return {"settings": settings.to_dict() if settings else state.get("settings"), "accept_counts_as": 0,
            "table": rows}


def format_table(rows: Sequence[dict]) -> str:
    """The printed (Markdown) table of :func:`summarise`'s rows."""
    head = ["labelled", "batch", "interactions/image", "no learning", "accepts", "corrected", "boxes",
            "label Dice", "auto Dice on test (mean ± sd)", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(v, fmt):
        return "—" if v is None else format(v, fmt)

    for r in rows:
        test = "—" if r["test_dice_mean"] is None else f"{r['test_dice_mean']:.3f} ± {r['test_dice_sd']:.3f}"
        cells = [str(r["labelled"]), r["batch"] or "—", f(r["interactions"], ".2f"),
                 f(r["interactions_no_learning"], ".2f"), str(r["accepts"]), str(r["corrected"]), str(r["boxes"]),
                 f(r["label_dice"], ".3f"), test, f(r["train_seconds"], ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(out: Path, summary: dict, state: dict) -> None:
    """``rounds.csv``, ``summary.json``, ``per_image.csv``, ``test_dice.csv``, ``interactions.png``, ``report.md``."""
    rows = summary["table"]
    with (out / "rounds.csv").open("w", newline="", encoding="utf-8") as fh:
        extra = ["interactions_accept_as_one", "redrawn", "label_dice_no_learning", "test_slices", "steps",
                 "train_cpu_seconds", "stage_seconds"]
        w = csv.DictWriter(fh, fieldnames=[*TABLE_FIELDS, *extra], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    with (out / "per_image.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=IMAGE_FIELDS, extrasaction="ignore")
        w.writeheader()
        for key in sorted(state["stages"], key=int):
            r = state["stages"][key]
            for run, recs in (("loop", r["batch"]), ("no-learning", r["no_learning"])):
                w.writerows({**b, "stage": r["labelled"], "run": run} for b in recs)
    with (out / "test_dice.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["labelled", "case_id", "dice"])
        for key in sorted(state["stages"], key=int):
            w.writerows([state["stages"][key]["labelled"], t["case_id"], t["dice"]]
                        for t in state["stages"][key]["test"])
    plot_loop(rows, out / "interactions.png", title=_title(summary.get("settings") or {}))
    s = summary.get("settings") or {}
    text = (f"Label → learn → correct on {s.get('data')}: learner {s.get('learner')} (steps "
            f"{s.get('steps') or 'default'}), refiner {s.get('refiner')}, target Dice {s.get('target')}, at most "
            f"{s.get('clicks')} clicks, seed {s.get('seed')}. An accepted suggestion counts 0 interactions (accepts "
            "are their own column); a box 1; each click 1. 'boxes' counts the images the robot started with a box "
            f"(no model, or a suggestion under Dice {s.get('redraw_below')} redrawn). 'label Dice' is the robot's "
            "masks (the training labels) against the truth.")
    (out / "report.md").write_text(text + "\n\n" + format_table(rows) + "\n", encoding="utf-8")


def _title(s: dict) -> str:
    return (f"{Path(str(s.get('data', ''))).name}: learner {s.get('learner')}, refiner {s.get('refiner')}, "
            f"seed {s.get('seed')}")


def plot_loop(rows: Sequence[dict], path: Path, title: str = "") -> None:
    """Interactions per image against images labelled (loop and no learning), and test Dice (Okabe-Ito colours)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from scarceseg.bench.interactive_bench import PALETTE

    fig = Figure(figsize=(9, 3.8), dpi=120)
    FigureCanvasAgg(fig)
    ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    lab = [r for r in rows if r["interactions"] is not None]
    ax.plot([r["labelled"] for r in lab], [r["interactions"] for r in lab], marker="o", color=PALETTE[0],
            label="label → learn → correct")
    ax.plot([r["labelled"] for r in lab], [r["interactions_no_learning"] for r in lab], marker="s", linestyle="--",
            color=PALETTE[1], label="no learning (box + clicks)")
    ax.set_xticks([r["labelled"] for r in lab])
    ax.set_xlabel("images labelled before the batch")
    ax.set_ylabel("interactions per image (accept = 0)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    tested = [r for r in rows if r["test_dice_mean"] is not None]
    bx.errorbar([r["labelled"] for r in tested], [r["test_dice_mean"] for r in tested],
                yerr=[r["test_dice_sd"] for r in tested], marker="^", color=PALETTE[2], capsize=3)
    bx.set_xticks([r["labelled"] for r in tested])
    bx.set_xlabel("images labelled (training set)")
    bx.set_ylabel("automatic Dice on the test set")
    bx.set_ylim(0, 1)
    bx.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(str(path))
