"""Drive the browser app in Debian's Chromium (Playwright, no browser download): helpers and the latency bench.

``scarceseg bench web`` writes a small sample folder, starts ``scarceseg serve`` in a subprocess on a free
port, opens the page in headless Chromium, waits for the prior's background embedding of the shown slice,
then times N box drags (mouse-up -> the prior's mask drawn) and N corrective clicks with the default refiner
(click event -> the redrawn overlay); ``performance.now()`` is recorded by the page in ``window.__latencies``
and read back by Playwright. The end-to-end test uses the same helpers.

Playwright is the optional extra ``browser`` (``pip install 'scarceseg[browser]'``, also in ``dev``): this module
imports without it, and the bench says in one line what to install when it is missing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(folder: Path, port: int, user: str = "tester", workdir: Path | None = None,
                 log: Path | None = None, timeout: float = 180.0, extra: list[str] | None = None) -> subprocess.Popen:
    """``scarceseg serve FOLDER`` in a subprocess (this interpreter, this package); returns once it answers."""
    src = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "scarceseg.cli", "serve", str(folder), "--port", str(port), "--user", user]
    if workdir is not None:
        cmd += ["--workdir", str(workdir)]
    cmd += extra or []
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed just below
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log is not None:
            out.close()  # the server holds its own copy of the handle
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}" + (f"; see {log}" if log else ""))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the server did not answer on port {port} within {timeout} s")


def launch_chromium(playwright, executable: str = CHROMIUM):
    """Headless Debian Chromium through Playwright (never a downloaded browser)."""
    if not Path(executable).is_file():
        raise FileNotFoundError(f"{executable} is missing: install it with `apt-get install -y chromium`")
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)


def lesion_point(truth: np.ndarray) -> tuple[int, int]:
    """The truth pixel farthest from its border (where a person would click the lesion)."""
    from scarceseg.interactive.clicks import innermost_pixel

    return innermost_pixel(truth)


def click_image(page, y: int, x: int, shift: bool = False) -> None:
    """Click image pixel (y, x) in the page's canvas."""
    box = page.locator("#canvas").bounding_box()
    size = page.evaluate("[window.__scarceseg.W, window.__scarceseg.H]")
    px = box["x"] + (x + 0.5) * box["width"] / size[0]
    py = box["y"] + (y + 0.5) * box["height"] / size[1]
    if shift:
        page.keyboard.down("Shift")
    page.mouse.click(px, py)
    if shift:
        page.keyboard.up("Shift")


def drag_box(page, y0: int, x0: int, y1: int, x1: int) -> None:
    """Drag a box (box tool) from image pixel (y0, x0) to (y1, x1) in the page's canvas."""
    box = page.locator("#canvas").bounding_box()
    size = page.evaluate("[window.__scarceseg.W, window.__scarceseg.H]")

    def at(y, x):
        return box["x"] + (x + 0.5) * box["width"] / size[0], box["y"] + (y + 0.5) * box["height"] / size[1]

    page.mouse.move(*at(y0, x0))
    page.mouse.down()
    page.mouse.move(*at((y0 + y1) / 2, (x0 + x1) / 2), steps=3)
    page.mouse.move(*at(y1, x1), steps=3)
    page.mouse.up()


def open_page(page, url: str, embedding_timeout_ms: float = 180_000) -> None:
    """Open the page and wait until the prior's embedding of the first image is ready (the page shows it)."""
    page.goto(url)
    page.wait_for_function("window.__ready === true", timeout=60_000)
    page.wait_for_function("window.__scarceseg.embed && window.__scarceseg.embed.status === 'ready'",
                           timeout=embedding_timeout_ms)


def open_and_pick(page, url: str, point: tuple[int, int], timeout_ms: float = 120_000) -> None:
    """Open the page, choose the candidates tool (key m), propose (key g, progress bar), pick at ``point``."""
    page.goto(url)
    page.wait_for_function("window.__ready === true", timeout=30_000)
    page.locator("#canvas").focus()
    page.keyboard.press("m")  # the candidates tool
    page.keyboard.press("g")
    page.wait_for_function("window.__scarceseg.cand && window.__scarceseg.cand.labels !== null", timeout=timeout_ms)
    click_image(page, *point)
    page.wait_for_function("window.__scarceseg.state && window.__scarceseg.state.picked !== null", timeout=30_000)


def require_playwright():
    """Playwright's ``sync_playwright``, or a one-line :class:`ScarcesegError` naming the extra to install."""
    from scarceseg.errors import ScarcesegError

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ScarcesegError("the browser bench needs Playwright, which is not installed: "
                             "pip install 'scarceseg[browser]' (it drives Debian's /usr/bin/chromium)") from None
    return sync_playwright


def run_web_bench(out: str | Path, n_clicks: int = 30, chromium: str = CHROMIUM, echo=print,
                  n_boxes: int = 10) -> dict:
    """Median box -> overlay and click -> overlay latency with the prior on a 256x256 sample slice.

    After the background embedding is ready, ``n_boxes`` boxes are dragged around the lesion (margins
    3..12 px) and ``n_clicks`` corrections follow (alternately a positive click just outside the lesion's
    border and a negative one just inside it), each waited for before the next.

    Raises
    ------
    ScarcesegError
        Playwright is not installed (the ``browser`` extra); nothing is written then.
    """
    sync_playwright = require_playwright()

    from scarceseg.datasets import open_dataset
    from scarceseg.datasets.sample import make_sample_data

    out = Path(out)
    data = out / "sample"
    if not data.is_dir():
        make_sample_data(data, n=2, seed=0)
    case = open_dataset(data).load(0)
    truth = case.target
    cy, cx = lesion_point(truth)
    ys, xs = np.nonzero(truth)
    radius = max(4.0, float(np.sqrt(truth.sum() / np.pi)))
    port = free_port()
    proc = start_server(data, port, user="bench", workdir=out / f"work_{port}", log=out / "server.log")
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p, chromium)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            open_page(page, f"http://127.0.0.1:{port}/?case={case.case_id}")
            embed_s = page.evaluate("window.__scarceseg.embed.seconds")
            h, w = truth.shape
            for i in range(n_boxes):
                m = 3 + (i * 9) // max(1, n_boxes - 1)
                drag_box(page, max(0, ys.min() - m), max(0, xs.min() - m), min(h - 1, ys.max() + m),
                         min(w - 1, xs.max() + m))
                page.wait_for_function(f"window.__latencies.length >= {i + 1}", timeout=60_000)
            angles = np.linspace(0, 2 * np.pi, n_clicks, endpoint=False)
            for i, a in enumerate(angles):  # alternate: add just outside the border, remove just inside
                r = radius * (1.15 if i % 2 == 0 else 0.85)
                y = int(np.clip(cy + r * np.sin(a), 0, h - 1))
                x = int(np.clip(cx + r * np.cos(a), 0, w - 1))
                click_image(page, y, x, shift=i % 2 == 1)
                page.wait_for_function(f"window.__latencies.length >= {n_boxes + i + 1}", timeout=60_000)
            lat = page.evaluate("window.__latencies")
            refine_ms = page.evaluate("window.__scarceseg.state.refine_ms")
            refiner = page.evaluate("window.__scarceseg.state.refiner")
            shot = out / "web_bench.png"
            page.screenshot(path=str(shot))
            browser.close()
    finally:
        proc.kill()
        proc.wait()
    boxes = np.array([v["ms"] for v in lat if v["kind"] == "box"], dtype=float)
    clicks = np.array([v["ms"] for v in lat if v["kind"] == "click"], dtype=float)
    result = {"boxes": int(len(boxes)), "box_median_ms": float(np.median(boxes)),
              "box_p90_ms": float(np.percentile(boxes, 90)), "clicks": int(len(clicks)),
              "median_ms": float(np.median(clicks)), "p90_ms": float(np.percentile(clicks, 90)),
              "min_ms": float(clicks.min()), "max_ms": float(clicks.max()), "last_refine_ms": refine_ms,
              "refiner": refiner, "embedding_s": embed_s, "shape": list(truth.shape), "screenshot": str(shot)}
    echo(f"with the prior, after its embedding ({embed_s} s), in Chromium on a {truth.shape[0]}x{truth.shape[1]} "
         f"slice: box -> overlay median {result['box_median_ms']:.1f} ms (p90 {result['box_p90_ms']:.1f}, "
         f"{result['boxes']} boxes); click -> overlay ({refiner}) median {result['median_ms']:.1f} ms "
         f"(p90 {result['p90_ms']:.1f}, min {result['min_ms']:.1f}, max {result['max_ms']:.1f}, "
         f"{result['clicks']} clicks); target <= 100 ms; last server refinement {refine_ms} ms; screenshot {shot}")
    return result
