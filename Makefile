# Everything a new user needs: `make book` and `make test` on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.convat-installed

# One switch for the real data: `make book DATASET=casme2 DATA=/path/to/data [PROFILE=composite] [DEVICE=cuda]`
# sets CONVAT_DATASET / CONVAT_DATA / CONVAT_PROFILE / CONVAT_DEVICE, which every chapter's parameters cell reads.
ifdef DATASET
export CONVAT_DATASET := $(DATASET)
endif
ifdef DATA
export CONVAT_DATA := $(DATA)
endif
ifdef PROFILE
export CONVAT_PROFILE := $(PROFILE)
endif
ifdef DEVICE
export CONVAT_DEVICE := $(DEVICE)
endif
# Threads of the chapters' kernels, explicit: one kernel runs at a time, so it may use every core; passive
# OpenMP waiting stops idle threads from spinning against other work on a busy machine.
BOOK_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: help env test lint book notebooks browser sitecheck colab-check publish bench study study-quick controls clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# uv downloads and unpacks in parallel: a fresh .venv in 148 s against pip's 266 s on 2 cores (2026-12-07). It
# reads no pip configuration and resolves from PyPI, so it is given the constraint file pip would use
# ($PIP_CONSTRAINT, else pip's install.constraint, else its global.constraint; the last config file wins), which
# caps torch on the reference machine. pip is the fallback when uv cannot be installed or fails.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet uv || echo "no uv (above); installing with pip"
	conf="$$($(BIN)/python -m pip config list)"; \
	  c="$${PIP_CONSTRAINT:-$$(printf '%s\n' "$$conf" | sed -n -E "s/^install\.constraint='(.*)'$$/\1/p" | tail -n 1)}"; \
	  c="$${c:-$$(printf '%s\n' "$$conf" | sed -n -E "s/^global\.constraint='(.*)'$$/\1/p" | tail -n 1)}"; \
	  { test -x $(BIN)/uv && $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
	    $$(for f in $$c; do printf -- '--constraint %s ' "$$f"; done) -e '.[book,dev,faces]'; } \
	  || { echo "installing with pip"; $(BIN)/python -m pip install --quiet -e '.[book,dev,faces]'; }
	@touch $@

env: $(STAMP)  ## create .venv (torch, torchvision from the registry) and install convat into it

test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff, and the import contracts (import-linter: stages import only earlier stages; result code imports no plots or describe module)
	$(BIN)/ruff check convat tests benchmarks
	$(BIN)/lint-imports --no-cache

book: $(STAMP)  ## execute every chapter (SynthME, or DATASET=... DATA=...) and render _build/html; fails on any error
	OMP_NUM_THREADS=$(BOOK_THREADS) MKL_NUM_THREADS=$(BOOK_THREADS) OMP_WAIT_POLICY=PASSIVE \
	  $(BIN)/jupyter-book build . --all --warningiserror --keep-going --path-output .

notebooks: $(STAMP)  ## generate the Colab notebooks into _build/notebooks; check them and the site's
	$(BIN)/convat site notebooks --out _build/notebooks \
	  --repository-url "$$($(BIN)/python -c 'import yaml; print(yaml.safe_load(open("_config.yml"))["repository"]["url"])')"
	@if [ -d _build/html ]; then $(BIN)/convat site notebooks --check _build/html/_notebooks; fi

browser:  ## install Debian's chromium for the browser check (needs root; does nothing when it is installed)
	@test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

sitecheck: $(STAMP) browser  ## open every page of _build/html in headless Chromium; screenshots to _build/screenshots
	$(BIN)/convat site check _build/html --screenshots _build/screenshots --book book

colab-check: $(STAMP)  ## simulate Google Colab: the install cell and two chapters in a Colab-like venv; no pin may move
	env -u PYTHONPATH $(BIN)/python tests/colab/check.py

# Publishing: set repository.url in _config.yml to the repository's GitHub URL (the one setting behind every
# "Open in Colab" link and Colab's install), then `make publish` pushes the checked site to the gh-pages branch
# (or let .github/workflows/pages.yml do it on every push to main). GitHub Pages serves that branch.
publish: book notebooks sitecheck  ## build, check, then push _build/html to the gh-pages branch (ghp-import)
	@$(BIN)/python -c 'import sys, yaml; from convat.site.colab_install import is_placeholder; \
	  url = yaml.safe_load(open("_config.yml"))["repository"]["url"]; \
	  sys.exit(f"_config.yml: repository.url is still the placeholder {url}; set it to your repository first") \
	  if is_placeholder(url) else None'
	$(BIN)/ghp-import --no-jekyll --force --push --branch gh-pages \
	  --message "site built from $$(git rev-parse --short HEAD)" _build/html

bench: $(STAMP)  ## run the benchmarks; JSON and a Markdown table go to benchmarks/results/
	$(BIN)/python -m benchmarks.run

study: $(STAMP)  ## the reference study (models x 3 seeds, composite, LOSO) into results/study; resumable
	$(BIN)/convat study run --out results/study

controls: $(STAMP)  ## the explanations' sanity checks over training seeds (quick profile) into results/controls; resumable
	OMP_NUM_THREADS=$(BOOK_THREADS) MKL_NUM_THREADS=$(BOOK_THREADS) OMP_WAIT_POLICY=PASSIVE \
	  $(BIN)/python -m convat.experiments.controls --out results/controls --models convat_tiny ststnet --train-seeds 0 1 2 3 4

study-quick: $(STAMP)  ## the smoke-test grid: models x 5 seeds x 3 SynthME draws, quick profile, into results/study-quick
	$(BIN)/convat study run --profile quick --data-seeds 0 1 2 --train-seeds 0 1 2 3 4 \
	  --out results/study-quick

clean:  ## remove the rendered site (not the environment, not the tensor cache)
	rm -rf _build
