"""Walk the registry: every method trains on a tiny synthetic set within a tiny budget, predicts, saves, loads
and predicts again identically; the same seed trains the same model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scarceseg.errors import InputError
from scarceseg.interactive.clicks import Click
from scarceseg.io.case import Case
from scarceseg.methods import registry
from scarceseg.methods.contract import METHOD_FILE, Budget, Prediction, Segmenter, TrainableRefiner

SIDE = 48
TINY_UDC = {"max_iters": 4, "channels": 8, "n_segments": 64, "min_area": 20, "component_min_area": 10}

#: name -> (config, budget): the smallest settings that still run the method's whole loop
TINY: dict[str, tuple[dict, Budget]] = {
    "unet": ({"preset": "fair", "augment": False}, Budget(epochs=1)),
    "acwe": ({"mode": 4, "data_preset": "la", "size": 48, "batch_size": 4}, Budget(epochs=1)),
    "pixeldrl": ({"size": 48, "batch_size": 2}, Budget(steps=3)),
    "pixeldrl-prior": ({"size": 48, "batch_size": 2}, Budget(steps=3)),
    "selector": ({"input_size": 48, "eval_every": 0, "buffer_size": 64, "channels": [4, 4, 4, 4], "hidden": 8,
                  "proposer_changes": TINY_UDC}, Budget(epochs=3)),
    "selector-prior": ({"input_size": 32, "eval_every": 0, "buffer_size": 64, "channels": [4, 4, 4, 4], "hidden": 8,
                        "proposer_changes": {"scales": [0.5], "percentiles": [95.0], "blobs_per_level": 1}},
                       Budget(epochs=3)),
    "jule": ({"n_patches": 150, "n_final_clusters": 3, "k": 2, "stride": 4, "batch_size": 32}, Budget(epochs=1)),
    "itermrl": ({"crop": [SIDE, SIDE], "width": 4, "batch_size": 2}, Budget(steps=2)),
    "rnet": ({"crop": [SIDE, SIDE], "width": 4, "batch_size": 2}, Budget(steps=2)),
    "intercnn": ({"crop": [SIDE, SIDE], "width": 4, "batch_size": 2}, Budget(steps=2)),
    "mincut": ({}, Budget(steps=1)),
    "prior": ({}, Budget(steps=1)),
    "prior-mincut": ({}, Budget(steps=1)),
    "fewshot": ({"batch_size": 1}, Budget(steps=1)),
    "prior-fewshot": ({"batch_size": 1, "refine": "none"}, Budget(steps=1)),
}


def tiny_cases(n: int = 4) -> list[Case]:
    """``n`` one-channel 48x48 slices, each a bright square lesion of its own size on a noisy disc."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    cases = []
    for i in range(n):
        head = (yy - 24) ** 2 + (xx - 24) ** 2 < 21**2
        label = np.zeros((SIDE, SIDE), np.int32)
        label[14 + i : 26 + i, 13 : 25 + i] = 1
        image = (0.3 * head + 0.7 * label + rng.normal(0, 0.05, (SIDE, SIDE))).astype(np.float32)[None] * 100
        cases.append(Case(image, (1.0, 1.0), case_id=f"c{i}", patient_id=f"p{i}", label=label,
                          channel_names=("FLAIR",)))
    return cases


def infer(method, case: Case) -> np.ndarray:
    """The method's output on one case: the prediction (segmenters) or one refinement with two clicks."""
    if isinstance(method, Segmenter):
        pred = method.predict(case)
        assert isinstance(pred, Prediction) and pred.mask.shape == case.shape
        assert pred.prob.min() >= 0 and pred.prob.max() <= 1
        return np.stack([pred.prob, pred.mask])
    clicks = [Click((19, 18), True), Click((2, 2), False)]
    out = method.refine(case.image[0], np.zeros(case.shape, np.float32), clicks)
    assert out.shape == case.shape
    return out


def test_registry_lists_every_kind():
    assert registry.names("segmenter") == ["unet", "acwe", "pixeldrl", "pixeldrl-prior", "fewshot", "prior-fewshot",
                                           "selector", "selector-prior", "jule"]
    assert set(registry.names("refiner")) == {"itermrl", "rnet", "intercnn", "mincut", "prior", "prior-mincut"}
    assert registry.names("proposer") == ["udc"]
    assert set(TINY) == set(registry.names("segmenter")) | set(registry.names("refiner"))
    with pytest.raises(InputError, match="unknown method 'nope'"):
        registry.get("nope")
    with pytest.raises(ValueError, match="kind"):
        registry.names("bogus")


@pytest.mark.parametrize("name", list(TINY))
def test_fit_predict_save_load_roundtrip(name, tmp_path):
    config, budget = TINY[name]
    cases = tiny_cases()
    cls = registry.get(name)
    method = cls(config)
    assert isinstance(method, Segmenter | TrainableRefiner) and method.name == name
    history = method.fit(cases[:3], budget, progress=False, seed=3)
    json.dumps(history, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    first = infer(method, cases[3])

    folder = method.save(tmp_path / name)
    info = json.loads((folder / METHOD_FILE).read_text(encoding="utf-8"))
    assert info["method"] == name and info["kind"] == cls.kind
    loaded = registry.load_model(folder)
    assert type(loaded) is cls and loaded.config == method.config
    np.testing.assert_array_equal(infer(loaded, cases[3]), first)

    again = cls(config)
    again.fit(cases[:3], budget, progress=False, seed=3)
    np.testing.assert_array_equal(infer(again, cases[3]), first)


def test_unknown_config_keys_are_an_error():
    for name in TINY:
        with pytest.raises(InputError, match="bogus"):
            registry.get(name)({"bogus": 1})
    with pytest.raises(InputError, match="bogus"):
        registry.get("udc")({"bogus": 1})


def test_load_model_refuses_other_kinds_and_reads_legacy_folders(tmp_path):
    config, budget = TINY["unet"]
    method = registry.get("unet")(config)
    method.fit(tiny_cases()[:2], budget, seed=0)
    folder = method.save(tmp_path / "m")
    with pytest.raises(InputError, match="not a refiner"):
        registry.load_model(folder, kind="refiner")
    (folder / METHOD_FILE).unlink()  # a folder written before method.json: config.json's format decides
    legacy = registry.load_model(folder)
    assert legacy.name == "unet" and legacy.options.channels == "flair"
    case = tiny_cases()[3]
    np.testing.assert_array_equal(legacy.predict(case).mask, method.predict(case).mask)
    with pytest.raises(InputError, match="no config.json"):
        registry.load_model(tmp_path)
    assert registry.load_model("mincut").name == "mincut"


@pytest.mark.parametrize("name", ["unet", "rnet"])
def test_cpu_seconds_budget_stops_training(name):
    config, _ = TINY[name]
    method = registry.get(name)({**config, "epochs": 50} if name == "unet" else {**config, "iterations": 10_000})
    history = method.fit(tiny_cases()[:2], Budget(cpu_seconds=1e-9), seed=0)
    assert len(history["loss"]) <= 3  # of 50 epochs / 10,000 updates: the CPU budget ended the loop


def test_unet_device_option_stays_out_of_the_config_unless_set():
    """``device`` (bench stember's --unet-device) reaches the wrapped U-Net; a default config does not list it."""
    plain = registry.get("unet")({"preset": "fair"})
    assert "device" not in plain.config and str(plain.model.device) == "cpu"
    chosen = registry.get("unet")({"preset": "fair", "device": "cpu"})
    assert chosen.config["device"] == "cpu" and str(chosen.model.device) == "cpu"


def test_a_cpu_budget_reports_its_budget_not_a_step_count_eta():
    """With a CPU budget the step count does not decide the end, so progress shows no step total (no ETA from
    it); the budget is in the message. Without one, the steps are the total."""
    from scarceseg.nets.engine import run
    from scarceseg.progress import observe_progress

    seen = []
    with observe_progress(lambda message, done, total: seen.append((message, total))):
        run(lambda i, fraction: 0.0, 4, {}, cpu_seconds=1e6)
        run(lambda i, fraction: 0.0, 4, {})
    assert seen[0] == ("training (stops at 1e+06 CPU s or 4 steps)", None)
    assert seen[-1] == ("training", 4)
