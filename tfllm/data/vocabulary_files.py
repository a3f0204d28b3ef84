"""Vocabulary files from text files: what `tools/build_vocab.py` runs.

Reading the texts (plain text or a TSV/CSV column) is data work, so it lives
here, above the tokenizers that learn the vocabularies.
"""

import time

from tfllm.data.text_classification import read_table_column
from tfllm.data.text_files import text_lines
from tfllm.errors import DataError
from tfllm.tokenizers.byte_pair import save_byte_pair_vocabulary
from tfllm.tokenizers.byte_pair import train_byte_pair_vocabulary
from tfllm.tokenizers.word_piece import build_word_piece_vocabulary
from tfllm.tokenizers.word_piece import save_vocabulary


def read_texts(paths, text_column=None, delimiter=None):
    """Reads texts for vocabulary training from plain-text or TSV/CSV files.

    A `.tsv`/`.csv` file (or any file when `text_column` is given) is read as a
    table with a header, keeping `text_column` (default "sentence"); other
    files give one text per non-empty line.
    """
    texts = []
    for path in paths:
        is_table = text_column is not None or str(path).endswith((".tsv", ".csv"))
        if is_table:
            texts.extend(read_table_column(path, text_column or "sentence", delimiter))
        else:
            texts.extend(line.rstrip("\r\n") for _, line in text_lines(path) if line.strip())
    return texts


def build_vocabulary_file(
    input_paths,
    output_path,
    vocab_size=8000,
    lowercase=True,
    text_column=None,
    delimiter=None,
    log=print,
):
    """Reads texts from files, learns a WordPiece vocabulary, writes it.

    What `tools/build_vocab.py` does, callable from a recipe when its
    `--vocab_file` is missing. Returns the vocabulary.
    """
    start = time.time()
    texts = read_texts(input_paths, text_column, delimiter)
    log(
        f"Read {len(texts)} texts from {len(input_paths)} file(s) "
        f"in {time.time() - start:.1f} s"
    )
    if not texts:
        raise DataError(f"No text found in {', '.join(map(str, input_paths))}")
    vocab = build_word_piece_vocabulary(texts, vocab_size, lowercase=lowercase)
    save_vocabulary(vocab, output_path)
    log(f"Wrote {len(vocab)} tokens to {output_path} ({time.time() - start:.1f} s total)")
    return vocab


def build_byte_pair_files(input_paths, output_dir, vocab_size, text_column=None, min_frequency=2, log=print):
    """What `tools/build_vocab.py --type=bpe` does: read texts, train, write vocab.json + merges.txt."""
    texts = read_texts(input_paths, text_column)
    if not texts:
        raise DataError(f"No text found in {', '.join(map(str, input_paths))}")
    vocabulary, merges = train_byte_pair_vocabulary(texts, vocab_size, min_frequency)
    save_byte_pair_vocabulary(vocabulary, merges, output_dir)
    log(f"Wrote {len(vocabulary)} tokens and {len(merges)} merges from {len(texts)} texts to {output_dir}")
    return vocabulary, merges
