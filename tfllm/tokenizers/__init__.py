"""Tokenizers, in-graph on keras-hub and tensorflow-text, and saving and loading them with a model folder.

BERT WordPiece, GPT-2 byte-level BPE, Llama 3 / Qwen2 / SmolLM byte-level BPE,
SentencePiece (translation, Llama 2 / Mistral) and characters.
"""

from tfllm.tokenizers.byte_pair import BytePairTokenizer
from tfllm.tokenizers.char_tokenizer import CharTokenizer
from tfllm.tokenizers.regex_byte_pair import RegexBytePairTokenizer
from tfllm.tokenizers.saving import load_tokenizer
from tfllm.tokenizers.saving import save_tokenizer
from tfllm.tokenizers.sentence_piece import load_sentence_piece
from tfllm.tokenizers.sentence_piece import train_sentence_piece
from tfllm.tokenizers.word_piece import RESERVED_TOKENS
from tfllm.tokenizers.word_piece import WordPieceTokenizer
from tfllm.tokenizers.word_piece import build_word_piece_vocabulary
from tfllm.tokenizers.word_piece import load_vocabulary
from tfllm.tokenizers.word_piece import normalize_text
from tfllm.tokenizers.word_piece import save_vocabulary
