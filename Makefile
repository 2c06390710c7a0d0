# Two commands on a fresh machine (Python 3.11):  make repro   (the experiment)   make test   (the test suite)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup repro tiny test lint bench params verify lock headline

# every package at the version and hash of requirements.lock (the versions decide bits: torch, numpy,
# sentencepiece, Lightning, sacrebleu, sacremoses), then the project itself without resolving again
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

repro: setup                ## download -> preprocess -> train -> evaluate (the full experiment)
	dvc repro

tiny: setup                 ## the same pipeline on the tiny preset (a few minutes), as a DVC experiment named tiny-<time>, outside the workspace
	# --temp: the workspace (params.yaml, reports/) stays on the default, so `make repro` after it still runs the real thing
	dvc exp run --temp -n tiny-$$(date +%Y%m%d-%H%M%S) -S preset=tiny

test: setup                 ## the whole test suite, two workers (23 min 42 s on 2 AMD EPYC cores beside two nice-19 trainings, clean-clone CI run; .ci/run 30 min)
	python -m pytest -q -n 2 --dist loadfile

verify: setup               ## rerun the tiny pipeline in portable numerics; matched / differs against reproducibility/
	python src/verify.py $(VERIFY_FLAGS)

lint: setup
	ruff check src tests benchmarks

bench: setup                ## speed figures -> reports/benchmarks.json
	python benchmarks/run_all.py

params: setup               ## recompose params.yaml from conf/ (what `dvc exp run` does) after editing conf/
	python -m s2s.common.params_file

lock: setup                 ## refresh requirements.lock after editing pyproject.toml (UPGRADE=--upgrade: newest allowed versions)
	uv pip compile pyproject.toml --extra dev --generate-hashes -c constraints.txt --find-links /opt/wheels \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --emit-find-links --no-annotate \
	  --custom-compile-command "make lock" $(UPGRADE) -o requirements.lock

headline: setup             ## the headline table from the committed docs/results/<run>/ files (no training) -> docs/results/headline/
	bash benchmarks/headline_table.sh
