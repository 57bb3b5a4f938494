"""Model folders: ``model.safetensors`` (weights) + ``config.json`` (format, config, facts), read with clear errors.

Shared by the methods that save a single torch network (U-Net, ACWE, PixelDRL-MG, the refiners, the selector,
JULE). Weights are only ever read with safetensors (no pickle).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from scarceseg.errors import InputError


def json_default(obj):
    """``json.dumps`` ``default`` for what model configs hold besides plain JSON: numpy scalars, arrays, paths."""
    if isinstance(obj, np.integer | np.floating):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def save_checkpoint(folder: str | Path, net: torch.nn.Module, info: dict, weights_file: str = "model.safetensors",
                    config_file: str = "config.json") -> Path:
    """Write ``net``'s weights and ``info`` (JSON) into ``folder`` (created); returns the folder."""
    from safetensors.torch import save_file

    from scarceseg.io.safe_write import replacing, write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with replacing(folder / weights_file) as tmp:  # no-follow: a symlinked file is refused
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    write_text(folder / config_file, json.dumps(info, indent=2, default=json_default) + "\n")
    return folder


def read_checkpoint_info(folder: str | Path, fmt: str, folder_desc: str, model_desc: str,
                         weights_file: str = "model.safetensors",
                         config_file: str = "config.json") -> tuple[dict, Path]:
    """The config dict of a model folder and the path of its weights.

    Raises
    ------
    InputError
        A file is missing (``"missing: not <folder_desc>"``), the config is unreadable, or its ``format`` is
        not ``fmt`` (``"not <model_desc> (format ...)"``).
    """
    folder = Path(folder)
    cfg_path, w_path = folder / config_file, folder / weights_file
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise InputError(p, f"missing: not {folder_desc}")
    try:
        info = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(cfg_path, f"cannot read the model config ({exc})") from exc
    if info.get("format") != fmt:
        raise InputError(cfg_path, f"not {model_desc} (format {info.get('format')!r})")
    return info, w_path


def load_weights(net: torch.nn.Module, w_path: Path, net_desc: str) -> None:
    """Load safetensors weights into ``net`` strictly; a mismatch is an :class:`InputError` naming ``net_desc``."""
    from safetensors.torch import load_file

    try:
        net.load_state_dict(load_file(str(w_path)), strict=True)
    except Exception as exc:  # safetensors header errors, missing/unexpected keys, shape mismatches
        raise InputError(w_path, f"weights do not fit {net_desc} ({str(exc)[:300]})") from exc
