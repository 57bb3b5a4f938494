"""Where LiteMedSAM runs: torch (default), ONNX Runtime or OpenVINO.

``onnx`` and ``openvino`` run the TinyViT image encoder (at the model's fixed ``(1, 3, 256, 256)`` input)
and the mask decoder (one prompt at a time, any number of box corners and points) exported once with
``torch.onnx.export`` (the TorchScript exporter, opset 17); the prompt encoder stays on torch, and so
does a prompt that is only a mask. The ``.onnx`` files are built from the weights in memory, so nothing
is downloaded: each is written atomically into the user cache beside the safetensors weights
(:func:`scarceseg.prior.weights.cache_dir`), named after a digest of its weights, with a JSON sidecar
holding its SHA-256. A file whose hash does not match is rebuilt.

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


class MaskDecoderGraph(torch.nn.Module):
    """LiteMedSAM's mask decoder with the dense positional encoding as a constant, for the ONNX export.

    ``(features (1, 256, 64, 64), sparse (1, N, 256), dense (1, 256, 64, 64))`` → all four masks
    ``(1, 4, 256, 256)`` and their IoU scores ``(1, 4)``; N (box corners and points) may vary.
    """

    def __init__(self, mask_decoder: torch.nn.Module, image_pe: torch.Tensor):
        super().__init__()
        self.mask_decoder = mask_decoder
        self.register_buffer("image_pe", image_pe.detach().clone())

    def forward(self, features: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor):
        return self.mask_decoder.predict_masks(image_embeddings=features, image_pe=self.image_pe,
                                               sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)


_GRAPHS = {  # stem: (example input shapes, input names, output names, dynamic axes)
    "encoder": ([ENCODER_INPUT], ["image"], ["features"], None),
    "decoder": ([(1, 256, 64, 64), (1, 2, 256), (1, 256, 64, 64)], ["features", "sparse", "dense"],
                ["masks", "iou"], {"sparse": {1: "prompts"}}),
}


def export_graph(module: torch.nn.Module, kind: str, target: Path) -> Path:
    """Export ``module`` (``kind`` ``encoder`` or ``decoder``) to ONNX at ``target`` atomically, with a sidecar."""
    import warnings

    from scarceseg.prior.weights import _atomic_write_bytes, sha256_of

    shapes, inputs, outputs, dynamic = _GRAPHS[kind]

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings from TinyViT's shape asserts
            args = tuple(torch.zeros(shape) for shape in shapes)
            torch.onnx.export(module.eval(), args, str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=inputs, output_names=outputs, dynamic_axes=dynamic)

    _atomic_write_bytes(target, write)
    sidecar = {"sha256": sha256_of(target), "opset": OPSET, "torch": torch.__version__, "kind": kind}
    _atomic_write_bytes(target.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(sidecar), encoding="utf-8"))
    return target


def onnx_path(module: torch.nn.Module, kind: str = "encoder", folder: Path | None = None) -> Path:
    """The verified ``.onnx`` of ``module`` in the cache (named by its weights' digest), exported on first use."""
    from scarceseg.prior.weights import cache_dir, sha256_of

    folder = cache_dir() if folder is None else Path(folder)
    target = folder / f"lite_medsam_{kind}-{weights_digest(module)[:16]}.onnx"
    sidecar = target.with_suffix(".json")
    if target.is_file() and sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if meta.get("sha256") == sha256_of(target):
            return target
    return export_graph(module, kind, target)


class RuntimeGraph:
    """Calls an exported graph through onnxruntime or OpenVINO, one session per thread count.

    Called with torch tensors, it returns the graph's outputs as a tuple of torch tensors.
    """

    def __init__(self, path: Path, backend: str):
        self.path, self.backend = path, backend
        self._sessions: dict[int, Callable[[dict], tuple]] = {}
        self._lock = threading.Lock()

    def _session(self, threads: int) -> Callable[[dict], tuple]:
        with self._lock:
            if threads not in self._sessions:
                self._sessions[threads] = self._open(threads)
            return self._sessions[threads]

    def _open(self, threads: int) -> Callable[[list], tuple]:
        if self.backend == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            names = [node.name for node in session.get_inputs()]
            return lambda arrays: tuple(session.run(None, dict(zip(names, arrays, strict=True))))
        import openvino as ov

        compiled = ov.Core().compile_model(str(self.path), "CPU",
                                           {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        lock = threading.Lock()  # an OpenVINO infer request is not re-entrant
        request = compiled.create_infer_request()

        def run(arrays: list) -> tuple:
            with lock:
                result = request.infer(dict(enumerate(arrays)))
                return tuple(np.array(result[out], copy=True) for out in compiled.outputs)

        return run

    def __call__(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        arrays = [np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32) for t in tensors]
        return tuple(torch.from_numpy(a) for a in self._session(max(1, torch.get_num_threads()))(arrays))


def make_runtime(net: torch.nn.Module, image_pe: torch.Tensor, backend: str | None = None,
                 folder: Path | None = None) -> tuple[RuntimeGraph | None, RuntimeGraph | None, str]:
    """The encoder and mask decoder of ``net`` on the chosen backend, and the backend actually used.

    ``(None, None, "torch")`` for torch, or when the backend's packages are missing (one line on stderr).
    """
    name = resolve_backend(backend)
    if name == "torch":
        return None, None, name
    missing = missing_packages(name)
    if missing:
        print(f"scarceseg: prior backend {name!r} needs {' and '.join(missing)} (pip install 'scarceseg[fast]'); "
              "running the prior on torch", file=sys.stderr)
        return None, None, "torch"
    encoder = RuntimeGraph(onnx_path(net.image_encoder, "encoder", folder), name)
    decoder = RuntimeGraph(onnx_path(MaskDecoderGraph(net.mask_decoder, image_pe), "decoder", folder), name)
    return encoder, decoder, name
