"""The cohort runner (bench/runner.py) in this process and on a local process pool; segment/propose as cohorts.

Ray has its own module (test_runner_ray.py): its start-up takes seconds and is paid once there.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from scarceseg.bench.runner import MARKERS, CaseResult, CaseStatus, CohortItem, finished_record, run_cohort
from scarceseg.errors import InputError

TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture(autouse=True)
def _workers_import_this_module(monkeypatch):
    # spawned pool workers get this process's sys.path; set PYTHONPATH too for anything they start
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))


# ---- tasks (module level: workers import them by name) --------------------------------------------------
def square_task(shared, item):
    value = int(item.case_id) ** 2 + shared["offset"]
    return CaseResult(files={f"{item.case_id}.txt": str(value).encode()}, record={"value": value})


def flaky_task(shared, item):
    """Fails ``shared['fail'][case]`` times for that case (counted in files), then works."""
    counter = Path(shared["dir"]) / f"{item.case_id}.count"
    seen = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(seen + 1))
    if item.case_id == shared.get("refuse"):
        raise InputError(None, "cannot use this input")
    if seen < shared["fail"].get(item.case_id, 0):
        raise RuntimeError(f"transient failure {seen + 1}")
    return square_task({"offset": 0}, item)


def killing_task(shared, item):
    """Kills its own worker process on the first attempt of one case (a marker file remembers the kill)."""
    marker = Path(shared["marker"])
    if item.case_id == shared["victim"] and not marker.exists():
        marker.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return square_task({"offset": 0}, item)


def sleeping_task(shared, item):
    """Writes its worker's pid, then sleeps far longer than any test waits."""
    import time

    (Path(shared["dir"]) / f"{item.case_id}.pid").write_text(str(os.getpid()))
    time.sleep(600)
    return square_task({"offset": 0}, item)


def looping_task(shared, item):
    """Runs a loop of ``shared['slices']`` steps through ``track`` (as a volume's slices are), quietly."""
    from scarceseg.progress import track

    for _ in track(range(shared["slices"]), f"segmenting {item.case_id}", enabled=False):
        pass
    return square_task({"offset": 0}, item)


ITEMS = [CohortItem(str(k)) for k in range(6)]


# ---- serial ---------------------------------------------------------------------------------------------
def test_serial_writes_every_case_and_a_marker(tmp_path):
    report = run_cohort(square_task, ITEMS, tmp_path, shared={"offset": 1}, workers=1, progress=False)
    assert report.backend == "serial" and report.done == [str(k) for k in range(6)]
    assert [(tmp_path / f"{k}.txt").read_text() for k in range(6)] == [str(k * k + 1) for k in range(6)]
    info = json.loads((tmp_path / MARKERS / "4.json").read_text(encoding="utf-8"))
    assert info["files"] == ["4.txt"] and info["record"] == {"value": 17} and info["attempts"] == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_restart_reuses_finished_cases_and_force_recomputes(tmp_path):
    run_cohort(square_task, ITEMS[:3], tmp_path, shared={"offset": 0}, workers=1, progress=False)
    (tmp_path / "0.txt").write_text("kept")  # a recomputation would overwrite it
    (tmp_path / "2.txt").unlink()  # marker without its file: not finished
    report = run_cohort(square_task, ITEMS, tmp_path, shared={"offset": 0}, workers=1, progress=False)
    assert report.reused == ["0", "1"] and report.done == ["2", "3", "4", "5"]
    assert (tmp_path / "0.txt").read_text() == "kept" and report.records["1"] == {"value": 1}
    forced = run_cohort(square_task, ITEMS, tmp_path, shared={"offset": 0}, workers=1, progress=False,
                        resume=False)
    assert forced.reused == [] and (tmp_path / "0.txt").read_text() == "0"


def test_failure_is_retried_then_reported_and_input_errors_are_skipped(tmp_path):
    shared = {"dir": str(tmp_path), "fail": {"1": 1, "3": 5}, "refuse": "4"}
    report = run_cohort(flaky_task, ITEMS, tmp_path / "out", shared=shared, workers=1, retries=1, progress=False)
    assert report.done == ["0", "1", "2", "5"]
    assert report.attempts["1"] == 2 and report.attempts["0"] == 1
    assert report.failed == [("3", "RuntimeError: transient failure 2")] and report.attempts["3"] == 2
    assert report.skipped == [("4", "cannot use this input")] and report.attempts["4"] == 1
    assert finished_record(tmp_path / "out", "3") is None
    # the failed case is tried again by the next run; the finished ones are not
    again = run_cohort(flaky_task, ITEMS, tmp_path / "out", shared={**shared, "fail": {}}, workers=1,
                       progress=False)
    assert again.done == ["3"] and [cid for cid, _ in again.skipped] == ["4"]
    assert again.reused == ["0", "1", "2", "5"]


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="unique"):
        run_cohort(square_task, [CohortItem("a"), CohortItem("a")], tmp_path, shared={"offset": 0}, workers=1)
    with pytest.raises(InputError, match="file name"):
        run_cohort(square_task, [CohortItem("../x")], tmp_path, shared={"offset": 0}, workers=1, progress=False)
    with pytest.raises(InputError, match="--workers"):
        run_cohort(square_task, ITEMS, tmp_path, workers=0)


# ---- what the cases in flight are doing -----------------------------------------------------------------
def test_case_status_text_shows_the_two_latest_cases_and_forgets_finished_ones():
    status = CaseStatus()
    assert status() == ""
    status.update("pat1", "segmenting pat1", 3, 10)
    status.update("pat2", "encoding", 1, None)
    status.update("pat3", "segmenting pat3", 5, 7)
    assert status() == "pat3 5/7; pat2 1 (encoding)"
    status.update("pat3")
    assert status() == "pat2 1 (encoding); pat1 3/10"


class _RecordingStatus:
    updates: list = []

    def __init__(self):
        self._status = CaseStatus()

    def update(self, *message):
        type(self).updates.append(message)
        self._status.update(*message)

    def __call__(self):
        return self._status()


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_tasks_own_loops_reach_the_cohort_status(tmp_path, monkeypatch, workers):
    import scarceseg.bench.runner as runner

    monkeypatch.setattr(runner, "CaseStatus", _RecordingStatus)
    _RecordingStatus.updates = []
    items = ITEMS[:3]
    report = run_cohort(looping_task, items, tmp_path, shared={"slices": 4}, workers=workers, progress=False)
    assert report.done == [item.case_id for item in items]
    for item in items:
        mine = [m for m in _RecordingStatus.updates if m[0] == item.case_id]
        # the loop's start and end always (steps between at most every 0.5 s), then the task's end
        assert (item.case_id, f"segmenting {item.case_id}", 0, 4) in mine
        assert (item.case_id, f"segmenting {item.case_id}", 4, 4) in mine
        assert mine[-1] == (item.case_id,)


def test_plain_progress_lines_end_with_the_status():
    import io

    from scarceseg.progress import track

    now = [0.0]
    stream = io.StringIO()
    for _ in track(range(2), "segmenting", stream=stream, interval=1, clock=lambda: now[0],
                   status=lambda: "pat1: slice 4/9"):
        now[0] += 2.0
    assert stream.getvalue().splitlines()[0] == ("segmenting: 1/2 (50 %), 0:00:02 elapsed, about 0:00:02 left "
                                                 "(pat1: slice 4/9)")
    # while one long item runs, a line still comes every interval (real time here)
    import time

    slow = io.StringIO()
    for _ in track(range(1), "segmenting", stream=slow, interval=0.05, status=lambda: "pat1: slice 5/9"):
        time.sleep(0.4)
    assert "segmenting: 0/1 (0 %), 0:00:00 elapsed (pat1: slice 5/9)" in slow.getvalue().splitlines()


# ---- process pool ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pool_same_files_as_serial_and_survives_a_killed_worker(tmp_path):
    serial = run_cohort(square_task, ITEMS, tmp_path / "serial", shared={"offset": 0}, workers=1, progress=False)
    shared = {"marker": str(tmp_path / "killed"), "victim": "2"}
    report = run_cohort(killing_task, ITEMS, tmp_path / "pool", shared=shared, workers=2, retries=1,
                        progress=False)
    assert (tmp_path / "killed").exists(), "the victim's first attempt must have killed its worker"
    assert report.backend == "pool" and report.failed == [] and report.done == serial.done
    assert report.attempts["2"] == 2
    for k in range(6):
        assert (tmp_path / "pool" / f"{k}.txt").read_bytes() == (tmp_path / "serial" / f"{k}.txt").read_bytes()
        assert finished_record(tmp_path / "pool", str(k)) is not None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_driver_stops_its_pool_workers(tmp_path, signum):
    import subprocess
    import sys
    import time

    script = (
        # a shell starts background jobs with SIGINT ignored, and Python keeps that: restore Ctrl-C's default
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from pathlib import Path; from scarceseg.bench.runner import CohortItem, run_cohort; "
        "from test_runner import sleeping_task; "
        "run_cohort(sleeping_task, [CohortItem(str(k)) for k in range(4)], Path(sys.argv[1]) / 'out', "
        "shared={'dir': sys.argv[1]}, workers=2, progress=False)"
    )
    driver = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("*.pid"))) < 2:
            assert driver.poll() is None, driver.stderr.read().decode()
            assert time.monotonic() < deadline, "the pool's workers never started their tasks"
            time.sleep(0.2)
        workers = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
        assert all(_alive(pid) for pid in workers)
        driver.send_signal(signum)
        driver.wait(timeout=60)
        assert driver.returncode != 0
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), "a pool worker outlived its stopped driver"
        assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.txt"))
    finally:
        if driver.poll() is None:
            driver.kill()
        for pid_file in tmp_path.glob("*.pid"):  # never leave a sleeping worker behind, even on failure
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


# ---- segment and propose as cohorts -----------------------------------------------------------------------
def build_tiny_acwe(root: Path) -> Path:
    """Six sample slices and an ACWE ConvNet trained for one epoch on a 32x32 grid (seconds)."""
    from dataclasses import replace

    from scarceseg.datasets.sample import make_sample_data
    from scarceseg.methods.acwe_config import ACWEConfig
    from scarceseg.methods.acwe_data import train_acwe_from_dataset

    make_sample_data(root / "data", n=6, seed=3)
    cfg = replace(ACWEConfig.cpu(), epochs=1, size=32)
    train_acwe_from_dataset(root / "data", root / "model", mode=1, config=cfg, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def tiny_acwe(tmp_path_factory):
    return build_tiny_acwe(tmp_path_factory.mktemp("cohort"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


@pytest.mark.slow
def test_segment_cohort_is_bit_for_bit_the_single_process_masks(tiny_acwe, tmp_path):
    from scarceseg.bench.cohort import segment_cohort
    from scarceseg.methods.folder import segment_folder  # what `segment` runs in its own process

    legacy = segment_folder(tiny_acwe / "model", tiny_acwe / "data", tmp_path / "legacy", progress=False)
    assert len(legacy["written"]) == 6
    serial = segment_cohort(tiny_acwe / "model", tiny_acwe / "data", tmp_path / "serial", workers=1,
                            progress=False)
    pool = segment_cohort(tiny_acwe / "model", tiny_acwe / "data", tmp_path / "pool", workers=2, progress=False)
    assert pool["report"].backend == "pool" and len(pool["written"]) == 6 and pool["skipped"] == []
    assert _files(tmp_path / "legacy") == _files(tmp_path / "serial") == _files(tmp_path / "pool")
    assert len(_files(tmp_path / "pool")) == 6 and serial["failed"] == []


def test_segment_cli_workers_resume_and_force(tiny_acwe, tmp_path):
    from typer.testing import CliRunner

    from scarceseg.cli import app

    args = ["segment", "--model", str(tiny_acwe / "model"), "--data", str(tiny_acwe / "data"), "--out",
            str(tmp_path / "pred"), "--workers", "2"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "wrote 6 masks" in first.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "wrote 0 masks" in second.output and "kept 6 written before" in second.output
    forced = CliRunner().invoke(app, [*args, "--force"])
    assert forced.exit_code == 0 and "wrote 6 masks" in forced.output


def test_propose_cohort_same_files_as_propose_inputs(tmp_path):
    from scarceseg.bench.cohort import propose_cohort
    from scarceseg.datasets.sample import make_sample_data
    from scarceseg.store.proposals import load_proposal, read_index
    from scarceseg.store.propose_many import propose_inputs

    make_sample_data(tmp_path / "data", n=2, seed=0)
    old = propose_inputs([tmp_path / "data"], tmp_path / "old", progress=False, echo=None)
    new = propose_cohort([tmp_path / "data", tmp_path / "missing"], tmp_path / "new", workers=1, progress=False)
    assert new["proposed"] == old["proposed"] and new["candidates"] == old["candidates"]
    assert new["skipped"][0][2] == "no such file or folder"
    for cid in old["proposed"]:
        a, b = load_proposal(tmp_path / "old", cid), load_proposal(tmp_path / "new", cid)
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.image, b.image)
        assert a.candidates == b.candidates
        for name in ("candidates.json", "labels.png"):  # proposal.npz: zip entries carry the time written
            assert ((tmp_path / "old/proposals" / cid / name).read_bytes()
                    == (tmp_path / "new/proposals" / cid / name).read_bytes()), name
    old_index, new_index = read_index(tmp_path / "old"), read_index(tmp_path / "new")
    assert sorted(old_index) == sorted(new_index)
    for cid in old_index:
        for index in (old_index, new_index):
            del index[cid]["config"]["run"]["timings"]  # seconds measured
        assert old_index[cid]["config"] == new_index[cid]["config"]
