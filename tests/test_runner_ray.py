"""The cohort runner on Ray: a local cluster of 2 CPUs on this machine, started once for the module.

Skipped with a message when the optional extra is not installed (``pip install 'scarceseg[ray]'``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'scarceseg[ray]' to run these tests")

from scarceseg.bench.runner import finished_record, ray_connect, run_cohort  # noqa: E402
from test_runner import ITEMS, build_tiny_acwe, killing_task, square_task  # noqa: E402

TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray instance for the module (start-up takes seconds); its workers can import this folder."""
    if ray.is_initialized():
        ray.shutdown()
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([TESTS, old or ""])
    try:
        ray_connect("auto", {"num_cpus": 2})
        yield
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def tiny_acwe(tmp_path_factory):
    return build_tiny_acwe(tmp_path_factory.mktemp("cohort"))


@pytest.mark.slow
def test_ray_same_masks_as_the_process_pool(tiny_acwe, tmp_path):
    from scarceseg.bench.cohort import segment_cohort

    pool = segment_cohort(tiny_acwe / "model", tiny_acwe / "data", tmp_path / "pool", workers=2, progress=False)
    on_ray = segment_cohort(tiny_acwe / "model", tiny_acwe / "data", tmp_path / "ray", workers=2, ray="auto",
                            progress=False)
    assert on_ray["report"].backend == "ray" and on_ray["failed"] == [] and on_ray["skipped"] == []
    names = sorted(p.name for p in (tmp_path / "pool").glob("*.png"))
    assert len(names) == 6 and names == sorted(p.name for p in (tmp_path / "ray").glob("*.png"))
    for name in names:
        assert (tmp_path / "pool" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name
    assert pool["report"].backend == "pool"


@pytest.mark.slow
def test_ray_killed_worker_loses_no_finished_case_and_the_job_completes(tmp_path):
    serial = run_cohort(square_task, ITEMS, tmp_path / "serial", shared={"offset": 0}, workers=1, progress=False)
    shared = {"marker": str(tmp_path / "killed"), "victim": "3"}
    report = run_cohort(killing_task, ITEMS, tmp_path / "ray", shared=shared, workers=2, ray="auto", retries=1,
                        progress=False)
    assert (tmp_path / "killed").exists(), "the victim's first attempt must have killed its Ray worker"
    assert report.failed == [] and report.done == serial.done
    assert report.attempts["3"] == 2
    assert all(report.attempts[c] == 1 for c in report.done if c != "3")  # nothing finished was redone
    for k in range(6):
        assert (tmp_path / "ray" / f"{k}.txt").read_bytes() == (tmp_path / "serial" / f"{k}.txt").read_bytes()
        assert finished_record(tmp_path / "ray", str(k))["attempts"] == (2 if k == 3 else 1)
    # a restart recomputes nothing
    again = run_cohort(killing_task, ITEMS, tmp_path / "ray", shared=shared, workers=2, ray="auto", progress=False)
    assert again.done == [] and again.reused == serial.done


@pytest.mark.slow
def test_robot_bench_on_ray_matches_this_process(prior, tmp_path):
    """The robot bench of the Prior issue, one task per slice: Ray gives the table this process gives."""
    from scarceseg.bench.interactive_bench import run_interactive_bench
    from test_prior_refiners import _tiny_folder

    _tiny_folder(tmp_path / "data", n=3)
    kwargs = dict(first="box", refiners=("flat-mincut", "prior-mincut"), n_clicks=2, echo=lambda *a: None)
    run_interactive_bench(tmp_path / "data", out=tmp_path / "here", prior=prior, **kwargs)
    on_ray = run_interactive_bench(tmp_path / "data", out=tmp_path / "ray", ray="auto", workers=2, **kwargs)
    assert on_ray["meta"]["ray"] == "auto"
    assert (tmp_path / "ray" / "per_slice.csv").read_text() == (tmp_path / "here" / "per_slice.csv").read_text()
