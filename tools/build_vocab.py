"""Builds a WordPiece vocabulary file from text files.

    python tools/build_vocab.py --input=../shared/data/sst2/train.tsv \
        --text_column=sentence --output=runs/sst2/vocab.txt --vocab_size=8000

Plain-text inputs give one text per line; `.tsv`/`.csv` inputs (or any input
when --text_column is set) are read as tables with a header row.
"""

from absl import app
from absl import flags

flags.DEFINE_list("input", None, "Comma-separated input files.", required=True)
flags.DEFINE_string("output", None, "Vocabulary file to write.", required=True)
flags.DEFINE_integer(
    "vocab_size", 8000, "Maximum vocabulary size, reserved tokens included.", lower_bound=6
)
flags.DEFINE_bool("lowercase", True, "Lower-case and strip accents (BERT uncased).")
flags.DEFINE_string("text_column", None, "Text column of TSV/CSV inputs (default: 'sentence').")
flags.DEFINE_string("type", "wordpiece", "Tokenizer type: 'wordpiece' ('bpe' is planned).")
flags.register_validator(
    "type",
    lambda value: value == "wordpiece",
    message="only --type=wordpiece is supported (bpe is not implemented yet)",
)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfllm.tokenizers import build_vocabulary_file  # Slow (TensorFlow): after flag checks.

    print(
        f"Building a {FLAGS.type} vocabulary of up to {FLAGS.vocab_size} tokens "
        f"from {', '.join(FLAGS.input)}"
    )
    build_vocabulary_file(
        FLAGS.input,
        FLAGS.output,
        vocab_size=FLAGS.vocab_size,
        lowercase=FLAGS.lowercase,
        text_column=FLAGS.text_column,
    )


if __name__ == "__main__":
    app.run(main)
