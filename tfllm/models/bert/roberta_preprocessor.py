"""Turns raw strings into the input dict of a RoBERTa-style `Bert`: byte-level BPE and RoBERTa's packing."""

import keras

from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.tokenizers.byte_pair import BytePairTokenizer

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


@keras.saving.register_keras_serializable(package="tfllm")
class RobertaPreprocessor(BertPreprocessor):
    """Byte-level-BPE-tokenizes and packs one or two segments for RoBERTa.

    `<s> a </s>` or `<s> a </s></s> b </s>`, segment ids all 0 (RoBERTa has
    one token type), a pair truncated longest-first as Hugging Face does,
    padded with `<pad>`. The tokenizer is tfllm's in-graph `BytePairTokenizer`
    (GPT-2's pre-tokenizer, keras-hub's merges), so the packing runs in
    `tf.data` and exported SavedModels serve raw strings. keras-hub's
    `RobertaTextClassifierPreprocessor` packs the same way but truncates
    round-robin and uses keras-hub's approximate GPT-2 word split; this one
    gives Hugging Face's ids.

    Args:
        vocabulary: dict token -> id, or the path of a `vocab.json`.
        merges: list of "a b" merge rules, or the path of a `merges.txt`.
        sequence_length: int, length of the packed (padded) output.
        truncate: as `BertPreprocessor`.
        special_tokens: strings never split (default: RoBERTa's five).

    Example:
    >>> pre = RobertaPreprocessor.from_pretrained("hf://FacebookAI/roberta-base", sequence_length=16)
    >>> pre((["a first text"], ["and its pair"]))["token_ids"]   # <s> ... </s></s> ... </s> <pad>...
    """

    separator_length = 2
    distinct_segment_ids = False

    def __init__(self, vocabulary, merges, sequence_length=128, truncate="longest_first", special_tokens=None,
                 **kwargs):
        keras.layers.Layer.__init__(self, **kwargs)  # BertPreprocessor.__init__ builds a WordPiece tokenizer
        tokenizer = BytePairTokenizer(vocabulary, merges, special_tokens=special_tokens or list(SPECIAL_TOKENS))
        self._set_up(tokenizer, sequence_length, truncate, start=BOS, end=EOS, pad=PAD)

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config.update(
            vocabulary=dict(self.tokenizer.vocabulary),
            merges=list(self.tokenizer.merges),
            sequence_length=self.sequence_length,
            truncate=self.truncate,
            special_tokens=self.tokenizer.special_token_strings,
        )
        return config

    @classmethod
    def from_tokenizer(cls, tokenizer, sequence_length=128, **kwargs):
        """A preprocessor with the vocabulary, merges and special tokens of a `BytePairTokenizer`."""
        return cls(dict(tokenizer.vocabulary), list(tokenizer.merges), sequence_length=sequence_length,
                   special_tokens=tokenizer.special_token_strings, **kwargs)
