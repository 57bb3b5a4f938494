"""The prior's encoder backends (torch, onnx, openvino) and the decoder path's cached positional encoding."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from scarceseg.errors import InputError
from scarceseg.prior import backends

# The exported encoder against torch, on the same input: fp32 both, so the differences are reordered sums.
FEATURE_TOL = 1e-4  # max |difference| of the (1, 256, 64, 64) embedding (measured: about 3e-6)
PROB_TOL = 1e-3  # max |difference| of the decoded probability map (box prompt)


def disk_image(shape=(128, 128), centre=(60, 70), radius=14, seed=0) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    rng = np.random.default_rng(seed)
    return (40 + 160 * truth + rng.normal(0, 8, truth.shape)).astype(np.float32), truth


def test_backend_is_resolved_from_argument_then_environment(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert backends.resolve_backend() == "torch"
    monkeypatch.setenv(backends.ENV_VAR, "ONNX")
    assert backends.resolve_backend() == "onnx"
    assert backends.resolve_backend("openvino") == "openvino"
    with pytest.raises(InputError, match="unknown prior backend"):
        backends.resolve_backend("tensorrt")


def test_missing_package_falls_back_to_torch_with_one_line(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    encoder, decoder, used = backends.make_runtime(torch.nn.Identity(), torch.zeros(1), "onnx")
    assert encoder is None and decoder is None and used == "torch"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "onnxruntime" in err[0] and "torch" in err[0]


def test_onnx_file_is_verified_and_rebuilt_when_tampered(tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed (pip install 'scarceseg[fast]')")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.GELU()).eval()
    path = backends.onnx_path(net, "encoder", tmp_path)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert backends.onnx_path(net, "encoder", tmp_path) == path  # found, not rebuilt
    good = path.read_bytes()
    path.write_bytes(good[:-4] + b"XXXX")
    assert backends.onnx_path(net, "encoder", tmp_path).read_bytes() == good
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.GELU()).eval()
    assert backends.onnx_path(other, "encoder", tmp_path) != path  # other weights, other file
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_backend_matches_torch_on_a_synthetic_image(prior, backend):
    missing = backends.missing_packages(backend)
    if missing:
        pytest.skip(f"backend {backend} needs {', '.join(missing)} (pip install 'scarceseg[fast]')")
    from scarceseg.prior.model import LiteMedSAM
    from scarceseg.prior.weights import cache_dir

    fast = LiteMedSAM(prior.net, backend=backend)
    assert fast.backend == backend
    for kind in ("encoder", "decoder"):
        assert list(cache_dir().glob(f"lite_medsam_{kind}-*.onnx"))
    image, truth = disk_image(seed=5)
    box = (60 - 19, 70 - 19, 60 + 19, 70 + 19)
    ref, got = prior.embed(image), fast.embed(image)
    assert got.features.shape == ref.features.shape and got.features.dtype == torch.float32
    assert float((got.features - ref.features).abs().max()) < FEATURE_TOL
    first = prior.decode(ref, box=box)[0]
    prompts = [dict(box=box), dict(box=box, points=[(60, 70), (20, 20)], labels=[1, 0]),
               dict(points=[(60, 70)], labels=[1]), dict(box=box, multimask=True),
               dict(box=box, mask_logits=first.logits), dict(mask_logits=first.logits)]
    for prompt in prompts:
        outs_ref, outs_got = prior.decode(ref, **prompt), fast.decode(got, **prompt)
        assert len(outs_ref) == len(outs_got)
        for a, b in zip(outs_ref, outs_got, strict=True):
            assert float(np.abs(a.prob - b.prob).max()) < PROB_TOL, prompt.keys()
            assert abs(a.iou - b.iou) < PROB_TOL
    # the same decoded box on torch's embedding: only the decoder differs
    assert float(np.abs(fast.decode(ref, box=box)[0].prob - first.prob).max()) < PROB_TOL
    assert np.array_equal(first.prob > 0.5, fast.decode(got, box=box)[0].prob > 0.5)


def test_cached_dense_pe_gives_the_same_masks_bit_for_bit(prior):
    """decode() reuses one positional encoding; the result equals the prompt encoder's own, recomputed."""
    image, _ = disk_image(seed=6)
    emb = prior.embed(image)
    pe = prior.net.prompt_encoder
    with torch.inference_mode():
        assert torch.equal(prior.dense_pe(), pe.get_dense_pe())
        box_t = torch.tensor([[[51.0 * emb.scale, 41.0 * emb.scale, 90.0 * emb.scale, 80.0 * emb.scale]]])
        sparse, dense = pe(points=None, boxes=box_t, masks=None)
        low_res, iou = prior.net.mask_decoder(image_embeddings=emb.features, image_pe=pe.get_dense_pe(),
                                              sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                              multimask_output=False)
    out = prior.decode(emb, box=(41, 51, 79, 89))[0]
    assert np.array_equal(out.logits, low_res[0, 0].numpy())
    assert out.iou == float(iou[0, 0])
