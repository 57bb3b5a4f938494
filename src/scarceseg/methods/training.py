"""Train any registered method on a data set folder: what ``scarceseg train METHOD`` and the browser app call.

:func:`train_method` opens the data set, loads the chosen cases, builds the method from the registry with a
validated config (unknown keys are an error), fits it within the budget and writes the model folder
(``method.json`` + the method's files + ``history.json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from scarceseg.errors import InputError
from scarceseg.methods.config import read_config_file
from scarceseg.methods.contract import Budget

#: the ``--config`` words that name a preset rather than a file
FILE_SUFFIXES = (".json", ".yaml", ".yml")


def config_values(config: str | Path | None, preset_key: str = "preset", **changes) -> dict:
    """The config dict behind a ``--config`` argument: a YAML/JSON file's mapping, or ``{preset_key: word}``.

    ``changes`` that are not ``None`` (command-line overrides such as ``epochs``) replace the file's values.
    """
    values: dict = {}
    if config is not None:
        text = str(config)
        if Path(text).suffix.lower() in FILE_SUFFIXES or Path(text).is_file():
            values = read_config_file(text)
        else:
            values = {preset_key: text}
    values.update({k: v for k, v in changes.items() if v is not None})
    return values


def read_case_ids(path: str | Path | None) -> list[str] | None:
    """Case ids from a text file, one per line (blank lines ignored); ``None`` without a file."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "case list does not exist")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def train_method(
    name: str,
    data_dir: str | Path,
    out_dir: str | Path,
    config: dict | None = None,
    case_ids: Sequence[str] | None = None,
    budget: Budget | None = None,
    seed: int = 0,
    layout: str | None = None,
    progress: bool = True,
) -> dict:
    """Train the registered method ``name`` on (some of) the labelled cases of ``data_dir`` and save it.

    Parameters
    ----------
    name : str
        A name of :data:`scarceseg.methods.registry.METHODS` of kind segmenter or refiner.
    data_dir : str or Path
        Any folder :func:`scarceseg.datasets.open_dataset` understands.
    out_dir : str or Path
        The model folder to write.
    config : dict, optional
        The method's config (see its ``schema``).
    case_ids : sequence of str, optional
        Training cases (default: all).
    budget : Budget, optional
    seed : int
    layout : str, optional
    progress : bool

    Returns
    -------
    dict
        ``history`` (what ``fit`` returned), ``out_dir``, ``n_cases``, ``method``.
    """
    from scarceseg.datasets import open_dataset
    from scarceseg.methods.registry import METHODS, get

    if name in METHODS and METHODS[name].kind == "proposer":
        raise InputError(None, f"{name} is a proposer: it has nothing to train")
    method = get(name)(config or {})
    ds = open_dataset(data_dir, layout=layout)
    ids = list(case_ids) if case_ids is not None else list(ds.case_ids)
    if not ids:
        raise InputError(data_dir, "no training cases")
    cases = [ds.load(cid) for cid in ids]
    history = method.fit(cases, budget, progress=progress, seed=seed)
    out = method.save(out_dir)
    (out / "history.json").write_text(json.dumps(history, indent=1, default=_plain) + "\n", encoding="utf-8")
    return {"history": history, "out_dir": str(out), "n_cases": len(cases), "method": name}


def _plain(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
