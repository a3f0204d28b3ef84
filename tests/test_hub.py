"""Hub names (`hf://org/name[@revision]`), offline: a Hugging Face cache laid out in tmp_path holds MiniLM.

The cache is the layout `huggingface_hub` writes (`hub/models--org--name/`
with `refs/main` naming a commit and `snapshots/<commit>/` holding the
files), its files symlinked to the published MiniLM folder (`minilm_dir`).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("huggingface_hub")

from huggingface_hub import constants
from huggingface_hub.utils import filter_repo_objects

from tfllm.errors import ConversionError
from tfllm.hub import FILES
from tfllm.hub import SUBFOLDERS
from tfllm.hub import resolve_model_path
from tfllm.models import Bert
from tfllm.models import load
from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.models.pretrained import detect_format
from tfllm.models.pretrained import is_pretrained_dir
from tfllm.tokenizers.saving import load_tokenizer
from tfllm.training.init_checkpoint import restore_backbone

REPO = Path(__file__).resolve().parents[1]
NAME = "hf://sentence-transformers/all-MiniLM-L6-v2"
COMMIT = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
OTHER_COMMIT = "0" * 40
TEXTS = ["a gripping , beautifully acted film .", "Crème brûlée, 東京 😍", ""]


def cache_repo(hf_home, repo_id, folder, commit=COMMIT):
    """Put `folder`'s files in `hf_home`'s Hub cache as `repo_id` at `commit`, the head of branch main."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in Path(folder).iterdir():
        if file.is_file():
            (snapshot / file.name).symlink_to(file)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


@pytest.fixture(scope="module")
def hf_home(minilm_dir, tmp_path_factory):
    """An HF_HOME whose Hub cache holds sentence-transformers/all-MiniLM-L6-v2 at COMMIT (branch main)."""
    home = tmp_path_factory.mktemp("hf_home")
    cache_repo(home, "sentence-transformers/all-MiniLM-L6-v2", minilm_dir)
    return home


@pytest.fixture
def offline(hf_home, monkeypatch):
    """HF_HOME=hf_home and HF_HUB_OFFLINE=1 for this test.

    huggingface_hub reads both when it is imported (huggingface_hub.constants),
    which already happened here (transformers, or an earlier test), so the
    constants derived from them are set too. A user sets them before Python
    starts; `test_env_vars_set_before_python_starts` checks that path.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hf_home


def snapshot(hf_home):
    """The folder resolve_model_path gives for NAME (huggingface_hub resolves the cache path)."""
    return str(hf_home.resolve() / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots" / COMMIT)


def test_local_paths_come_back_unchanged(minilm_dir):
    assert resolve_model_path(minilm_dir) is minilm_dir
    assert resolve_model_path("runs/bert_tiny") == "runs/bert_tiny"
    for bad in ("hf://", "hf://all-MiniLM-L6-v2", "hf://org/name/sub", "hf://org/name@"):
        with pytest.raises(ConversionError, match="expected hf://org/name"):
            resolve_model_path(bad)


def test_only_top_level_files_tfllm_reads_are_fetched():
    # The files of the sentence-transformers/all-MiniLM-L6-v2 repository (abridged): pickles, ONNX, TF/Rust weights.
    listing = [".gitattributes", "1_Pooling/config.json", "README.md", "config.json",
               "config_sentence_transformers.json", "data_config.json", "model.safetensors", "modules.json",
               "onnx/model.onnx", "openvino/openvino_model.bin", "openvino/openvino_model.xml", "pytorch_model.bin",
               "rust_model.ot", "sentence_bert_config.json", "special_tokens_map.json", "tf_model.h5",
               "tokenizer.json", "tokenizer_config.json", "train_script.py", "vocab.txt"]
    fetched = filter_repo_objects(listing, allow_patterns=list(FILES), ignore_patterns=[SUBFOLDERS])
    assert sorted(fetched) == ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json",
                               "tokenizer_config.json", "vocab.txt"]


def test_hub_name_loads_like_the_folder(offline, minilm_dir, tmp_path):
    assert resolve_model_path(NAME) == snapshot(offline)
    assert resolve_model_path(f"{NAME}@{COMMIT}") == snapshot(offline)
    assert resolve_model_path(f"{NAME}@main") == snapshot(offline)
    assert detect_format(NAME) == "hf" and is_pretrained_dir(NAME)
    preprocessor = BertPreprocessor.from_pretrained(minilm_dir, sequence_length=16)
    features = preprocessor(TEXTS)
    assert BertPreprocessor.from_pretrained(NAME, sequence_length=16)(TEXTS)["token_ids"].numpy().tolist() == \
        features["token_ids"].numpy().tolist()
    folder_model = Bert.from_pretrained(minilm_dir)
    want = folder_model(features)["sequence_output"].numpy()
    # By name (by revision it resolves to the same snapshot folder, asserted above).
    np.testing.assert_array_equal(Bert.from_pretrained(NAME)(features)["sequence_output"], want)
    # restore_backbone (--init_checkpoint) and tools/convert_checkpoint.py take the name too.
    backbone = Bert.from_config(folder_model.get_config())
    restore_backbone(backbone, NAME)
    np.testing.assert_array_equal(backbone(features)["sequence_output"], want)
    subprocess.run([sys.executable, str(REPO / "tools" / "convert_checkpoint.py"), "--from=hf", "--model=bert", NAME,
                    str(tmp_path / "out")], check=True, capture_output=True, timeout=300)  # env: HF_HOME, offline
    # A tfllm folder published on the Hub loads by name with tfllm.models.load.
    cache_repo(offline, "me/minilm-tfllm", tmp_path / "out")
    loaded = load("hf://me/minilm-tfllm")
    np.testing.assert_array_equal(loaded.model(features)["sequence_output"], want)
    assert loaded.preprocessor(16)(TEXTS)["token_ids"].numpy().tolist() == features["token_ids"].numpy().tolist()


@pytest.mark.parametrize("name", ["hf://sentence-transformers/all-MiniLM-L12-v2", f"{NAME}@{OTHER_COMMIT}",
                                  f"{NAME}@v2.0"])
def test_not_cached_offline_is_one_clear_error(offline, name):
    for loader in (Bert.from_pretrained, load, load_tokenizer, is_pretrained_dir):
        with pytest.raises(ConversionError) as error:
            loader(name)
        message = str(error.value)
        assert "\n" not in message and message.startswith(f"{name}: not in the Hugging Face cache")
        assert "HF_HUB_OFFLINE=0" in message and "hf download sentence-transformers/all-MiniLM-L" in message


_RESOLVE = r"""
import sys
from tfllm.hub import resolve_model_path
from tfllm.errors import ConversionError
for name in sys.argv[1:]:
    try:
        print(resolve_model_path(name))
    except ConversionError as e:
        print("error:", e)
"""


def resolve_in_fresh_process(env, *names):
    """resolve_model_path(name) for each name, in a new Python whose environment is `env` from the start."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                         "HF_ENDPOINT")}
    proc = subprocess.run([sys.executable, "-c", _RESOLVE, *names], env={**base, **env}, capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()


def test_env_vars_set_before_python_starts(hf_home):
    missing = "hf://sentence-transformers/all-MiniLM-L12-v2"
    found, not_found = resolve_in_fresh_process({"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}, NAME, missing)
    assert found == snapshot(hf_home)
    assert not_found.startswith(f"error: {missing}: not in the Hugging Face cache {hf_home / 'hub'} and "
                                "HF_HUB_OFFLINE=1 is set")
    # Online but the Hub unreachable (a closed local port): the cache still serves, with one error otherwise.
    found, not_found = resolve_in_fresh_process(
        {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}, NAME, missing)
    assert found == snapshot(hf_home)
    assert not_found.startswith(f"error: {missing}: not in the Hugging Face cache {hf_home / 'hub'} and "
                                "the Hub could not be reached")
