"""Hugging Face Hub names: `hf://org/name[@revision]` resolved to a local folder through the Hub cache.

`from_pretrained`, `tfllm.models.load`, `load_tokenizer`, `restore_backbone`
and `tools/convert_checkpoint.py` accept such a name wherever they take a folder.
Only the files tfllm reads are fetched (configs, safetensors weights, Google
BERT checkpoints, tokenizer files), never pickled `*.bin` weights, and only
from the repository's top level. `huggingface_hub` does the caching and
honours its usual environment variables: HF_HOME / HF_HUB_CACHE (where the
cache is), HF_HUB_OFFLINE=1 (cache only, no network), HF_TOKEN (private or
gated repositories), HF_ENDPOINT (a mirror). Like every `huggingface_hub`
user, set them before Python starts: it reads most of them at import.

Example:
>>> resolve_model_path("hf://sentence-transformers/all-MiniLM-L6-v2")
'/home/me/.cache/huggingface/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/c974...'
>>> resolve_model_path("runs/bert_tiny")   # a local path comes back unchanged
'runs/bert_tiny'
"""

import os
import re

from absl import logging

from tfllm.errors import ConversionError

PREFIX = "hf://"
# What tfllm reads from a tfllm, Hugging Face or Google BERT folder (see
# tfllm/models/pretrained.py). `*.bin` is left out on purpose: it is a pickle.
FILES = (
    "config.json", "*.safetensors", "model.safetensors.index.json",
    "vocab.txt", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "bert_config.json", "*.ckpt*.index", "*.ckpt*.data-*", "checkpoint",
    "model.weights.h5", "spm.model",
)
SUBFOLDERS = "*/*"  # ignored: tfllm reads a repository's top level only (not onnx/, 1_Pooling/, ...)
_NAME = re.compile(r"[\w.-]+/[\w.-]+")


def is_hub_name(name_or_path):
    return isinstance(name_or_path, str) and name_or_path.startswith(PREFIX)


def parse_hub_name(name):
    """`(repo_id, revision or None)` of `hf://org/name[@revision]`; a ConversionError if malformed."""
    repo_id, at, revision = name[len(PREFIX):].partition("@")
    if not _NAME.fullmatch(repo_id) or (at and not revision):
        raise ConversionError(f"{name}: not a Hub model name; expected hf://org/name or hf://org/name@revision")
    return repo_id, revision or None


def resolve_model_path(name_or_path):
    """The local folder for `hf://org/name[@revision]` (fetched into the Hub cache if need be); else the argument.

    Raises one ConversionError, naming the model and what to do, when the
    model is not cached and cannot be downloaded (HF_HUB_OFFLINE=1 or no
    network), or the Hub refuses it (unknown repository or revision, gated).
    """
    if not is_hub_name(name_or_path):
        return name_or_path
    repo_id, revision = parse_hub_name(name_or_path)
    # huggingface_hub is only needed for hf:// names, so it is imported here.
    import huggingface_hub  # noqa: PLC0415  (only hf:// names need it)
    from huggingface_hub import constants  # noqa: PLC0415  (only hf:// names need it)
    from huggingface_hub import errors  # noqa: PLC0415  (only hf:// names need it)

    where = f"{name_or_path}: "
    try:
        path = huggingface_hub.snapshot_download(
            repo_id, revision=revision, allow_patterns=list(FILES), ignore_patterns=[SUBFOLDERS])
    except errors.LocalEntryNotFoundError:  # not (completely) cached, and offline or the Hub unreachable
        why = ("HF_HUB_OFFLINE=1 is set: set HF_HUB_OFFLINE=0 to download it, or" if constants.HF_HUB_OFFLINE
               else "the Hub could not be reached:")
        raise ConversionError(
            f"{where}not in the Hugging Face cache {constants.HF_HUB_CACHE} and {why} download it where there is "
            f"network (`hf download {repo_id}{' --revision ' + revision if revision else ''} --include '*.json' "
            "'*.safetensors' '*.txt' --local-dir DIR`) and pass that folder instead") from None
    except errors.RevisionNotFoundError:
        raise ConversionError(f"{where}the Hub has no revision {revision!r} of {repo_id}") from None
    except errors.GatedRepoError:
        raise ConversionError(f"{where}a gated repository: accept its terms on the Hub and set HF_TOKEN") from None
    except errors.RepositoryNotFoundError:
        raise ConversionError(f"{where}no such repository on the Hub (if it is private, set HF_TOKEN)") from None
    except (errors.HfHubHTTPError, errors.HFValidationError) as e:
        raise ConversionError(where + str(e).splitlines()[0]) from None
    if not any(name.endswith((".safetensors", ".h5", ".index")) for name in os.listdir(path)):
        logging.warning("%sno weights tfllm reads were fetched (it does not download pickled *.bin weights)", where)
    return path
