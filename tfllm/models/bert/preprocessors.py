"""The preprocessor that packs a tokenizer's ids: BERT's for WordPiece, RoBERTa's for byte-level BPE."""

from tfllm.models.bert.bert_preprocessor import BertPreprocessor
from tfllm.models.bert.roberta_preprocessor import RobertaPreprocessor
from tfllm.tokenizers.byte_pair import BytePairTokenizer
from tfllm.tokenizers.saving import load_tokenizer


def preprocessor_for(tokenizer, sequence_length=128, **kwargs):
    """A `RobertaPreprocessor` for a `BytePairTokenizer`, else a `BertPreprocessor` (WordPiece)."""
    cls = RobertaPreprocessor if isinstance(tokenizer, BytePairTokenizer) else BertPreprocessor
    return cls.from_tokenizer(tokenizer, sequence_length=sequence_length, **kwargs)


def preprocessor_from_pretrained(path, sequence_length=128, **kwargs):
    """The preprocessor of a tfllm, Hugging Face or Google folder (or `hf://` name), by its tokenizer."""
    return preprocessor_for(load_tokenizer(path), sequence_length=sequence_length, **kwargs)
