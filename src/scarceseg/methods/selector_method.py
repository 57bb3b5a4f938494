"""Paper 000 as one :class:`~scarceseg.methods.contract.Segmenter`: UDC proposals + the DQN selector.

``fit`` is training on picks: every labelled case is proposed (:func:`scarceseg.cluster.propose.propose_case`),
its pick is the candidate with the best Dice against the label (the oracle user of the paper's experiments),
and the DQN is trained on those picks (:func:`scarceseg.methods.udc_rl.train_selector_arrays`). Picks a person
made in a WORKDIR train the same network through :func:`scarceseg.store.training.train_selector_from_workdir`.
``predict`` proposes the case's candidates and returns the one the agent scores highest; :func:`segment_folder`
does that for every case of a data set, with click points from :func:`load_points` for one-click mode.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from scarceseg.cluster.candidates import best_candidate
from scarceseg.cluster.udc import UDCConfig
from scarceseg.errors import CorruptFileError, InputError, ScarcesegError
from scarceseg.io.case import Case
from scarceseg.methods.adapters import labelled
from scarceseg.methods.config import apply, config_model
from scarceseg.methods.contract import Prediction, Segmenter
from scarceseg.methods.udc_rl import (
    SEGMENT_MODES,
    Selector,
    SelectorConfig,
    train_selector_arrays,
)
from scarceseg.nets.checkpoint import json_default


def proposer_config(preset: str | None, changes: dict | None):
    """:meth:`UDCConfig.preset` with field ``changes`` (unknown fields are an :class:`InputError`); for
    ``preset="prior"`` a :class:`~scarceseg.cluster.prior_candidates.PriorCandidateConfig` with ``changes``."""
    if preset == "prior":
        from scarceseg.cluster.prior_candidates import PriorCandidateConfig

        unknown = sorted(set(changes or {}) - {f.name for f in dataclasses.fields(PriorCandidateConfig)})
        if unknown:
            raise InputError(None, f"unknown proposer config fields: {unknown}")
        try:
            return PriorCandidateConfig.from_dict(dict(changes or {}))
        except (TypeError, ValueError) as exc:
            raise InputError(None, f"bad proposer config ({exc})") from None
    base = UDCConfig.preset(preset or "fast")
    unknown = sorted(set(changes or {}) - {f.name for f in dataclasses.fields(UDCConfig)})
    if unknown:
        raise InputError(None, f"unknown proposer config fields: {unknown}")
    try:
        return dataclasses.replace(base, **(changes or {}))
    except (TypeError, ValueError) as exc:
        raise InputError(None, f"bad proposer config ({exc})") from None


class SelectorMethod(Segmenter):
    """UDC proposals + DQN selector; config: ``proposer`` (fast | faithful | prior), ``proposer_changes``
    (UDCConfig fields, or PriorCandidateConfig fields for ``prior``), ``input_channels`` (flair | all; the prior
    always sees the FLAIR channel, else channel 0), ``proposal_seed`` and any SelectorConfig field.

    ``proposer="prior"``: the candidates are the pretrained prior's masks for many box prompts of one cached
    embedding per slice (:mod:`scarceseg.cluster.prior_candidates`); ``store`` (an
    :class:`~scarceseg.methods.prior_fewshot.EmbeddingStore`) says where embeddings come from.
    """

    name = "selector"
    learns_from = "picks"  # the app and the store train it on the user's picks (scarceseg.store.training)
    schema = config_model("SelectorOptions", SelectorConfig, proposer=(str, "fast"),
                          proposer_changes=(dict[str, Any], {}), input_channels=(str, "flair"), proposal_seed=(int, 0))

    def __init__(self, config: dict | None = None, selector: Selector | None = None, store=None) -> None:
        super().__init__(config)
        options = self.options
        self.proposer = proposer_config(options.proposer, options.proposer_changes)
        self.selector_config = apply(SelectorConfig(device="cpu"), options)
        self.selector = selector
        self.store = store  # EmbeddingStore of the prior proposer (default: an in-memory one on get_prior())

    @property
    def uses_prior(self) -> bool:
        return self.options.proposer == "prior"

    def propose(self, case: Case, seed: int | None = None):
        """The candidates of ``case`` (a :class:`~scarceseg.cluster.propose.Proposal`)."""
        if self.uses_prior:
            return self._propose_prior(case)
        from scarceseg.cluster.propose import propose_case

        seed = self.options.proposal_seed if seed is None else int(seed)
        return propose_case(case, self.proposer, channels=self.options.input_channels, seed=seed)

    def _propose_prior(self, case: Case):
        import time

        from scarceseg.cluster.prior_candidates import prior_candidates
        from scarceseg.cluster.propose import Proposal
        from scarceseg.methods.prior_fewshot import EmbeddingStore, prior_channel

        t0 = time.perf_counter()
        if self.store is None:
            self.store = EmbeddingStore()
        image = prior_channel(case, "flair")
        found = prior_candidates(image, self.store.prior, self.store.get(image), self.proposer)
        candidates = [{"index": k, "area": int(m.sum()), "bbox": [int(v) for v in b], "source": src,
                       "prior_iou": float(q)}
                      for k, (m, b, src, q) in enumerate(zip(found.masks, found.boxes, found.sources, found.iou,
                                                             strict=True))]
        return Proposal(case_id=case.case_id, image=image[None], labels=np.zeros(image.shape, np.int32),
                        masks=found.masks, candidates=candidates,
                        config={**dataclasses.asdict(self.proposer), "proposer": "prior", "n_boxes": found.n_boxes},
                        seconds=time.perf_counter() - t0, patient_id=case.patient_id or "")

    #: optional ``{name: labelled cases}`` whose selection accuracy ``fit`` records every ``eval_every`` episodes
    #: (the paper's Figures 7-8); their picks are the oracle's, like the training cases'
    eval_cases: dict | None = None

    def _picks(self, cases) -> tuple[list, list, list, list, list]:
        """Images, candidate masks and oracle picks of ``cases`` (plus the ids used and ``(id, why)`` skipped)."""
        images, masks, picks, used, skipped = [], [], [], [], []
        for case in cases:
            proposal = self.proposals(case) if self.proposals is not None else self.propose(case)
            try:
                k, _ = best_candidate(proposal.masks, case.target, proposal.case_id)
            except InputError as exc:
                skipped.append((case.case_id, str(exc)))
                continue
            images.append(proposal.image)
            masks.append(np.asarray(proposal.masks, dtype=bool))
            picks.append(k)
            used.append(case.case_id)
        return images, masks, picks, used, skipped

    def fit(self, cases, budget=None, progress=False, seed=0) -> dict:
        cases = labelled(cases, "the selector")
        cfg = dataclasses.replace(self.selector_config)
        if budget is not None and not budget.is_default:
            if budget.epochs is None and budget.steps is None:
                raise InputError(None, "the selector's budget is in episodes (epochs) or steps, not CPU seconds")
            cfg.n_episodes = int(budget.epochs or -(-budget.steps // cfg.steps_per_episode))
        images, masks, picks, used, skipped = self._picks(cases)
        if not used:
            raise InputError(None, f"no case gave a usable pick (skipped: {skipped[:3]})")
        eval_sets = {name: self._picks(labelled(group, "the selector's evaluation") if group else [])[:3]
                     for name, group in (self.eval_cases or {}).items()}
        self.selector, history = train_selector_arrays(images, masks, picks, cfg, seed=seed, eval_sets=eval_sets,
                                                       progress=progress)
        self.selector.summary.update(cases=used, skipped=skipped, proposer_config=dataclasses.asdict(self.proposer))
        return {**history.as_dict(), "cases": used, "skipped": skipped}

    def _require(self) -> Selector:
        if self.selector is None:
            raise RuntimeError("the selector is not trained: call fit() or load() first")
        return self.selector

    # ---- inference: automatic, or one click per case -----------------------------------------------------
    inference_options = ("mode", "points", "seed", "proposals")
    proposals = None  # optional ``case -> Proposal`` (e.g. the proposals saved in a WORKDIR)
    mode = "automatic"
    points: dict | str | Path | None = None
    seed: int | None = None
    source: str = ""

    def set_inference(self, **options) -> None:
        """``mode`` (automatic | one-click), ``points`` (``{case_id: (y, x)}`` or a JSON/CSV file for one-click)
        and ``seed`` (of the proposals, default the config's ``proposal_seed``)."""
        super().set_inference(**options)
        self.mode = str(self.mode).replace("-", "_")
        if self.mode not in SEGMENT_MODES:
            raise ScarcesegError(f"--mode must be automatic or one-click, got {options.get('mode')!r}")
        if self.mode == "one_click":
            if self.points is None:
                raise InputError(None, "one-click mode needs click points (--points FILE)")
            if not isinstance(self.points, dict):
                self.points = load_points(self.points)

    def predict(self, case: Case) -> Prediction:
        selector = self._require()
        if self.proposals is not None:
            proposal = self.proposals(case)
        else:
            proposal = self.propose(case, seed=self.seed)
        if len(proposal.masks) == 0:  # e.g. a constant slice: the prior proposer has no candidate
            empty = np.zeros(case.shape, np.float32)
            return Prediction(empty, empty.astype(bool), {"index": None, "n_candidates": 0})
        record: dict = {}
        if self.mode == "one_click":
            point = (self.points or {}).get(case.case_id)
            if point is None:
                raise InputError(None, "no click point for this case")
            index, info = selector.select_one_click(proposal.image, proposal.masks, point)
            scores = info.pop("scores")
            record = {"point": list(point), **info}
        else:
            index, scores = selector.select_automatic(proposal.image, proposal.masks)
        mask = np.asarray(proposal.masks[index], dtype=bool)
        extra = {"index": index, "score": float(scores[index]), "scores": scores.tolist(),
                 "n_candidates": len(proposal.masks), **record}
        return Prediction(mask.astype(np.float32), mask, extra)

    def finish(self, out: Path, summary: dict) -> None:
        """``out/selection.json``: the chosen index, scores and flags per case (those kept from an earlier run
        keep their record), and the skipped cases; nothing when no case was segmented."""
        previous = _read_selection(out / "selection.json")
        selection = {c: previous[c] for c in summary.get("kept") or [] if c in previous}
        selection.update(summary["extra"])
        summary["selection"] = selection
        if not selection:
            return
        report = {"model": self.source, "mode": self.mode, "cases": selection, "skipped": summary["skipped"]}
        out.mkdir(parents=True, exist_ok=True)
        (out / "selection.json").write_text(json.dumps(report, indent=2, default=json_default), encoding="utf-8")


    def save_files(self, folder: Path) -> None:
        self._require().save(folder)

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> SelectorMethod:
        selector = Selector.load(folder, device="cpu")
        # a folder from `scarceseg train selector` before method.json: its proposals' config
        if not config and cls.name == "selector":
            saved = dict(selector.summary.get("proposer_config") or {})
            channels = saved.pop("input_channels", "flair")
            fields = {f.name for f in dataclasses.fields(UDCConfig)}
            config = {"input_channels": channels, "proposal_seed": int(saved.get("seed", 0)),
                      "proposer_changes": {k: v for k, v in saved.items() if k in fields}}
        method = cls(config, selector=selector)
        method.source = str(folder)
        return method


def _read_selection(path: Path) -> dict:
    """The per-case records of an earlier ``selection.json`` (empty when absent or unreadable)."""
    try:
        cases = json.loads(path.read_text(encoding="utf-8")).get("cases", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return cases if isinstance(cases, dict) else {}


class SelectorPriorMethod(SelectorMethod):
    """Paper 000 with the prior's candidates: :class:`SelectorMethod` with ``proposer="prior"`` by default."""

    name = "selector-prior"
    schema = config_model("SelectorPriorOptions", SelectorConfig, proposer=(str, "prior"),
                          proposer_changes=(dict[str, Any], {}), input_channels=(str, "flair"), proposal_seed=(int, 0))


# ---- use on new images ------------------------------------------------------------------------------
def load_points(path: str | Path) -> dict[str, tuple[int, int]]:
    """Click points per case from JSON ``{case_id: [y, x]}`` or CSV lines ``case_id,y,x`` (header optional)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "points file does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            return {str(k): (int(v[0]), int(v[1])) for k, v in json.loads(text).items()}
        points = {}
        for line in text.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) < 3 or not parts[0] or parts[1].lower() == "y":
                continue
            points[parts[0]] = (int(float(parts[1])), int(float(parts[2])))
        return points
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise CorruptFileError(path, f"expected {{case_id: [y, x]}} JSON or case_id,y,x CSV: {exc}") from None


def segment_folder(model_path: str | Path, data_dir: str | Path, out_dir: str | Path, mode: str = "automatic",
                   points: dict | str | Path | None = None, proposer_config: dict | None = None,
                   layout: str | None = None, channels: str = "flair", seed: int = 0,
                   progress: bool = True, force: bool = False, mask_format: str = "auto") -> dict:
    """Propose candidates for every case of ``data_dir``, pick one with the selector, write ``<case_id>.png``.

    Parameters
    ----------
    model_path : folder written by :meth:`Selector.save`
    data_dir : a data set folder :func:`scarceseg.datasets.open_dataset` understands
    out_dir : receives ``<case_id>.png`` and ``selection.json`` (chosen index, scores, flags per case)
    mode : {"automatic", "one_click"} (``"one-click"`` accepted)
    points : dict or path, required for one_click: ``{case_id: (y, x)}`` or a file for :func:`load_points`
    proposer_config : UDCConfig, preset name or dict, optional
        Passed to ``propose_case``; default: the config of the training proposals saved with the model
        (whose ``channels`` then replaces ``channels``), else the proposer's default ("fast").
    layout, channels, seed : passed to ``open_dataset`` / ``propose_case``
    force : bool
        Segment again cases whose ``<case_id>.png`` exists (default: keep them, so a rerun resumes; their
        records of ``selection.json`` are kept too).
    mask_format : {"auto", "dicom-seg"}
        ``dicom-seg`` writes ``<case_id>.dcm`` DICOM SEGs (see :func:`scarceseg.methods.folder.segment_cases`).

    Returns
    -------
    dict
        ``written`` (paths), ``kept`` (ids whose mask existed), ``skipped`` (``(case_id, reason)``),
        ``selection`` (per-case records).
    """
    from scarceseg.methods.folder import segment_folder as run

    method = SelectorMethod.load_files(Path(model_path), {})
    if proposer_config is not None:
        from scarceseg.cluster.udc import UDCConfig

        if isinstance(proposer_config, dict):  # a saved Proposal.config: UDCConfig fields plus run facts
            channels = proposer_config.get("input_channels", channels)  # "channels" is the CNN width
            proposer_config = UDCConfig.from_dict(proposer_config)
        method.proposer = UDCConfig.preset(proposer_config)
        method.options.input_channels = channels
    method.set_inference(mode=mode, points=points, seed=seed)
    summary = run(method, data_dir, out_dir, layout=layout, progress=progress, force=force, mask_format=mask_format)
    return {"written": summary["written"], "kept": summary["kept"], "skipped": summary["skipped"],
            "selection": summary.get("selection", {}), "notes": summary["notes"]}
