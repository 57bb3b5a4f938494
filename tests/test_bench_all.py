"""`scarceseg bench all --budget tiny` end to end, and its report page checked in Chromium for every section."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scarceseg.bench.bench_all import SECTIONS, Context, Section
from scarceseg.bench.html_report import markdown_to_html


def test_markdown_tables_headings_lists_and_escaping():
    page = markdown_to_html("# Title\n\n| a | b |\n|---|---|\n| 1 | <x> |\n\n- one `code`\n- two\n\nplain **bold**")
    assert "<h3>Title</h3>" in page
    assert "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>&lt;x&gt;</td></tr></table>" in page
    assert "<ul><li>one <code>code</code></li><li>two</li></ul>" in page
    assert "<p>plain <strong>bold</strong></p>" in page


def test_every_section_has_arguments_for_every_budget(tmp_path):
    assert len({s.name for s in SECTIONS}) == len(SECTIONS)
    for budget in ("tiny", "small", "paper"):
        ctx = Context(out=tmp_path, budget=budget, data=tmp_path / "data", ray="auto", tiny_data=tmp_path / "_data")
        for section in SECTIONS:
            args = section.args(ctx)
            assert args[:2] == ["bench", section.name], (budget, args)
            assert all(isinstance(a, str) for a in args)
    assert isinstance(SECTIONS[0], Section)


@pytest.mark.slow
def test_bench_all_tiny_writes_a_page_with_every_section(tmp_path):
    from typer.testing import CliRunner

    from scarceseg.cli import app

    ray_flag = []
    try:
        import ray  # noqa: F401

        ray_flag = ["--ray", "auto"]
    except ImportError:
        pass
    result = CliRunner().invoke(app, ["bench", "all", "--out", str(tmp_path), "--budget", "tiny", *ray_flag])
    assert result.exit_code == 0, result.output
    page = tmp_path / "report.html"
    text = page.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'id="sec-{section.name}"' in text
    assert "git commit" in text and "torch" in text and "data:image/png;base64," in text

    if os.environ.get("SCARCESEG_SKIP_BROWSER") == "1":
        pytest.skip("SCARCESEG_SKIP_BROWSER=1: the page was written; the browser check is skipped on request")
    from scarceseg.web.bench import CHROMIUM

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `apt-get install -y chromium`, or set SCARCESEG_SKIP_BROWSER=1")
    from playwright.sync_api import sync_playwright

    from scarceseg.web.bench import launch_chromium

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            view = browser.new_page()
            view.goto(page.as_uri())
            for section in SECTIONS:
                node = view.locator(f"#sec-{section.name}")
                assert node.count() == 1, section.name
                assert node.get_attribute("data-status") == "ok", (section.name, node.inner_text()[-2000:])
                assert node.locator("pre.command").inner_text().startswith(f"scarceseg bench {section.name}")
                assert node.locator("a", has_text="stdout.txt").count() == 1
            # every embedded figure decoded: a broken base64 PNG has naturalWidth 0
            widths = view.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert widths and all(w > 0 for w in widths)
            assert view.locator("#sec-scale table").count() >= 1  # the scale figures as a table
            assert view.locator("#missing li").count() >= 1
        finally:
            browser.close()


def test_only_reruns_one_section_and_keeps_the_others_on_the_page(tmp_path, monkeypatch):
    """`bench all --only X` into a folder of an earlier run: X runs again, the others stay on the page."""
    from scarceseg.bench import bench_all

    sections = [Section("first", "First", "nothing", lambda ctx: ["methods"]),
                Section("second", "Second", "nothing", lambda ctx: ["methods"])]
    monkeypatch.setattr(bench_all, "SECTIONS", sections)
    lines: list[str] = []
    bench_all.run_all(tmp_path, budget="small", echo=lines.append)
    assert sum(line.endswith("s") and "] ok in" in line for line in lines) == 2
    lines.clear()
    page = bench_all.run_all(tmp_path, budget="small", only=["second"], echo=lines.append)
    assert not any(line.startswith("[first]") for line in lines)
    assert any("kept from an earlier run" in line and "first" in line for line in lines)
    text = page.read_text(encoding="utf-8")
    assert 'id="sec-first"' in text and 'id="sec-second"' in text and "kept from an earlier run" in text
