# eebench: `make demo` (set up + demo sweep on the bundled SmolLM2), `make test` (set up + test suite).
PYTHON ?= python3
VENV ?= .venv
# On CPU-only machines this pin takes a CPU wheel where one is provided locally; on GPU machines pass
# TORCH=torch (or your CUDA build's requirement) to keep the CUDA torch you want.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.eebench-installed

.PHONY: setup demo smoke lint test report clean-outputs

$(STAMP): pyproject.toml setup.py eebench_lm_eval.pth
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[test]"
	# An editable install does not ship the .pth that lets `lm_eval --model eebench` find the model.
	$(BIN)/python -c "import shutil, sysconfig; shutil.copy('eebench_lm_eval.pth', sysconfig.get_paths()['purelib'])"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python run.py -m experiment=demo

smoke: setup
	$(BIN)/python run.py experiment=smoke

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup
	$(BIN)/python -m pytest

report: setup
	$(BIN)/eebench report $(SWEEP)
