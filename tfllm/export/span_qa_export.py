"""Export a BERT span QA model as a SavedModel: question and context strings in, answer text and score out."""

import tensorflow as tf

from tfllm.data.squad import token_offsets
from tfllm.errors import ConfigError
from tfllm.export.serving_layout import check_string_batch
from tfllm.export.serving_layout import export_module
from tfllm.export.serving_layout import padded_length
from tfllm.export.serving_layout import string_batch_spec

WARMUP_EXAMPLES = [
    ("Where is the Eiffel Tower?", "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."),
    ("When was it built?", "It was built from 1887 to 1889 as the centrepiece of the 1889 World's Fair, and it is "
     "named after the engineer Gustave Eiffel, whose company designed and built the tower."),
]


class SpanQAServingModule(tf.Module):
    """Tokenizer with character offsets + `BertSpanQA` + best-span decoding, in one graph.

    One window per question: `[CLS] question [SEP] context [SEP]` (a
    `RobertaPreprocessor`: `<s> question </s></s> context </s>`, segment ids
    0), packed as `tfllm.data.squad.squad_features` packs it in training, the
    question cut to `max_query_length` tokens and the context TRUNCATED to
    the tokens that fit in `sequence_length` (the preprocessor's). Unlike
    evaluation in recipes/qa.py there is no doc stride: an answer beyond the
    first window cannot be found; split long contexts (or raise
    `sequence_length`, at most the model's `max_sequence_length`) on the
    client. Within the window, decoding is that of
    `tfllm.data.span_decoding`: the best span of context tokens with
    `start <= end < start + max_answer_length` by `start_logit + end_logit`
    (ties to the earlier span), mapped back to a slice of the original
    context through the tokens' character offsets. The model runs on the
    batch padded to its longest window rounded up to 8 tokens
    (`padded_length`), not to `sequence_length`.

    Signature `serving_default`:
        inputs:  `question`: string [batch], `context`: string [batch]
        outputs: `answer`: string [batch] ("" if the context has no token),
                 `score`: float32 [batch] (start + end logit; -inf if no answer),
                 `answer_start`, `answer_end`: int32 [batch], the answer is
                     `context[answer_start:answer_end]` in Unicode characters (-1 if none).
    """

    def __init__(self, preprocessor, model, max_query_length=64, max_answer_length=30):
        super().__init__()
        self.sequence_length = preprocessor.sequence_length
        self.num_special = preprocessor.num_special_tokens(2)
        if max_query_length < 1 or max_query_length + self.num_special >= self.sequence_length:
            raise ConfigError(f"max_query_length={max_query_length} leaves no room for the context in "
                             f"sequence_length={self.sequence_length}")
        if max_answer_length < 1:
            raise ConfigError(f"max_answer_length={max_answer_length} must be at least 1")
        self.preprocessor = preprocessor
        self.tokenizer = preprocessor.tokenizer
        self.offsets = token_offsets(self.tokenizer)
        self.model = model
        self.max_query_length = max_query_length
        self.max_answer_length = max_answer_length

    @tf.function(input_signature=[string_batch_spec("question"), string_batch_spec("context")], autograph=False)
    def serve(self, question, context):
        question = check_string_batch(question, "question")
        context = check_string_batch(context, "context")
        tf.debugging.assert_equal(tf.shape(question), tf.shape(context),
                                  message="inputs `question` and `context` must have the same batch size")
        batch = tf.shape(question)[0]
        query = tf.cast(self.tokenizer(question), tf.int64)[:, : self.max_query_length]
        ids, starts, ends = self.offsets.tokenize_in_graph(context)
        room = self.sequence_length - self.num_special - query.row_lengths()  # context tokens that fit
        fits = tf.ragged.range(ids.row_lengths()) < room[:, None]
        ids, starts, ends = (tf.ragged.boolean_mask(x, fits) for x in (ids, starts, ends))

        def column(value):
            return tf.fill([batch, 1], tf.cast(value, tf.int64))

        pre = self.preprocessor
        cls, sep = column(pre.cls_token_id), column(pre.sep_token_id)
        separator = [sep] * pre.separator_length  # [SEP] (RoBERTa: </s></s>)
        token_ids = tf.concat([cls, query, *separator, tf.cast(ids, tf.int64), sep], axis=1)
        prefix = query.row_lengths() + 1 + pre.separator_length  # [CLS] question [SEP]
        lengths = token_ids.row_lengths()
        # Dynamic length: padded to the batch's longest window (rounded up to 8), not to sequence_length.
        length = padded_length(lengths, self.sequence_length)
        shape = tf.stack([batch, length])
        token_ids = tf.cast(token_ids.to_tensor(tf.cast(pre.pad_token_id, tf.int64), shape=shape), tf.int32)
        positions = tf.range(length, dtype=tf.int64)[None, :]
        second = (positions >= prefix[:, None]) & (positions < lengths[:, None]) & pre.distinct_segment_ids
        features = {
            "token_ids": token_ids,
            "segment_ids": tf.cast(second, tf.int32),
            "padding_mask": positions < lengths[:, None],
        }
        outputs = self.model(features, training=False)
        start_logits = tf.cast(outputs["start_logits"], tf.float32)
        end_logits = tf.cast(outputs["end_logits"], tf.float32)

        # Character offsets per window position; -1 outside the context.
        def outside():
            return tf.fill([batch, 1], tf.constant(-1, tf.int64))

        pad_prefix = tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(prefix)], tf.constant(-1, tf.int64)),
                                                      prefix, validate=False)
        char_starts = tf.concat([pad_prefix, starts, outside()], axis=1).to_tensor(-1, shape=shape)
        char_ends = tf.concat([pad_prefix, ends, outside()], axis=1).to_tensor(-1, shape=shape)
        in_context = char_starts >= 0

        # Every span (s, e) of context tokens with 0 <= e - s < max_answer_length.
        span_length = positions[0][None, :] - positions[0][:, None]  # [s, e] -> e - s
        allowed = (span_length >= 0) & (span_length < self.max_answer_length)
        valid = allowed[None] & in_context[:, :, None] & in_context[:, None, :]
        scores = tf.where(valid, start_logits[:, :, None] + end_logits[:, None, :], -float("inf"))
        best = tf.argmax(tf.reshape(scores, [batch, -1]), axis=-1, output_type=tf.int32)
        start, end = best // length, best % length
        found = tf.reduce_any(valid, axis=[1, 2])
        answer_start = tf.where(found, tf.gather(char_starts, start, batch_dims=1), -1)
        answer_end = tf.where(found, tf.gather(char_ends, end, batch_dims=1), -1)
        answer = tf.strings.substr(context, tf.maximum(answer_start, 0), tf.maximum(answer_end - answer_start, 0),
                                   unit="UTF8_CHAR")
        return {
            "answer": tf.where(found, answer, ""),
            "score": tf.reduce_max(tf.reshape(scores, [batch, -1]), axis=-1),
            "answer_start": tf.cast(answer_start, tf.int32),
            "answer_end": tf.cast(answer_end, tf.int32),
        }

    def signatures(self):  # tf.functions, traced once, inside tf.saved_model.save
        return {"serving_default": self.serve}

    def warmup_requests(self):
        questions, contexts = (list(x) for x in zip(*WARMUP_EXAMPLES))
        return [("serving_default", {"question": questions[:1], "context": contexts[:1]}),
                ("serving_default", {"question": questions, "context": contexts})]


def export_span_qa(preprocessor, model, export_dir, model_name="span_qa", version=1, max_query_length=64,
                   max_answer_length=30, warmup=True):
    """Write the QA SavedModel to `export_dir/<model_name>/<version>/` atomically; returns that path.

    The window length is `preprocessor.sequence_length` (recipes/qa.py's --max_seq_length).
    """
    module = SpanQAServingModule(preprocessor, model, max_query_length, max_answer_length)
    return export_module(module, module.signatures(), export_dir, model_name, version,
                         module.warmup_requests() if warmup else ())
