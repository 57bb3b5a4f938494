"""Lean dependencies: every core dependency is used by src/, the sample data needs no nilearn, the browser
bench is an extra with a one-line message, and pyproject.toml lets the package install elsewhere."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "scarceseg"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: Core dependencies that src/ never imports by name, each with the package that uses it on our behalf.
USED_THROUGH = {
    "imagecodecs": "tifffile",  # tifffile's LZW codec: the LGG and sample TIFFs are LZW-compressed
}
#: Modules src/ imports that come with a declared dependency rather than being declared themselves.
COMES_WITH = {
    "pydantic": "fastapi",  # the app's request bodies; fastapi requires it
    "threadpoolctl": "scikit-learn",  # caps BLAS threads around k-means; scikit-learn requires it
}
#: Modules src/ imports only when they are installed, with what it does otherwise.
OPTIONAL_IMPORTS = {
    "timm": "prior/_timm_compat.py supplies the four timm helpers LiteMedSAM needs when timm is absent",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(names: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in names]
    return {_norm(r.name): r for r in reqs}


CORE = _requirements(PYPROJECT["project"]["dependencies"])
#: Installed by the Makefile with ``pip install --no-deps NAME==V`` (declaring them would let pip resolve their
#: own dependencies, e.g. LiteMedSAM's timm -> torchvision -> a CUDA torch).
MAKEFILE_NO_DEPS = {_norm(m) for m in re.findall(r"pip install[^\n]*--no-deps\s+([A-Za-z0-9_.-]+)==",
                                                  (ROOT / "Makefile").read_text(encoding="utf-8"))}
EXTRAS = {name: _requirements(reqs) for name, reqs in PYPROJECT["project"]["optional-dependencies"].items()}


def _imported_modules() -> set[str]:
    """Top-level modules that src/ imports: import statements, and names given to find_spec / import_module."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if func in ("find_spec", "import_module") and isinstance(node.args[0].value, str):
                    found.add(node.args[0].value.split(".")[0].split(":")[0])
    return found


def _distributions_of(modules: set[str]) -> set[str]:
    table = importlib.metadata.packages_distributions()
    return {_norm(dist) for module in modules for dist in table.get(module, [])}


def test_every_core_dependency_is_used_in_src() -> None:
    used = _distributions_of(_imported_modules())
    unused = sorted(name for name in set(CORE) | MAKEFILE_NO_DEPS if name not in used
                    and not (name in USED_THROUGH and _norm(USED_THROUGH[name]) in used))
    assert not unused, (f"declared (pyproject core, Makefile --no-deps) but never imported in src/: {unused}; "
                        "drop them, move them to an extra, or name the package that uses them in USED_THROUGH")


def test_every_third_party_import_in_src_is_declared() -> None:
    declared = set(CORE) | {name for extra in EXTRAS.values() for name in extra} | MAKEFILE_NO_DEPS
    undeclared = []
    for module in sorted(_imported_modules()):
        if module in sys.stdlib_module_names or module in ("scarceseg", "__future__") or module in OPTIONAL_IMPORTS:
            continue
        dists = _distributions_of({module})
        if module in COMES_WITH:
            dists = {_norm(COMES_WITH[module])}
        if not dists & declared:
            undeclared.append(module)
    assert not undeclared, f"src/ imports {undeclared}, which pyproject.toml does not declare"


def test_no_nilearn_no_pandas_and_pydicom_used_through_highdicom() -> None:
    assert "nilearn" not in CORE and "pandas" not in CORE
    assert {"pydicom", "highdicom"} <= set(CORE)
    assert {"pydicom", "highdicom"} <= _imported_modules()


def test_pyproject_installs_elsewhere_and_the_makefile_installs_the_cpu_torch_first() -> None:
    python = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert all(version in python for version in ("3.11.0", "3.12.0", "3.13.0"))
    torch = CORE["torch"].specifier
    assert "2.13.0" in torch and "2.5.0" in torch and not any(s.operator == "==" for s in torch)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    first_torch = makefile.index("pip install --quiet torch==2.13.0")
    assert first_torch < makefile.index("pip install --quiet -e '.[dev")  # .[dev] or .[dev,ray]
    assert "playwright" in EXTRAS["browser"] and "playwright" in EXTRAS["dev"] and "playwright" not in CORE


# ---- the sample data's template ------------------------------------------------------------------------
def test_sample_data_needs_neither_nilearn_nor_pandas(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['nilearn'] = None; sys.modules['pandas'] = None\n"
            "from scarceseg.datasets.sample import make_sample_data\n"
            f"paths = make_sample_data({str(tmp_path)!r}, n=2, seed=0)\n"
            "assert len(paths) == 2 and 'nilearn' not in [m for m, v in sys.modules.items() if v is not None]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / "images").glob("*.tif"))) == 2


def test_shipped_template_is_small_licensed_and_equals_its_source() -> None:
    from scarceseg.datasets.sample_anatomy import SLAB_START, TEMPLATE_FILE, TEMPLATE_SHAPE, Z_RANGE, load_template

    assert TEMPLATE_FILE.stat().st_size < 2_000_000
    notice = (TEMPLATE_FILE.parent / "MNI152_NOTICE.txt").read_text(encoding="utf-8")
    assert "Copyright (C) 1993-2009 Louis Collins" in notice and "Permission to use, copy, modify" in notice
    assert "datasets/data/*" in PYPROJECT["tool"]["setuptools"]["package-data"]["scarceseg"]
    template = load_template()
    depth = template.t1.shape[2]
    assert template.t1.shape[:2] == TEMPLATE_SHAPE[:2] and template.z_start == SLAB_START[2]
    assert template.z_start <= Z_RANGE[0] and Z_RANGE[1] + 1 <= template.z_start + depth  # every level used
    assert template.t1.max() > 200 and 0 < template.gm.mean() < 255 and 0 < template.wm.mean() < 255


def test_shipped_template_equals_nilearn_files_where_nilearn_is_installed() -> None:
    import importlib.util

    from scarceseg.datasets.sample_anatomy import TEMPLATE_SHAPE, load_template

    template = load_template()
    depth = template.t1.shape[2]

    spec = importlib.util.find_spec("nilearn")  # provenance: where nilearn is installed, compare with its files
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("nilearn is not installed here: no source to compare the shipped template with")
    import nibabel as nib

    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    for key in ("t1", "gm", "wm"):
        source = np.asarray(nib.load(folder / f"mni_icbm152_{key}_tal_nlin_sym_09a_converted.nii.gz").dataobj,
                            dtype=np.uint8)
        assert source.shape == TEMPLATE_SHAPE
        assert np.array_equal(getattr(template, key), source[:, :, template.z_start:template.z_start + depth])


# ---- the browser bench is an extra ---------------------------------------------------------------------
def test_web_bench_imports_without_playwright_and_says_what_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['playwright'] = None; sys.modules['playwright.sync_api'] = None\n"
            "import scarceseg.web.bench\n"
            "from typer.testing import CliRunner\n"
            "from scarceseg.cli import app\n"
            f"r = CliRunner().invoke(app, ['bench', 'web', '--out', {str(tmp_path / 'web')!r}])\n"
            "print(r.exit_code); print(r.output)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    code_line, *lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert code_line == "1"
    assert lines == ["error: the browser bench needs Playwright, which is not installed: "
                     "pip install 'scarceseg[browser]' (it drives Debian's /usr/bin/chromium)"]
    assert not (tmp_path / "web").exists()  # refused before writing anything


def _env() -> dict:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
