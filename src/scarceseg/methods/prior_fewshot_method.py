"""The few-shot prior learner behind the Segmenter contract, registered as ``prior-fewshot`` and ``fewshot``.

``fewshot`` is the name the CLI and the app recommend for few labels; today it is this learner (see
:mod:`scarceseg.methods.prior_fewshot`). Both names write and read the same files.
"""

from __future__ import annotations

from pathlib import Path

from scarceseg.io.case import Case
from scarceseg.methods.adapters import labelled
from scarceseg.methods.config import apply, config_model
from scarceseg.methods.contract import Budget, Prediction, Segmenter
from scarceseg.methods.prior_fewshot import EmbeddingStore, FewShotConfig, PriorFewShot


class PriorFewShotMethod(Segmenter):
    """Localiser (a small head on the prior's frozen embedding) + box prompt to the prior, reading each slice's
    neighbours in a stack (``context_weights``); config: any FewShotConfig field.

    A :class:`Budget` with ``steps`` sets the decoder updates, ``cpu_seconds`` stops training early; ``epochs``
    is not used (the learner counts updates, not passes).
    """

    name = "prior-fewshot"
    schema = config_model("PriorFewShotOptions", FewShotConfig)

    def __init__(self, config: dict | None = None, model: PriorFewShot | None = None,
                 store: EmbeddingStore | None = None) -> None:
        super().__init__(config)
        self.model = model if model is not None else PriorFewShot(apply(FewShotConfig(), self.options), store=store)

    def fit(self, cases, budget: Budget | None = None, progress: bool = False, seed: int = 0) -> dict:
        cases = labelled(cases, "the few-shot learner")
        self.model.meta.update(case_ids=[c.case_id for c in cases])
        return self.model.fit(cases, budget=budget, progress=progress, seed=seed)

    inference_options = ("embedding_cache",)
    embedding_cache = None

    def set_inference(self, **options) -> None:
        """``embedding_cache``: a folder of the prior's cached embeddings (read, and added to) instead of the
        model folder's own (e.g. the cache a bench shares between its workers)."""
        super().set_inference(**options)
        if self.embedding_cache is not None:
            self.model.store = EmbeddingStore(folder=Path(self.embedding_cache))

    @property
    def context_slices(self) -> int:
        """Slices each side the localiser reads in a volume (``context_weights``; 0 for older model folders)."""
        return self.model.context

    def predict(self, case: Case) -> Prediction:
        """A 2D slice alone, or every slice of a 3D volume with its neighbours (``volume_components``)."""
        if case.ndim == 3:
            return self.model.predict_volume(case)
        return self.predict_in_stack(case, {})

    def predict_in_stack(self, case: Case, neighbours) -> Prediction:
        result = self.model.predict(case, neighbours)
        extra = {k: v for k, v in result.extra.items() if k != "localiser_mask"}
        return Prediction(result.prob, result.mask, extra)

    def save_files(self, folder: Path) -> None:
        self.model.save(folder)

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> PriorFewShotMethod:
        store = EmbeddingStore(folder=Path(folder) / "cache", write=False)
        model = PriorFewShot.load(folder, store=store)
        return cls(config or {}, model=model)


class FewShotMethod(PriorFewShotMethod):
    """The recommended learner for few labels (today: :class:`PriorFewShotMethod`)."""

    name = "fewshot"
