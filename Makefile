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

# The committed reference report (reports/smollm2-135m-cpu/): experiment=converged_cpu (linear heads on the 8192-token
# shortlist readout, 1M tokens; entropy and gate exits; max-coverage and risk-controlled calibration; 3 targets), the
# same grid with heads trained on the demo's 30,720-token budget (the report labels those families budget=30720), then
# the 1M-token gate point calibrated risk-controlled at target 0.9 timed with lazy (lossy) and dssd (lossless) against
# transformers greedy in the same sweep folder, that point again on the whole offline suite (eval=offline, 1,076
# examples, so its paired accuracy change resolves a couple of points), then the report (HTML linking figures/, so the
# committed figures are stored once). A relaunch skips finished points.
REFERENCE_SWEEP ?= outputs/sweeps/reference-smollm2-135m-cpu
REFERENCE_TIMED := experiment=converged_cpu confidence=gate calibration=risk_controlled threshold=0.9 timing.enabled=true \
	timing.num_prompts=2 timing.prompt_tokens=64 timing.max_new_tokens=24 timing.warmup=1 timing.repeats=8 \
	hydra.sweep.dir=$(REFERENCE_SWEEP)
REFERENCE_OFFLINE := experiment=converged_cpu confidence=gate calibration=risk_controlled threshold=0.9 eval=offline \
	hydra.sweep.dir=$(REFERENCE_SWEEP)
reference: setup
	$(BIN)/python run.py -m experiment=converged_cpu hydra.sweep.dir=$(REFERENCE_SWEEP)
	$(BIN)/python run.py -m experiment=converged_cpu head.training.max_tokens=30720 head.training.eval_every=16384 \
		hydra.sweep.dir=$(REFERENCE_SWEEP)
	$(BIN)/python run.py -m $(REFERENCE_TIMED) timing.strategy=lazy,dssd
	$(BIN)/python run.py -m $(REFERENCE_OFFLINE)
	$(BIN)/eebench report $(REFERENCE_SWEEP) --out reports/smollm2-135m-cpu --link-figures
