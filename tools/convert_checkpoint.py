"""Converts a Hugging Face or Google BERT / GPT-2 / Llama-family checkpoint into a tfllm model directory.

    python tools/convert_checkpoint.py --from=hf --model=bert  bert-base-uncased/  runs/bert_base
    python tools/convert_checkpoint.py --from=google --model=bert uncased_L-2_H-128_A-2/ runs/bert_tiny
    python tools/convert_checkpoint.py --from=hf --model=gpt2  gpt2/  runs/gpt2
    python tools/convert_checkpoint.py --from=hf --model=bert  roberta-base/  runs/roberta  # DistilBERT, ELECTRA too
    python tools/convert_checkpoint.py --from=hf --model=llama hf://HuggingFaceTB/SmolLM-135M  runs/smollm
    python tools/convert_checkpoint.py --from=hf --model=bert  hf://sentence-transformers/all-MiniLM-L6-v2  runs/minilm

The output (config.json, model.weights.h5, tokenizer assets) loads with
`Bert.from_pretrained`, `BertClassifier.from_pretrained`, `GptCausalLM.from_pretrained`
(which also read the source folders directly). The model keeps every head the
checkpoint has: MLM/NSP (BertPretrainer), MLM only (BertMaskedLM: RoBERTa),
ELECTRA's discriminator head (ElectraDiscriminator), a sequence classifier
(BertClassifier), or none (Bert); GPT-2 becomes a GptCausalLM.
"""

import json
import os

from absl import app
from absl import flags

from tfllm.cli import run

flags.DEFINE_enum("from", None, ["hf", "google"], "Source format.", required=True)
flags.DEFINE_enum("model", None, ["bert", "gpt2", "llama"], "Model family (llama: also Mistral, Qwen2).",
                  required=True)
FLAGS = flags.FLAGS


def bert_class(src, fmt):
    """The richest tfllm BERT model class the checkpoint's weights fill."""
    import tfllm.convert.google_bert as google_bert  # noqa: PLC0415  (slow: after the flag checks)
    from tfllm.convert.safetensors_io import read_hf_weights  # noqa: PLC0415  (slow: after the flag checks)
    from tfllm.models import Bert  # noqa: PLC0415  (slow: after the flag checks)
    from tfllm.models import BertClassifier  # noqa: PLC0415  (slow: after the flag checks)
    from tfllm.models import BertMaskedLM  # noqa: PLC0415  (slow: after the flag checks)
    from tfllm.models import BertPretrainer  # noqa: PLC0415  (slow: after the flag checks)
    from tfllm.models import ElectraDiscriminator  # noqa: PLC0415  (slow: after the flag checks)

    if fmt == "google":
        names = set(google_bert.read_google_checkpoint(src)[1])
    else:
        index = os.path.join(src, "model.safetensors.index.json")
        names = set(json.load(open(index))["weight_map"]) if os.path.exists(index) else set(read_hf_weights(src))
    names = {n[len("bert."):] if n.startswith("bert.") else n for n in names}
    if any(n.startswith("cls.seq_relationship.") for n in names):
        return BertPretrainer
    if any(n.startswith("classifier.") for n in names):
        return BertClassifier
    if any(n.startswith(("cls.predictions.", "lm_head.")) for n in names):  # BERT / RoBERTa masked LM
        return BertMaskedLM
    if any(n.startswith("discriminator_predictions.") for n in names):
        return ElectraDiscriminator
    return Bert


def main(argv):
    if len(argv) != 3:
        raise app.UsageError("usage: convert_checkpoint.py --from=hf|google --model=bert|gpt2|llama SRC DST")
    src, dst = argv[1], argv[2]
    from tfllm.hub import resolve_model_path  # noqa: PLC0415  (slow: after the flag checks)
    from tfllm.models import GptCausalLM  # noqa: PLC0415  (slow: after the flag checks)
    from tfllm.models import LlamaCausalLM  # noqa: PLC0415  (slow: after the flag checks)
    from tfllm.models import pretrained  # noqa: PLC0415  (slow: after the flag checks)
    from tfllm.tokenizers.saving import load_tokenizer_if_any  # noqa: PLC0415  (slow: after the flag checks)

    src = resolve_model_path(src)  # hf://org/name[@revision] -> its folder in the Hub cache
    fmt = pretrained.detect_format(src)
    if fmt != getattr(FLAGS, "from"):
        raise app.UsageError(f"{src} looks like a {fmt} folder, not --from={getattr(FLAGS, 'from')}")
    if FLAGS.model in ("gpt2", "llama"):
        if fmt == "google":
            raise app.UsageError("--from=google holds BERT checkpoints only")
        model = (GptCausalLM if FLAGS.model == "gpt2" else LlamaCausalLM).from_pretrained(src)
    else:
        model = bert_class(src, fmt).from_pretrained(src)
    # A Llama folder's tokenizer may be a kind tfllm refuses: from_pretrained then logged why and left it out.
    tokenizer = model.tokenizer if FLAGS.model == "llama" else load_tokenizer_if_any(src)
    pretrained.save_pretrained(model, dst, tokenizer=tokenizer)
    print(f"wrote {type(model).__name__} ({model.count_params():,} parameters"
          f"{', with tokenizer' if tokenizer is not None else ', no tokenizer found'}) to {dst}")


if __name__ == "__main__":
    run(main)
