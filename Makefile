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
# run alone at the end (a module fixture is then built at most once per worker). The ten slowest tests are listed at
# the end, so a change that makes the suite slower shows where.
test: setup
	$(BIN)/python -m pytest -n auto --dist worksteal --durations=10

report: setup
	$(BIN)/eebench report $(SWEEP)

# The committed reference report (reports/smollm2-135m-cpu/), into one sweep folder: experiment=converged_cpu (linear
# heads on the 2048-token shortlist readout, 1M tokens; entropy and gate exits; 3 targets) calibrated max-coverage and,
# in a second command, risk-controlled at delta 0.01 (a sweep cannot give delta to one calibration method only); the
# same grids with heads on the demo's budget (the report labels those families budget=15360); the 1M-token gate points
# at targets 0.8 and 0.9, risk-controlled, timed with lazy (lossy) and dssd (lossless) against transformers greedy;
# those points again on the whole offline suite (eval=offline: generated arithmetic and held-out prose, 1,050
# examples, so a paired accuracy change resolves a couple of points); then the report (HTML linking figures/, so the
# committed figures are stored once). A relaunch skips finished points.
REFERENCE_SWEEP ?= outputs/sweeps/reference-smollm2-135m-cpu
REFERENCE := experiment=converged_cpu hydra.sweep.dir=$(REFERENCE_SWEEP)
REFERENCE_RC := calibration=risk_controlled calibration.delta=0.01
REFERENCE_DEMO_BUDGET := head.training.max_tokens=15360 head.training.eval_every=5120
REFERENCE_GATE := confidence=gate $(REFERENCE_RC) threshold=0.8,0.9
REFERENCE_TIMING := timing.enabled=true timing.num_prompts=2 timing.prompt_tokens=64 timing.max_new_tokens=24 \
	timing.warmup=1 timing.repeats=8
reference: setup
	$(BIN)/python run.py -m $(REFERENCE) calibration=max_coverage
	$(BIN)/python run.py -m $(REFERENCE) $(REFERENCE_RC)
	$(BIN)/python run.py -m $(REFERENCE) calibration=max_coverage $(REFERENCE_DEMO_BUDGET)
	$(BIN)/python run.py -m $(REFERENCE) $(REFERENCE_RC) $(REFERENCE_DEMO_BUDGET)
	$(BIN)/python run.py -m $(REFERENCE) $(REFERENCE_GATE) $(REFERENCE_TIMING) timing.strategy=lazy,dssd
	$(BIN)/python run.py -m $(REFERENCE) $(REFERENCE_GATE) eval=offline
	$(BIN)/eebench report $(REFERENCE_SWEEP) --out reports/smollm2-135m-cpu --link-figures
