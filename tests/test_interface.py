"""The entry points reach every method the same way: `scarceseg methods`, generic `train NAME` with a YAML/JSON
`--config` (unknown keys an error), `segment --model` and `refine --model` by method.json, the app's method lists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scarceseg.cli import app
from scarceseg.datasets.sample import make_sample_data
from scarceseg.methods import registry

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("iface") / "sample"
    make_sample_data(data, n=3, seed=0)
    return data


def test_methods_command_lists_the_registry():
    result = _run("methods")
    assert result.exit_code == 0
    for name in registry.names():
        assert name in result.output
    refiners = _run("methods", "--kind", "refiner").output
    assert "mincut" in refiners and "unet" not in refiners


def test_every_learner_without_its_own_command_gets_the_generic_train():
    result = _run("train", "--help")
    for name in ("unet", "acwe", "pixeldrl", "selector", "refiner", "jule", "itermrl", "rnet", "intercnn"):
        assert name in result.output


def test_generic_train_with_yaml_config_then_refine_through_method_json(sample: Path, tmp_path: Path):
    (tmp_path / "rnet.yaml").write_text("width: 4\nbatch_size: 1\ncrop: [64, 64]\n", encoding="utf-8")
    result = _run("train", "rnet", "--data", sample, "--out", tmp_path / "m", "--config", tmp_path / "rnet.yaml",
                  "--steps", "1")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "m" / "method.json").read_text(encoding="utf-8"))
    assert info["method"] == "rnet" and info["config"]["width"] == 4 and info["config"]["crop"] == [64, 64]
    image = sorted((sample / "images").glob("*.tif"))[0]
    result = _run("refine", "--model", tmp_path / "m", "--image", image, "--out", tmp_path / "r.png",
                  "--click", "100,100,+")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.png").is_file()


def test_unknown_config_keys_are_one_line_errors(sample: Path, tmp_path: Path):
    (tmp_path / "bad.json").write_text(json.dumps({"epochs": 1, "bogus": 2}), encoding="utf-8")
    for args in (["train", "unet", "--data", sample, "--out", tmp_path / "u", "--n-shot", "1"],
                 ["train", "rnet", "--data", sample, "--out", tmp_path / "r"],
                 ["train", "pixeldrl", "--data", sample, "--out", tmp_path / "p"]):
        result = _run(*args, "--config", tmp_path / "bad.json")
        assert result.exit_code == 1 and result.output.startswith("error:") and "bogus" in result.output, args
    (tmp_path / "bad.yaml").write_text("- not\n- a mapping\n", encoding="utf-8")
    result = _run("train", "jule", "--data", sample, "--out", tmp_path / "j", "--config", tmp_path / "bad.yaml")
    assert result.exit_code == 1 and "mapping" in result.output


def test_segment_any_registered_model_by_method_json(sample: Path, tmp_path: Path):
    cfg = tmp_path / "unet.json"
    cfg.write_text(json.dumps({"preset": "fair", "augment": False}), encoding="utf-8")
    result = _run("train", "unet", "--data", sample, "--out", tmp_path / "u", "--n-shot", "2", "--config", cfg,
                  "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "u" / "method.json").read_text(encoding="utf-8"))["method"] == "unet"
    result = _run("segment", "--model", tmp_path / "u", "--data", sample, "--out", tmp_path / "pred",
                  "--workers", "1")
    assert result.exit_code == 0 and "wrote 3 masks" in result.output, result.output
    result = _run("segment", "--model", tmp_path / "u", "--data", sample, "--out", tmp_path / "p2",
                  "--mode", "one-click", "--workers", "1")
    assert result.exit_code == 1 and "not an option of unet models" in result.output


def test_app_lists_learners_and_every_registered_refiner(sample: Path, tmp_path: Path):
    from fastapi.testclient import TestClient

    from scarceseg.web.app import ServerConfig, create_app

    web = create_app(ServerConfig(folder=sample, workdir=tmp_path / "work", user="alice", refiner="mincut"))
    with TestClient(web, base_url="http://127.0.0.1") as c:
        listed = c.get("/api/methods").json()
        assert [m["name"] for m in listed["learners"]] == registry.names("segmenter")
        assert {m["name"] for m in listed["refiners"]} == set(registry.names("refiner"))
        assert listed["refiner"] == "mincut"
        assert set(c.get("/api/info").json()["refiners"]) == set(registry.names("refiner"))
        assert c.post("/api/train", json={"method": "../x"}).status_code == 422
        job = c.post("/api/segment-rest", json={"method": "unet"}).json()
        for _ in range(100):
            if job["status"] in ("done", "failed"):
                break
            job = c.get(f"/api/jobs/{job['id']}").json()
        assert job["status"] == "failed" and "train the unet learner first" in job["error"]


def test_app_trains_a_unet_on_saved_masks(sample: Path, tmp_path: Path):
    from fastapi.testclient import TestClient

    from scarceseg.datasets import open_dataset
    from scarceseg.store import open_store
    from scarceseg.store.training import labelled_from_store

    ds = open_dataset(sample)
    work = tmp_path / "work"
    with open_store(work) as store:
        for cid in ds.case_ids[:2]:
            store.save_mask(cid, "final", ds.load(cid).target, who="alice")
        cases = labelled_from_store(store, ds.load, "final", who="alice")
    assert [c.case_id for c in cases] == ds.case_ids[:2]
    np.testing.assert_array_equal(cases[0].label > 0, ds.load(ds.case_ids[0]).target)

    from scarceseg.web.app import ServerConfig, create_app

    web = create_app(ServerConfig(folder=sample, workdir=work, user="alice", episodes=1))
    with TestClient(web, base_url="http://127.0.0.1") as c:
        job = c.post("/api/train", json={"method": "unet", "episodes": 1}).json()
        for _ in range(3000):
            if job["status"] in ("done", "failed"):
                break
            import time

            time.sleep(0.1)
            job = c.get(f"/api/jobs/{job['id']}").json()
        assert job["status"] == "done", job
        assert job["result"]["n_images"] == 2 and (work / "unet" / "runs" / "0001" / "method.json").is_file()
