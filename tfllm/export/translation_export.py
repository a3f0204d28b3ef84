"""Export a Seq2SeqTransformer as a SavedModel: source strings in, translated strings out."""

import tensorflow as tf

from tfllm import generation
from tfllm.export.serving_layout import check_string_batch
from tfllm.export.serving_layout import export_module
from tfllm.export.serving_layout import string_batch_spec
from tfllm.tokenizers.sentence_piece import BOS_ID
from tfllm.tokenizers.sentence_piece import EOS_ID

WARMUP_SOURCES = ["A man is riding a bike.", "Two dogs are playing in the snow near a red fence."]


class TranslationServingModule(tf.Module):
    """SentencePiece tokenizer + cached beam search (or greedy) + detokenizer in one graph.

    Signature `serving_default`:
        inputs:  `source`: string [batch]
        outputs: `translation`: string [batch],
                 `score`: float32 [batch] (beam score: log-probability / GNMT
                 length penalty; greedy: 0).
    As `tfllm.models.seq2seq.translation.translate_texts`: sources are cut to
    `max_source_length` tokens and each batch may generate up to
    2 x (longest source) + 10 tokens, within the model's `max_sequence_length`.
    """

    def __init__(self, model, tokenizer, num_beams=4, length_penalty=0.6, max_source_length=None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.num_beams = int(num_beams)
        self.max_source_length = min(max_source_length or model.max_sequence_length, model.max_sequence_length)
        self._sampler = (generation.BeamSearch(self.num_beams, length_penalty, return_scores=True)
                         if self.num_beams > 1 else generation.make_sampler(temperature=0))

    @tf.function(input_signature=[string_batch_spec("source")], autograph=False)
    def serving_default(self, source):
        source = check_string_batch(source, "source")
        ids = tf.cast(self.tokenizer(source), tf.int32)[:, : self.max_source_length]
        empty = tf.equal(ids.row_lengths(), 0)
        ids = ids.to_tensor(default_value=0)
        ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])
        # An empty source becomes a lone EOS, as in translate_texts.
        ids = tf.concat([tf.where(empty, EOS_ID, ids[:, 0])[:, None], ids[:, 1:]], axis=1)
        max_length = tf.minimum(2 * tf.shape(ids)[1] + 11, self.model.max_sequence_length)
        result = self.model._decode(ids, ids != 0, max_length, BOS_ID, EOS_ID, self._sampler)
        tokens, scores = result if isinstance(result, tuple) else (result, tf.zeros([tf.shape(ids)[0]]))
        tokens = tokens[:, 1:]
        before_eos = tf.equal(tf.cumsum(tf.cast(tf.equal(tokens, EOS_ID), tf.int32), axis=1), 0)
        lengths = tf.reduce_sum(tf.cast(before_eos, tf.int32), axis=1)
        new = tf.RaggedTensor.from_tensor(tokens, lengths=lengths)
        text = self.tokenizer.detokenize(new)
        return {"translation": text, "score": tf.cast(scores, tf.float32)}

    def signatures(self):
        return {"serving_default": self.serving_default}

    def warmup_requests(self):
        return [("serving_default", {"source": WARMUP_SOURCES[:1]}), ("serving_default", {"source": WARMUP_SOURCES})]


def export_translator(model, tokenizer, export_dir, model_name="translator", version=1, num_beams=4,
                      length_penalty=0.6, max_source_length=None, warmup=True):
    """Write the SavedModel to `export_dir/<model_name>/<version>/` atomically; returns that path."""
    module = TranslationServingModule(model, tokenizer, num_beams, length_penalty, max_source_length)
    return export_module(module, module.signatures(), export_dir, model_name, version,
                         module.warmup_requests() if warmup else ())
