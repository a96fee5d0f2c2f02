# spotline — the two commands: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TOOLS := .tools
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TOOLS_STAMP := $(TOOLS)/.installed
SAM_TOOLS := $(TOOLS)/sam
SAM_STAMP := $(SAM_TOOLS)/.installed
NOTEBOOK_TOOLS := $(TOOLS)/notebook
NOTEBOOK_STAMP := $(NOTEBOOK_TOOLS)/.installed

.PHONY: test-notebook demo test lint typecheck template-check image-smoke unit setup clean bench gpu-check system-tools

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[container,local,dev]'
	touch $(STAMP)

# checkov pins its own dependency tree; it lives in a venv of its own so it cannot move ours.
$(TOOLS_STAMP): requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet -r requirements-tools.txt
	touch $(TOOLS_STAMP)

# The SAM CLI builds the Lambda bundle (tests/packaging runs `sam build`). It pins boto3 and the rest
# exactly, to versions neither checkov nor our own code use: a venv of its own as well.
$(SAM_STAMP): requirements-sam.txt
	$(PYTHON) -m venv $(SAM_TOOLS)
	$(SAM_TOOLS)/bin/pip install --quiet --upgrade pip
	$(SAM_TOOLS)/bin/pip install --quiet -r requirements-sam.txt
	touch $(SAM_STAMP)

# The notebook path's SageMaker SDK (spotline's `notebook` extra, pinned in requirements-notebook.txt)
# pins its own dependency tree and is about 1 GB installed (3m40s to install here): a venv of its
# own, used only by `make test-notebook`.
$(NOTEBOOK_STAMP): requirements-notebook.txt
	$(PYTHON) -m venv $(NOTEBOOK_TOOLS)
	$(NOTEBOOK_TOOLS)/bin/pip install --quiet --upgrade pip
	$(NOTEBOOK_TOOLS)/bin/pip install --quiet -r requirements-notebook.txt
	touch $(NOTEBOOK_STAMP)

# The report pages are tested in a real browser (Debian's chromium, driven by playwright) and
# `spotline status --watch` in a real terminal (tmux). Installed with apt-get where missing (CI runs
# as root on a clean machine of the same kind).
system-tools:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v tmux >/dev/null || missing="$$missing tmux"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

setup: $(STAMP) $(TOOLS_STAMP) $(SAM_STAMP) system-tools

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

template-check: $(STAMP) $(TOOLS_STAMP)
	$(VENV)/bin/cfn-lint template.yaml
	$(TOOLS)/bin/checkov --quiet --compact --skip-download -f template.yaml --framework cloudformation
	$(TOOLS)/bin/checkov --quiet --compact --skip-download -f container/Dockerfile --framework dockerfile
	$(VENV)/bin/hadolint container/Dockerfile
	$(TOOLS)/bin/checkov --quiet --compact --skip-download -f examples/numpy_trainer/Dockerfile --framework dockerfile
	$(VENV)/bin/hadolint examples/numpy_trainer/Dockerfile

# Where a Docker engine answers: build the image and check the torch it carries is the pinned one.
# Elsewhere tests/container/test_gpu_check.py runs the entry point from exactly the files the image copies.
TORCH_PIN := $(shell sed -n 's/.*"torch==\([^"]*\)".*/\1/p' pyproject.toml)
IMAGE_CUDA := $(shell sed -n 's/^FROM pytorch\/pytorch:[^-]*-cuda\([0-9.]*\)-.*/\1/p' container/Dockerfile)
image-smoke:
	@if docker info >/dev/null 2>&1; then \
	  docker build -f container/Dockerfile -t spotline-container:smoke . && \
	  docker run --rm --entrypoint python spotline-container:smoke -c \
	    "import sys, torch, spotline_container.runner; print('torch', torch.__version__, 'CUDA', torch.version.cuda); \
	     sys.exit(torch.__version__.split('+')[0] != '$(TORCH_PIN)' or torch.version.cuda != '$(IMAGE_CUDA)')"; \
	else echo "image-smoke: no Docker engine here (the file-set test stands in)"; fi

test: setup lint typecheck template-check image-smoke
	$(VENV)/bin/pytest -q

# The notebook cells of docs/notebook.md with the real SageMaker SDK against a local stack. Apart
# from `make test` so that the SDK's install (about 1 GB) does not push it past its 10 minutes; CI runs both.
test-notebook: $(STAMP) $(NOTEBOOK_STAMP)
	SPOTLINE_NOTEBOOK_PYTHON=$(CURDIR)/$(NOTEBOOK_TOOLS)/bin/python $(VENV)/bin/pytest -q -n 0 tests/notebook

demo: $(STAMP)
	$(VENV)/bin/spotline demo

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# On a GPU machine (<= 8 min): a Python that has torch with CUDA (no venv needed; the device has no network).
GPU_PYTHON ?= python3
gpu-check:
	mkdir -p benchmarks/results
	PYTHONUNBUFFERED=1 timeout 540 $(GPU_PYTHON) benchmarks/gpu_check.py \
	  --out benchmarks/results/gpu-$$(date -u +%Y%m%d-%H%M%S).json

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
