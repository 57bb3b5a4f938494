"""Where LiteMedSAM's TinyViT image encoder runs: torch (default), ONNX Runtime or OpenVINO.

The encoder is ~95 % of the prior's time. ``onnx`` and ``openvino`` run the same network exported once
with ``torch.onnx.export`` (the TorchScript exporter, opset 17) at the model's fixed ``(1, 3, 256, 256)``
input. The ``.onnx`` file is built from the weights in memory, so nothing is downloaded: it is written
atomically into the user cache beside the safetensors weights (:func:`scarceseg.prior.weights.cache_dir`),
named after a digest of the encoder's weights, with a JSON sidecar holding its SHA-256. A file whose hash
does not match is rebuilt.

The backend is chosen by the ``backend`` argument of :class:`scarceseg.prior.model.LiteMedSAM` or by
``$SCARCESEG_PRIOR_BACKEND`` (``torch``, ``onnx``, ``openvino``). When the package a backend needs is not
installed (``pip install 'scarceseg[fast]'``), the prior says so in one line on stderr and runs on torch.

Each runtime session uses ``torch.get_num_threads()`` threads at the time of the call (one session per
thread count), so ``scarceseg.nets.runtime.torch_threads`` limits all backends alike.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from scarceseg.errors import InputError

BACKENDS = ("torch", "onnx", "openvino")
ENV_VAR = "SCARCESEG_PRIOR_BACKEND"
OPSET = 17
ENCODER_INPUT = (1, 3, 256, 256)
_PACKAGES = {"onnx": ("onnx", "onnxruntime"), "openvino": ("onnx", "openvino")}


def resolve_backend(backend: str | None = None) -> str:
    """The backend asked for (argument, else ``$SCARCESEG_PRIOR_BACKEND``, else ``torch``), checked."""
    name = (backend or os.environ.get(ENV_VAR) or "torch").strip().lower()
    if name not in BACKENDS:
        raise InputError(None, f"unknown prior backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def missing_packages(backend: str) -> list[str]:
    """The packages ``backend`` needs that are not installed (empty for torch)."""
    return [pkg for pkg in _PACKAGES.get(backend, ()) if importlib.util.find_spec(pkg) is None]


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, shapes, dtypes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        arr = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}{arr.shape}{arr.dtype}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def export_encoder(encoder: torch.nn.Module, target: Path) -> Path:
    """Export ``encoder`` to ONNX at ``target`` (atomically) and write its SHA-256 sidecar."""
    import warnings

    from scarceseg.prior.weights import _atomic_write_bytes, sha256_of

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings from TinyViT's shape asserts
            torch.onnx.export(encoder.eval(), (torch.zeros(ENCODER_INPUT),), str(tmp), dynamo=False,
                              opset_version=OPSET, input_names=["image"], output_names=["features"])

    _atomic_write_bytes(target, write)
    sidecar = {"sha256": sha256_of(target), "opset": OPSET, "torch": torch.__version__}
    _atomic_write_bytes(target.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(sidecar), encoding="utf-8"))
    return target


def encoder_onnx_path(encoder: torch.nn.Module, folder: Path | None = None) -> Path:
    """The verified ``.onnx`` of ``encoder`` in the cache, exported on first use."""
    from scarceseg.prior.weights import cache_dir, sha256_of

    folder = cache_dir() if folder is None else Path(folder)
    target = folder / f"lite_medsam_encoder-{weights_digest(encoder)[:16]}.onnx"
    sidecar = target.with_suffix(".json")
    if target.is_file() and sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if meta.get("sha256") == sha256_of(target):
            return target
    return export_encoder(encoder, target)


class _RuntimeEncoder:
    """Calls an exported encoder through onnxruntime or OpenVINO, one session per thread count."""

    def __init__(self, path: Path, backend: str):
        self.path, self.backend = path, backend
        self._sessions: dict[int, Callable[[np.ndarray], np.ndarray]] = {}
        self._lock = threading.Lock()

    def _session(self, threads: int) -> Callable[[np.ndarray], np.ndarray]:
        with self._lock:
            if threads not in self._sessions:
                self._sessions[threads] = self._open(threads)
            return self._sessions[threads]

    def _open(self, threads: int) -> Callable[[np.ndarray], np.ndarray]:
        if self.backend == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            return lambda x: session.run(None, {"image": x})[0]
        import openvino as ov

        compiled = ov.Core().compile_model(str(self.path), "CPU",
                                           {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        lock = threading.Lock()  # an OpenVINO infer request is not re-entrant
        request = compiled.create_infer_request()

        def run(x: np.ndarray) -> np.ndarray:
            with lock:
                return np.array(next(iter(request.infer({0: x}).values())), copy=True)

        return run

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self._session(max(1, torch.get_num_threads()))(x))


def make_encoder(encoder: torch.nn.Module, backend: str | None = None,
                 folder: Path | None = None) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """``encoder`` as a callable on the chosen backend, and the backend actually used.

    A backend whose packages are missing falls back to torch with one line on stderr.
    """
    name = resolve_backend(backend)
    if name == "torch":
        return encoder, name
    missing = missing_packages(name)
    if missing:
        print(f"scarceseg: prior backend {name!r} needs {' and '.join(missing)} (pip install 'scarceseg[fast]'); "
              "running the prior on torch", file=sys.stderr)
        return encoder, "torch"
    return _RuntimeEncoder(encoder_onnx_path(encoder, folder), name), name
