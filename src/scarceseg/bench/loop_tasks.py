"""The robot user of ``scarceseg bench loop`` and its per-case tasks on the cohort runner.

:func:`robot_label` labels one image (accept, correct with clicks, or box + clicks); :func:`test_task` and
:func:`label_task` are one test slice and one labelled image of a stage, run by :func:`stage_tasks` through
:func:`~scarceseg.bench.runner.run_cohort` (in this process, on a local pool or on Ray) with a :class:`LoopJob`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

BOX_MARGIN = 5  # issue 13's protocol: truth box + 5 px
STARTS = ("accept", "correct", "redraw", "box")  # how the robot started an image


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
    data: str | None = None  # the data set folder, whose slices give a model that reads them its neighbours
    layout: str | None = None
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
                from scarceseg.bench.cohort import open_model_files

                self.live["folder"], model = open_model_files(self.model_files)
                if "embedding_cache" in model.inference_options and self.cache_dir is not None:
                    model.set_inference(embedding_cache=self.cache_dir)
            self.live.update(model=model, refiner=make_refiner(self.refiner, store.prior), store=store)
        return self.live.get("model"), self.live["refiner"], self.live["store"]

    def neighbours(self):
        """The data set's :class:`~scarceseg.datasets.slices.NeighbourSlices` (``None`` without ``data``)."""
        if self.data is None:
            return None
        if "neighbours" not in self.live:
            from scarceseg.datasets import open_dataset
            from scarceseg.datasets.slices import NeighbourSlices

            self.live["neighbours"] = NeighbourSlices.of_dataset(open_dataset(self.data, layout=self.layout))
        return self.live["neighbours"]


def test_task(job: LoopJob, item) -> object:
    """Dice of the stage's model on one test slice."""
    from scarceseg.bench.runner import CaseResult
    from scarceseg.methods.contract import predict_case
    from scarceseg.metrics import dice

    case = item.data
    model, _, _ = job.parts()
    t0 = time.perf_counter()
    pred = predict_case(model, case, job.neighbours())
    return CaseResult(record={"case_id": case.case_id, "dice": round(float(dice(pred.mask, case.target)), 6),
                              "seconds": round(time.perf_counter() - t0, 3)})


def label_task(job: LoopJob, item) -> object:
    """The robot labels one pool image twice: from the model's suggestion (the loop) and with no model."""
    from scarceseg.bench.runner import CaseResult
    from scarceseg.methods.contract import predict_case
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
    suggestion = predict_case(model, case, job.neighbours()) if model is not None else None
    got = robot_label(image, truth, refiner, box_prob, suggestion, job.clicks, job.target, job.redraw_below)
    t1 = time.perf_counter()
    plain = robot_label(image, truth, refiner, box_prob, None, job.clicks, job.target, job.redraw_below)
    t2 = time.perf_counter()
    mask = got.pop("mask")
    plain.pop("mask")
    return CaseResult(record={"got": {**got, "seconds": round(t1 - t0, 3)},
                              "plain": {**plain, "seconds": round(t2 - t1, 3)},
                              "shape": list(mask.shape), "mask": np.packbits(mask).tobytes().hex()})


def unpack_mask(record: dict) -> np.ndarray:
    shape = tuple(record["shape"])
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(record["mask"]), dtype=np.uint8))
    return bits[: int(np.prod(shape))].reshape(shape).astype(bool)


def stage_tasks(task, cases, kind: str, job: LoopJob, out: Path, workers, ray, progress: bool,
                 description: str) -> dict:
    """Run ``task`` once per case on the cohort runner; ``{case_id: record}``. A case that fails twice stops
    the loop with its reason (a stage is never finished with a case missing)."""
    from scarceseg.bench.runner import CohortItem, run_cohort

    items = [CohortItem(c.case_id, c) for c in cases]
    report = run_cohort(task, items, out / kind, shared=job, workers=workers or 1, ray=ray, progress=progress,
                        description=description)
    return report.records_of_all(items, description)
