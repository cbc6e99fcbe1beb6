# eebench: `make demo` (set up + demo sweep on the bundled SmolLM2), `make test` (set up + test suite).
PYTHON ?= python3
VENV ?= .venv
# On CPU-only machines this pin takes a CPU wheel where one is provided locally; on GPU machines pass
# TORCH=torch (or your CUDA build's requirement) to keep the CUDA torch you want.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.eebench-installed

.PHONY: setup demo smoke lint test report reference clean-outputs

$(STAMP): pyproject.toml setup.py eebench_lm_eval.pth
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[test]"
	# An editable install does not ship the .pth that lets `lm_eval --model eebench` find the model.
	$(BIN)/python -c "import shutil, sysconfig; shutil.copy('eebench_lm_eval.pth', sysconfig.get_paths()['purelib'])"
	touch $(STAMP)

setup: $(STAMP)

# The demo: an untimed grid (entropy and gate exits x 3 targets), then its gate point at 0.9 timed with DSSD against
# transformers greedy in the same sweep folder; the second command ends in the report of all 7 points.
DEMO_SWEEP ?= outputs/sweeps/demo
demo: setup
	$(BIN)/python run.py -m experiment=demo hydra.sweep.dir=$(DEMO_SWEEP)
	$(BIN)/python run.py -m experiment=demo confidence=gate threshold=0.9 timing.enabled=true timing.strategy=dssd \
		hydra.sweep.dir=$(DEMO_SWEEP)

smoke: setup
	$(BIN)/python run.py experiment=smoke

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# One pytest worker per CPU core (pytest-xdist), each computing on one thread (tests/conftest.py). worksteal, not
# loadfile: a worker that runs out of tests takes half of the other's queue, so one file of slow sweeps does not
# run alone at the end (a module fixture is then built at most once per worker).
test: setup
	$(BIN)/python -m pytest -n auto --dist worksteal

report: setup
	$(BIN)/eebench report $(SWEEP)

# The committed reference report (reports/smollm2-135m-cpu/): experiment=paper at the stated CPU budget, the same
# grid with heads trained on a short 30,720-token budget (the budget study: the report labels those families budget=30720),
# then the stated-budget heads timed at target 0.9 with learned gates (lazy and the fixed-block baselines; skip and
# dssd) in the same sweep folder, then the report. A relaunch skips finished points.
REFERENCE_SWEEP ?= outputs/sweeps/reference-smollm2-135m-cpu
REFERENCE_TIMED := experiment=paper_cpu head=linear confidence=gate threshold=0.9 timing.enabled=true hydra.sweep.dir=$(REFERENCE_SWEEP)
reference: setup
	$(BIN)/python run.py -m experiment=paper_cpu hydra.sweep.dir=$(REFERENCE_SWEEP)
	$(BIN)/python run.py -m experiment=paper_cpu head.training.max_tokens=30720 hydra.sweep.dir=$(REFERENCE_SWEEP)
	$(BIN)/python run.py -m $(REFERENCE_TIMED) timing.strategy=lazy timing.baselines=[static,layerskip,assistant_early_exit]
	$(BIN)/python run.py -m $(REFERENCE_TIMED) timing.strategy=skip,dssd
	$(BIN)/eebench report $(REFERENCE_SWEEP) --out reports/smollm2-135m-cpu
