"""SentencePiece subword vocabularies for translation: trained with `sentencepiece`, run in-graph by tensorflow-text.

Why SentencePiece and not the BERT WordPiece of `word_piece.py` for
translation: BERT's pre-tokenizer lower-cases (or not), splits punctuation
and throws the spacing away, so detokenized output is "Ein Mann ." rather
than "Ein Mann."; BLEU has to be computed on detokenized text against the
raw references. SentencePiece treats the text as a raw character stream
(spaces become "▁"), so `detokenize(tokenize(text))` gives the text back,
case, umlauts, ß and punctuation spacing included, and one model covers
both languages of a shared vocabulary.

Ids are fixed: 0 = <pad>, 1 = <unk>, 2 = <s> (BOS), 3 = </s> (EOS).
"""

import io
import os
import re

import keras
import keras_hub
import tensorflow as tf

from tfllm.errors import DataError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_sentence_piece(texts, path, vocab_size=8000, model_type="unigram", max_sentences=1_000_000):
    """Trains a SentencePiece model on `texts` (an iterable of str) and writes it to `path`.

    `model_type` is "unigram" (SentencePiece's default) or "bpe". Every
    character is kept (`character_coverage=1.0`: Latin scripts are small).
    Returns the serialized model (bytes).
    """
    import sentencepiece as spm  # noqa: PLC0415  (a keras-hub dependency; only needed to train)

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            character_coverage=1.0, pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            input_sentence_size=max_sentences, shuffle_input_sentence=True,
            minloglevel=2, num_threads=2,
        )
    except RuntimeError as e:  # SentencePiece's C++ check failures, e.g. "Vocabulary size too high (50). ..."
        most = re.search(r"Vocabulary size too high.*?<= (\d+)", str(e))
        if most:
            raise DataError(f"a {vocab_size}-piece SentencePiece vocabulary is too large for these texts: they "
                            f"give at most {most.group(1)} pieces (lower the vocabulary size)") from None
        least = re.search(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)", str(e))
        if least:
            raise DataError(f"a {vocab_size}-piece SentencePiece vocabulary is smaller than the {least.group(2)} "
                            "distinct characters of these texts, which it keeps whole (raise the vocabulary "
                            "size)") from None
        raise DataError(f"SentencePiece could not train on these texts: {str(e).splitlines()[0]}") from None
    proto = model.getvalue()
    folder = os.path.dirname(os.fspath(path))
    if folder:
        tf.io.gfile.makedirs(folder)
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp_path, "wb") as f:
        f.write(proto)
    tf.io.gfile.rename(tmp_path, path, overwrite=True)  # atomic: other workers see all or nothing
    return proto


@keras.saving.register_keras_serializable(package="tfllm")
class MetaspaceSentencePieceTokenizer(keras_hub.tokenizers.SentencePieceTokenizer):
    """SentencePiece as Hugging Face's `Metaspace` pre-tokenizer runs it: no dummy "▁" before a leading space.

    SentencePiece's `add_dummy_prefix` puts "▁" before every text; the
    `Metaspace(prepend_scheme="first"/"always")` of the `tokenizer.json`
    that transformers writes for Llama 2 / Mistral models does not when the
    text already starts with a space, so " x" is "▁x", not "▁▁x". Dropping
    one leading space before SentencePiece gives Hugging Face's ids, but for
    the text " " alone (Hugging Face: "▁"; here: no tokens).
    """

    def tokenize(self, inputs):
        return super().tokenize(tf.strings.regex_replace(inputs, "^ ", ""))


def load_sentence_piece(path, metaspace=False):
    """The in-graph tokenizer (keras-hub `SentencePieceTokenizer`, tensorflow-text ops) for a model file.

    `metaspace=True`: `MetaspaceSentencePieceTokenizer` (ids as a `tokenizer.json` with a `Metaspace`).
    """
    path = os.fspath(path)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"SentencePiece model not found: {path}")
    cls = MetaspaceSentencePieceTokenizer if metaspace else keras_hub.tokenizers.SentencePieceTokenizer
    with tf.io.gfile.GFile(path, "rb") as f:
        proto = f.read()
    try:
        return cls(proto=proto, dtype="int32")
    except tf.errors.OpError:  # e.g. a vocab.txt: the op's own error is a C++ check failure
        raise DataError(f"{path}: not a SentencePiece model (expected the .model file SentencePiece "
                        "writes)") from None
