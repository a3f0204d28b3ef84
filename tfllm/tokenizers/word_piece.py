"""BERT WordPiece tokenization: vocabulary files, vocabulary training, tokenizer.

Built on keras-hub's `WordPieceTokenizer` (tensorflow-text's
`FastWordpieceTokenizer`), so tokenization runs in-graph: inside `tf.data`, a
`tf.function` and an exported SavedModel that needs only `tensorflow` and
`tensorflow_text` to load.

keras-hub's own pre-tokenization differs from BERT's in a few corners (it
case-folds with NFKC, so "ß" becomes "ss" and "ﬁ" becomes "fi"; it splits words
on control characters instead of deleting them; it treats only ASCII
whitespace as whitespace). We apply BERT's normalizer first, in-graph, and
hand keras-hub already-normalized text, so ids match Hugging Face's
`BertWordPieceTokenizer` (tested on SST-2 and on corner cases). One known
difference: tensorflow-text maps words longer than 100 UTF-8 *bytes* to
`[UNK]`, HF (and Google's BERT) words longer than 100 *characters*, so only
long non-ASCII words differ.
"""

import os

import keras
import keras_hub
import tensorflow as tf
import tensorflow_text as tf_text

from tfllm.errors import ConfigError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
RESERVED_TOKENS = (PAD, UNK, CLS, SEP, MASK)

# BERT deletes NUL, U+FFFD and every "other" character (Cc, Cf, Co) except
# \t \n \r, which are whitespace. RE2 cannot subtract classes, so Cc is spelled
# out.
_CONTROL_REGEX = (
    r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}\p{Cf}\p{Co}\x{FFFD}]"
)
# Unicode spaces (NBSP, ideographic space, ...) become " "; RE2's \s, which
# keras-hub splits on, matches ASCII whitespace only.
_SPACE_REGEX = r"[\p{Zs}\x{2028}\x{2029}]"


def load_vocabulary(path, required=()):
    """Reads a vocabulary file, one token a line, and returns the tokens (each of `required` among them)."""
    path = os.fspath(path)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Vocabulary file not found: {path}")
    with tf.io.gfile.GFile(path, "r") as f:
        tokens = [line.rstrip("\r\n") for line in f]
    while tokens and not tokens[-1]:  # Tolerate trailing blank lines.
        tokens.pop()
    if not tokens:
        raise ConfigError(f"{path}: empty vocabulary file, expected one token a line")
    require_tokens(tokens, required, path)
    return tokens


def save_vocabulary(tokens, path):
    """Writes tokens to `path`, one a line (the format `load_vocabulary` reads).

    Written to a temporary file, then renamed: a worker that starts while the
    chief writes (multi-worker training) reads the whole file or none of it.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        tf.io.gfile.makedirs(folder)
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp_path, "w") as f:
        f.write("".join(f"{token}\n" for token in tokens))
    tf.io.gfile.rename(tmp_path, path, overwrite=True)


def normalize_text(text, lowercase=True, strip_accents=None):
    """BERT's text normalizer, in-graph, on a string tensor of any shape.

    Deletes control characters, maps Unicode spaces to " ", then (as BERT does)
    strips accents (NFD, drop non-spacing marks) and lower-cases each
    character with Unicode rules. `strip_accents=None` follows `lowercase`,
    as in BERT uncased/cased.
    """
    if strip_accents is None:
        strip_accents = lowercase
    text = tf.strings.regex_replace(text, _CONTROL_REGEX, "")
    text = tf.strings.regex_replace(text, _SPACE_REGEX, " ")
    if strip_accents:
        text = tf_text.normalize_utf8(text, "NFD")
        text = tf.strings.regex_replace(text, r"\p{Mn}", "")
    if lowercase:
        # Lower-case character by character, as Hugging Face does: ICU would
        # turn a word-final capital sigma into "ς", per-character rules give
        # "σ". Final sigma is ICU's only context rule in the root locale.
        text = tf.strings.regex_replace(text, "\u03a3", "\u03c3")
        text = tf.strings.lower(text, encoding="utf-8")
    return text


def require_tokens(tokens, required, source):
    """A one-line `ConfigError` naming `source` (a file, or what the tokens are) if any `required` token is missing."""
    present = set(tokens)
    missing = [token for token in required if token not in present]
    if missing:
        raise ConfigError(f"{source}: no {' '.join(missing)} among its {len(present)} tokens (expected a "
                          "vocabulary with them, as BERT's vocab.txt: one token a line)")


@keras.saving.register_keras_serializable(package="tfllm")
class WordPieceTokenizer(keras_hub.tokenizers.WordPieceTokenizer):
    """BERT's WordPiece tokenizer: BERT normalization + keras-hub WordPiece.

    Splits on whitespace, punctuation and CJK characters, then applies
    greedy longest-match-first WordPiece; a word that cannot be covered by the
    vocabulary (or is longer than 100 UTF-8 bytes) becomes `[UNK]`. Always runs
    the TensorFlow path, also when called eagerly.

    Args:
        vocabulary: list of tokens, or the path of a vocabulary file.
        sequence_length: int or None. If set, outputs are dense, padded with 0
            and truncated to this length; else ragged.
        lowercase: bool. Lower-case the text (BERT uncased).
        strip_accents: bool or None. Remove accents; None follows `lowercase`.
        split_on_cjk: bool. Make every CJK character its own word.
        oov_token: the unknown token; must be in the vocabulary.

    Example:
    >>> tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "the", "qu", "##ick"])
    >>> tokenizer(["The quick"]).to_list()
    [[2, 3, 4]]
    """

    def __init__(
        self,
        vocabulary=None,
        sequence_length=None,
        lowercase=True,
        strip_accents=None,
        split_on_cjk=True,
        oov_token=UNK,
        **kwargs,
    ):
        source = os.fspath(vocabulary) if isinstance(vocabulary, (str, os.PathLike)) else "the vocabulary"
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = load_vocabulary(vocabulary)
        if vocabulary is not None:  # keras-hub's own error names neither the file nor the fix
            require_tokens(vocabulary, [oov_token], source)
        # Normalization is ours (see module docstring); keras-hub only splits.
        for key in ("lowercase", "strip_accents", "split", "_allow_python_workflow"):
            kwargs.pop(key, None)
        super().__init__(
            vocabulary=vocabulary,
            sequence_length=sequence_length,
            lowercase=False,
            strip_accents=False,
            split=True,
            split_on_cjk=split_on_cjk,
            oov_token=oov_token,
            _allow_python_workflow=False,
            **kwargs,
        )
        self.bert_lowercase = lowercase
        self.bert_strip_accents = strip_accents

    def tokenize(self, inputs):
        if not isinstance(inputs, (tf.Tensor, tf.RaggedTensor)):
            inputs = tf.convert_to_tensor(inputs, dtype=tf.string)
        inputs = normalize_text(inputs, self.bert_lowercase, self.bert_strip_accents)
        return super().tokenize(inputs)

    def get_config(self):
        config = super().get_config()
        for key in ("split", "special_tokens_in_strings"):
            config.pop(key, None)
        config.update(
            {
                "vocabulary": list(self.vocabulary),
                "lowercase": self.bert_lowercase,
                "strip_accents": self.bert_strip_accents,
                "split_on_cjk": self.split_on_cjk,
            }
        )
        return config


def build_word_piece_vocabulary(
    texts,
    vocab_size,
    lowercase=True,
    strip_accents=None,
    reserved_tokens=RESERVED_TOKENS,
    batch_size=1024,
):
    """Learns a WordPiece vocabulary of at most `vocab_size` tokens from texts.

    Uses keras-hub's `compute_word_piece_vocabulary` (tensorflow-text's
    bottom-up learner) on text normalized exactly as `WordPieceTokenizer`
    normalizes it. Reserved tokens come first, so `[PAD]` is id 0.

    Args:
        texts: list of strings or a `tf.data.Dataset` of scalar strings.
        vocab_size: int, the maximum vocabulary size (reserved tokens included).
        lowercase, strip_accents: as for `WordPieceTokenizer`; use the same
            values there.
        reserved_tokens: tokens placed first, in this order.
    """
    reserved_tokens = list(reserved_tokens)
    if not reserved_tokens or reserved_tokens[0] != PAD:
        raise ConfigError(
            f"reserved_tokens must start with {PAD} (id 0); got {reserved_tokens}"
        )
    if vocab_size <= len(reserved_tokens):
        raise ConfigError(
            f"vocab_size={vocab_size} leaves no room after "
            f"{len(reserved_tokens)} reserved tokens"
        )
    if isinstance(texts, tf.data.Dataset):
        ds = texts.batch(batch_size)
    else:
        texts = tf.constant(list(texts), tf.string)
        ds = tf.data.Dataset.from_tensor_slices(texts).batch(batch_size)
    # do_not_convert: plain TensorFlow ops; tf.data would otherwise run AutoGraph over normalize_text's module.
    ds = ds.map(tf.autograph.experimental.do_not_convert(lambda t: normalize_text(t, lowercase, strip_accents)))
    return keras_hub.tokenizers.compute_word_piece_vocabulary(
        ds,
        vocab_size,
        lowercase=False,
        strip_accents=False,
        split=True,
        split_on_cjk=True,
        reserved_tokens=reserved_tokens,
    )

