"""The PyTorch/`transformers` reference for recipes/tag.py (CoNLL-2003 NER): same data, checkpoint and settings.

    python tools/ner_transformers.py --train_file=../shared/data/conll2003/train.txt \
        --eval_file=../shared/data/conll2003/valid.txt --init_checkpoint=<Hugging Face BERT folder> \
        --learning_rate=1e-4 --epochs=1

reads the files with tag.py's reader (IOB1 converted to BIO, the same sorted
label ids) and fine-tunes `transformers.BertForTokenClassification` (dropout
0.1 in the encoder and before the tag layer) as people run it: Hugging Face's
fast tokenizer on the words (`is_split_into_words=True`), each word's tag on
its first piece and -100 on the other pieces and the special tokens (the
`run_ner.py` default), sentences cut to `--max_seq_length` tokens, batches
shuffled each epoch and padded to their longest sentence, then the shared
PyTorch loop (`tools/bench/torch_reference.py`: AdamW without decay on biases
and LayerNorm, linear warmup then decay to 0, global-norm clipping). A word's
predicted tag is the argmax at its first piece; words cut off count as "O",
as in tag.py. Prints tag.py's `eval:` line (`tfllm.metrics.entities`: conlleval's
exact span match) and the wall time of training.
"""

import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tools.bench, run as a script

from tfllm.cli import run  # noqa: E402
from tfllm.data.conll import TAG_SCHEMES  # noqa: E402
from tfllm.data.conll import label_vocabulary  # noqa: E402
from tfllm.data.conll import read_conll  # noqa: E402
from tfllm.data.conll import to_bio  # noqa: E402
from tfllm.metrics.entities import entity_scores  # noqa: E402
from tools.bench import torch_reference  # noqa: E402  (the shared PyTorch fine-tuning loop)

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "Training file in CoNLL format (as recipes/tag.py).", required=True)
flags.DEFINE_string("eval_file", None, "Evaluation file in the same format.", required=True)
flags.DEFINE_enum("tag_scheme", "auto", list(TAG_SCHEMES), "As recipes/tag.py.")
flags.DEFINE_integer("max_train_sentences", None, "Use only the first N training sentences.")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per sentence, [CLS] and [SEP] included.")
torch_reference.define_fine_tuning_flags("Sentences", "tag layer")


def read(path):
    sentences, _ = to_bio(read_conll(path), FLAGS.tag_scheme, name=f"{path} (--tag_scheme={FLAGS.tag_scheme})")
    return sentences


def main(_):
    train_sentences = read(FLAGS.train_file)[: FLAGS.max_train_sentences]  # bad data fails before the slow imports
    eval_sentences = read(FLAGS.eval_file)
    import torch  # noqa: PLC0415  (test extra, not a tfllm dependency)
    import transformers  # noqa: PLC0415

    torch.set_num_threads(FLAGS.num_threads or os.cpu_count())
    torch.manual_seed(FLAGS.seed)
    transformers.logging.set_verbosity_error()  # not the new tag layer's "MISSING" weights report
    labels = label_vocabulary(train_sentences)
    label_ids = {tag: i for i, tag in enumerate(labels)}
    tokenizer = transformers.AutoTokenizer.from_pretrained(FLAGS.init_checkpoint)
    model = transformers.BertForTokenClassification.from_pretrained(
        FLAGS.init_checkpoint, num_labels=len(labels), hidden_dropout_prob=FLAGS.dropout,
        attention_probs_dropout_prob=FLAGS.dropout, classifier_dropout=FLAGS.dropout)
    train, evaluation = (torch_reference.first_piece_rows(tokenizer, sentences, label_ids, FLAGS.max_seq_length)
                         for sentences in (train_sentences, eval_sentences))

    def batch(rows, indices, with_labels=True):  # padded to the batch's longest sentence
        ids, mask = torch_reference.padded([rows[i][0] for i in indices], tokenizer.pad_token_id)
        features = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
        if not with_labels:
            return features
        return dict(features, labels=torch_reference.padded([rows[i][1] for i in indices], -100)[0])

    steps = int(FLAGS.epochs * max(len(train) // FLAGS.batch_size, 1))
    print(f"{len(train)} training sentences, {steps} updates of {FLAGS.batch_size}; {len(labels)} labels", flush=True)
    train_seconds, _ = torch_reference.fine_tune(
        model, torch_reference.shuffled_batches(len(train), FLAGS.batch_size, lambda i: batch(train, i), FLAGS.seed),
        steps, FLAGS.learning_rate, FLAGS.warmup_ratio, FLAGS.weight_decay, FLAGS.clipnorm, log_every=100)

    logits = torch_reference.predicted_logits(model, torch_reference.ordered_batches(
        len(evaluation), FLAGS.batch_size, lambda indices: batch(evaluation, indices, with_labels=False)))
    predicted = []
    for i, r in enumerate(row for block in logits for row in block.argmax(-1)):
        _, _, words, starts = evaluation[i]
        tags = ["O"] * len(eval_sentences[i].words)  # words cut off (or without pieces) stay "O"
        for word, t in zip(words, starts):
            tags[word] = labels[r[t]]
        predicted.append(tags)
    scores = entity_scores([s.tags for s in eval_sentences], predicted)
    print(f"eval: entity F1 {scores['f1']:.4f}  precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
          f"accuracy {scores['accuracy']:.4f}  ({scores['gold']} entities, {scores['words']} words of "
          f"{FLAGS.eval_file}); training {train_seconds:.0f} s", flush=True)
    for entity_type, s in scores["per_type"].items():
        print(f"  {entity_type:>8}  F1 {s['f1']:.4f}  precision {s['precision']:.4f}  recall {s['recall']:.4f}  "
              f"({s['gold']} gold, {s['predicted']} predicted)", flush=True)


if __name__ == "__main__":
    run(main)
