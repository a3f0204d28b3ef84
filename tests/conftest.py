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
