"""One self-contained HTML page for `scarceseg bench all`: inline CSS, figures as base64 PNG, links to raw files.

Each section shows its command, seeds, time and status, its ``*.md`` reports (tables rendered), its figures and
links to its CSV/JSON files; the head of the page gives the git commit, package versions and the machine.
"""

from __future__ import annotations

import base64
import html
import platform
import re
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

SKIP_DIRS = {"runs", "_data", "proposals", "cache", "emb_cache", "model", "models", "checkpoint", "__pycache__"}
MAX_IMAGES = 12
MAX_IMAGE_BYTES = 3_000_000
MAX_LINKS = 40

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f3f3f3}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:12px}
code{background:#f3f3f3;padding:0 2px}.ok{color:#1a7f37;font-weight:bold}.failed{color:#c00;font-weight:bold}
img{max-width:100%;border:1px solid #ddd;margin:.4em 0}table.facts th{text-align:left}.links a{margin-right:1em}
"""


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', text)


def markdown_to_html(text: str) -> str:
    """The subset of Markdown our reports use: headings, tables, lists, code blocks, paragraphs."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            block = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                block.append(lines[i])
                i += 1
            out.append(f"<pre>{html.escape(chr(10).join(block))}</pre>")
            i += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                    rows.append(cells)
                i += 1
            body = "".join("<tr>" + "".join(f"<{'th' if k == 0 else 'td'}>{_inline(c)}</{'th' if k == 0 else 'td'}>"
                                             for c in row) + "</tr>" for k, row in enumerate(rows))
            out.append(f"<table>{body}</table>")
        elif re.match(r"\s*[-*] ", line):
            items = []
            while i < len(lines) and re.match(r"\s*[-*] ", lines[i]):
                item = re.sub(r"^\s*[-*] ", "", lines[i])
                items.append(f"<li>{_inline(item)}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
        elif not line.strip():
            i += 1
        else:
            para = []
            while (i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "```"))
                   and not lines[i].lstrip().startswith("|") and not re.match(r"\s*[-*] ", lines[i])):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


def _files(folder: Path, patterns: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        for path in sorted(folder.rglob(pattern)):
            rel = path.relative_to(folder)
            if len(rel.parts) > 3 or any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
                continue
            found.append(path)
    return found


def git_commit(where: Path) -> str:
    """``<sha> (+ uncommitted changes)`` of the repository holding ``where``, or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if sha.returncode != 0:
        return "unknown"
    return sha.stdout.strip() + (" (+ uncommitted changes)" if dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages the figures depend on."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("scarceseg", "torch", "numpy", "scipy", "scikit-image", "scikit-learn", "monai", "ray"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _section_html(out: Path, result: dict) -> str:
    folder = out / result["name"]
    status = "ok" if result["ok"] else "failed"
    parts = [f'<section id="sec-{result["name"]}" class="section" data-status="{status}">',
             f"<h2>{html.escape(result['title'])} <small class=\"{status}\">{status}</small></h2>",
             f"<p>Reproduces: {_inline(result['reproduces'])}. Time: {result['seconds']} s"
             f"{' (kept from an earlier run into this folder)' if result.get('kept') else ''}. "
             f"Seeds: {', '.join(map(str, result['seeds'])) or 'none (timings / deterministic)'}.</p>",
             f"<pre class=\"command\">{html.escape(result['command'])}</pre>"]
    if not result["ok"]:
        stderr = (folder / "stderr.txt").read_text(encoding="utf-8") if (folder / "stderr.txt").is_file() else ""
        parts.append(f"<p class=\"failed\">exit status {result['returncode']}; last lines of stderr:</p>"
                     f"<pre>{html.escape(chr(10).join(stderr.splitlines()[-25:]))}</pre>")
    reports = _files(folder, ["*.md"])
    for path in reports:
        parts.append(f"<h3>{html.escape(str(path.relative_to(folder)))}</h3>")
        parts.append(markdown_to_html(path.read_text(encoding="utf-8")))
    stdout = (folder / "stdout.txt").read_text(encoding="utf-8") if (folder / "stdout.txt").is_file() else ""
    if stdout.strip():
        parts.append(f"<details{'' if reports else ' open'}><summary>printed output</summary>"
                     f"<pre>{html.escape(stdout[-20000:])}</pre></details>")
    images = [p for p in _files(folder, ["*.png"]) if p.stat().st_size <= MAX_IMAGE_BYTES][:MAX_IMAGES]
    for path in images:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        name = html.escape(str(path.relative_to(folder)))
        parts.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}'
                     "</figcaption></figure>")
    raw = _files(folder, ["*.csv", "*.json"])[:MAX_LINKS]
    links = [folder / "stdout.txt", *raw]
    parts.append('<p class="links">Raw: ' + " ".join(
        f'<a href="{html.escape((Path(result["name"]) / p.relative_to(folder)).as_posix())}">'
        f"{html.escape(str(p.relative_to(folder)))}</a>" for p in links if p.is_file()) + "</p>")
    parts.append("</section>")
    return "\n".join(parts)


def write_report(out: Path, results: list[dict], budget: str, total_seconds: float, command: str = "") -> Path:
    """Write ``out/report.html`` for the section results of :func:`scarceseg.bench.bench_all.run_all`."""
    from scarceseg.bench.scale_bench import machine

    out = Path(out)
    facts = {"generated": datetime.now(UTC).isoformat(timespec="seconds"), "budget": budget,
             "command": command or "(run from Python)", "total time": f"{total_seconds:.0f} s",
             "git commit": git_commit(Path(__file__).parent), **{f"machine {k}": str(v) for k, v in machine().items()},
             "versions": ", ".join(f"{k} {v}" for k, v in versions().items())}
    failed = [r for r in results if not r["ok"]]
    nav = "".join(f'<li><a href="#sec-{r["name"]}">{html.escape(r["title"])}</a> '
                  f'<span class="{"ok" if r["ok"] else "failed"}">{"ok" if r["ok"] else "failed"}</span></li>'
                  for r in results)
    missing = [f"{r['title']}: failed (exit status {r['returncode']}), see its section" for r in failed]
    if budget != "paper":
        missing.append(f"budget {budget}: reduced data and training; the figures are not the README's numbers "
                       "(run with --budget paper for those)")
    body = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>scarceseg bench all "
            f"({budget})</title><style>{CSS}</style></head><body>",
            f"<h1>scarceseg benchmarks: every figure, one run (budget {html.escape(budget)})</h1>",
            '<table class="facts">' + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                                              for k, v in facts.items()) + "</table>",
            f"<h2>Sections</h2><ul>{nav}</ul>",
            '<section id="missing"><h2>What is missing</h2><ul>'
            + "".join(f"<li>{html.escape(m)}</li>" for m in missing or ["nothing: every section ran"])
            + "</ul></section>",
            *[_section_html(out, r) for r in results], "</body></html>"]
    path = out / "report.html"
    path.write_text("\n".join(body), encoding="utf-8")
    return path
