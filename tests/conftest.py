"""Shared test fixtures."""

from pathlib import Path

import pytest

import tfllm  # noqa: F401  (sets KERAS_BACKEND before any test imports keras)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def sst2_dir():
    """The shared SST-2 folder (train.tsv, dev.tsv); skips if absent."""
    path = SHARED_DATA / "sst2"
    if not (path / "dev.tsv").exists():
        pytest.skip(f"shared SST-2 data not found at {path}")
    return path


# The longest modules first (CI durations, 2026-11-30). `make test` runs
# `--dist loadscope`: each module goes whole to one worker, in collection
# order, so a long module collected last would leave the other worker idle.
LONGEST_MODULES_FIRST = ["test_gpt_recipe", "test_seq2seq", "test_export", "test_multi_worker", "test_training",
                         "test_token_classification", "test_span_qa", "test_peft", "test_classify_recipe",
                         "test_mixed_precision", "test_pretrain_recipe", "test_byte_pair"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))
