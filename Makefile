# The two commands of the README:  make demo  (set up + run the end-to-end demo)
#                                   make test  (set up + run every check CI runs)
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -c1-12)

.PHONY: demo test lint typecheck unit requirements clean bench
.DEFAULT_GOAL := demo

requirements:
	@.ci/requirements

$(STAMP):
	@.ci/requirements
	@set -e; py=$$(.ci/requirements --python); \
	  if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$py"; $$py -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	@# torch first, pinned: pip takes the CPU wheel; a plain requirement would pull a CUDA build.
	$(PY) -m pip install --quiet -c constraints.txt "torch==2.13.0"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gateway demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
typecheck: $(STAMP)
	$(VENV)/bin/mypy
unit: $(STAMP)
	$(VENV)/bin/pytest

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

clean:
	rm -rf .gateway out .pytest_cache .mypy_cache .ruff_cache
