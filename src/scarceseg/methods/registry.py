"""The one registry of methods: a name -> (kind, "module:Class") table, imported lazily.

Every entry point (``scarceseg train METHOD``, ``scarceseg segment --model``, ``scarceseg refine``, the
browser app, the benches) finds a method here, and a model folder says in ``method.json`` which registered
method it holds, so :func:`load_model` opens any of them without special cases. Adding a method is one line
in :data:`METHODS`. Nothing scans modules.

Model folders written before ``method.json`` existed hold only the method's own ``config.json`` with a
``"format"``; :data:`LEGACY_FORMATS` maps those formats to registered names, so old folders still load.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from scarceseg.errors import InputError
from scarceseg.methods.contract import METHOD_FILE

KINDS = ("segmenter", "refiner", "proposer")


@dataclass(frozen=True)
class Entry:
    """One registered method: its kind, where its class lives, and one line for listings."""

    kind: str
    target: str
    summary: str


#: name -> Entry. The one list of methods; the order is the order of listings.
METHODS: dict[str, Entry] = {
    "unet": Entry("segmenter", "scarceseg.methods.adapters:UNetMethod",
                  "supervised 2D U-Net baseline (paper 000 recipe; preset fair)"),
    "acwe": Entry("segmenter", "scarceseg.methods.adapters:ACWEMethod",
                  "ACWE ConvNet: Chan-Vese energy as the loss, optional labels (paper 003)"),
    "pixeldrl": Entry("segmenter", "scarceseg.methods.adapters:PixelDRLMethod",
                      "PixelDRL-MG: pixel agents writing the mask, PA3C (paper 004)"),
    "pixeldrl-prior": Entry("segmenter", "scarceseg.methods.adapters:PixelDRLPriorMethod",
                            "PixelDRL-MG's pixel agents on the frozen LiteMedSAM embedding (paper 004 on the prior)"),
    "fewshot": Entry("segmenter", "scarceseg.methods.prior_fewshot_method:FewShotMethod",
                     "recommended for few labels: today prior-fewshot"),
    "prior-fewshot": Entry("segmenter", "scarceseg.methods.prior_fewshot_method:PriorFewShotMethod",
                           "fine-tuned LiteMedSAM decoder finds the lesion, its box prompts the prior"),
    "selector": Entry("segmenter", "scarceseg.methods.selector_method:SelectorMethod",
                      "UDC proposals + DQN selector trained on picks (paper 000)"),
    "selector-prior": Entry("segmenter", "scarceseg.methods.selector_method:SelectorPriorMethod",
                            "paper 000's DQN selector picking among the prior's box-prompted candidates"),
    "jule": Entry("segmenter", "scarceseg.methods.jule.method:JuleMethod",
                  "JULE representation learning + k-means on one volume (paper 001)"),
    "itermrl": Entry("refiner", "scarceseg.methods.refiner_methods:IterMRLMethod",
                     "IteR-MRL: per-voxel A2C refinement from clicks (paper 002)"),
    "rnet": Entry("refiner", "scarceseg.methods.refiner_methods:RNetMethod",
                  "R-Net-style supervised refiner (paper 002 baseline)"),
    "intercnn": Entry("refiner", "scarceseg.methods.refiner_methods:InterCNNMethod",
                      "InterCNN supervised refiner (paper 002 baseline)"),
    "mincut": Entry("refiner", "scarceseg.methods.refiner_methods:MinCutMethod",
                    "Boykov-Jolly interactive graph cut (untrained)"),
    "prior": Entry("refiner", "scarceseg.methods.refiner_methods:PriorMethod",
                   "LiteMedSAM prior re-prompted with the mask's box and the clicks (pretrained, not trained here)"),
    "prior-mincut": Entry("refiner", "scarceseg.methods.refiner_methods:PriorMinCutMethod",
                          "graph cut on the prior's probabilities, changes kept local to the newest click"),
    "udc": Entry("proposer", "scarceseg.methods.proposer_methods:UDCProposer",
                 "SLIC superpixels + clustering CNN candidates (paper 000)"),
}

#: config.json "format" of folders written before method.json -> registered name
LEGACY_FORMATS: dict[str, str] = {
    "scarceseg.unet_baseline": "unet",
    "scarceseg.prior_fewshot": "prior-fewshot",
    "scarceseg.acwe": "acwe",
    "scarceseg.pixeldrl": "pixeldrl",
    "scarceseg-udc-rl-selector": "selector",
    "scarceseg-jule": "jule",
    "scarceseg.iter_mrl": "itermrl",
    "scarceseg.supervised_refiner": "supervised_refiner",  # rnet or intercnn: decided by its config
}


def names(kind: str | None = None) -> list[str]:
    """Registered names, all or of one kind (``"segmenter"``, ``"refiner"``, ``"proposer"``)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown method kind {kind!r}; choose one of {KINDS}")
    return [n for n, e in METHODS.items() if kind is None or e.kind == kind]


def get(name: str) -> type:
    """The class registered as ``name``.

    Raises
    ------
    InputError
        ``name`` is not registered (the message lists the names).
    """
    entry = METHODS.get(name)
    if entry is None:
        raise InputError(None, f"unknown method {name!r}; registered: {', '.join(METHODS)}")
    module, cls = entry.target.split(":")
    return getattr(importlib.import_module(module), cls)


def listing() -> list[dict]:
    """``[{"name", "kind", "summary"}]`` of every registered method (without importing them)."""
    return [{"name": n, "kind": e.kind, "summary": e.summary} for n, e in METHODS.items()]


def read_method_file(folder: str | Path) -> dict:
    """The ``method.json`` of a model folder, or one derived from a legacy ``config.json``.

    Returns
    -------
    dict
        ``method`` (a registered name), ``kind`` and ``config`` (``{}`` for a legacy folder: the method
        then reads its own ``config.json``), plus ``legacy: True`` for old folders.

    Raises
    ------
    InputError
        Not a model folder, an unreadable file, or a method that is not registered.
    """
    folder = Path(folder)
    path = folder / METHOD_FILE
    if path.is_file():
        info = _read_json(path)
        name = info.get("method")
        if name not in METHODS:
            raise InputError(path, f"unknown method {name!r}; registered: {', '.join(METHODS)}")
        return {**info, "kind": METHODS[name].kind}
    legacy = folder / "config.json"
    if not folder.is_dir():
        raise InputError(folder, "model folder does not exist" if not folder.exists() else "not a model folder")
    if not legacy.is_file():
        raise InputError(folder, f"not a model folder (no config.json or {METHOD_FILE})")
    fmt = _read_json(legacy).get("format")
    name = LEGACY_FORMATS.get(str(fmt))
    if name == "supervised_refiner":
        kind = str((_read_json(legacy).get("config") or {}).get("kind", "rnet"))
        name = kind if kind in METHODS else "rnet"
    if name is None:
        raise InputError(legacy, f"unknown model format {fmt!r} (expected one of: {', '.join(LEGACY_FORMATS)})")
    return {"method": name, "kind": METHODS[name].kind, "config": {}, "legacy": True}


def load_model(folder: str | Path, kind: str | None = None):
    """Open any saved model folder through the method its ``method.json`` names.

    Parameters
    ----------
    folder : str or Path
        A model folder; for refiners also the word ``mincut`` (the untrained graph cut).
    kind : str, optional
        Require this kind (e.g. ``"refiner"`` for ``scarceseg refine``).

    Raises
    ------
    InputError
        See :func:`read_method_file`; or the folder holds another kind of method.
    """
    if str(folder) in METHODS and not Path(folder).exists():
        cls = get(str(folder))
        if getattr(cls, "untrained", False):
            _check_kind(cls.kind, kind, folder)
            return cls()
    info = read_method_file(folder)
    _check_kind(info["kind"], kind, folder)
    cls = get(info["method"])
    return cls.load_files(Path(folder), dict(info.get("config") or {}))


def load_refiner(folder: str | Path):
    """A refiner for the interactive session: a trained refiner's folder, or ``mincut`` (see :func:`load_model`)."""
    return load_model(folder, kind="refiner")


def _check_kind(actual: str, wanted: str | None, folder) -> None:
    if wanted is not None and actual != wanted:
        raise InputError(folder, f"holds a {actual}, not a {wanted}")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read the model config ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(path, "the model config is not a JSON object")
    return data
