"""Export a text classifier (or regressor) as a SavedModel: raw strings or string pairs in, probabilities and
labels (or a score) out."""

import tensorflow as tf

from tfllm.errors import ConfigError
from tfllm.export.serving_layout import check_string_batch
from tfllm.export.serving_layout import export_module
from tfllm.export.serving_layout import string_batch_spec
from tfllm.export.serving_layout import trim_padding

# Warmup requests: one sentence and a small batch (the two shapes servers see most).
WARMUP_TEXTS = ["This is a short example sentence.",
                "A second, slightly longer example sentence for the warmup batch of the model."]
WARMUP_PAIRS = ["This is a short example sentence, paired.",
                "And the second text of the second pair, which is a little longer than the first."]
TASKS = ("classification", "regression")


class ClassifierServingModule(tf.Module):
    """Tokenizer + model in one graph, with a `serving_default` signature over raw strings.

    Signature `serving_default`:
        inputs:  `text`: string [batch]; with `text_pair=True` also
                 `text_pair`: string [batch], the second text of each pair
                 (packed `[CLS] text [SEP] text_pair [SEP]`, the same batch size)
        outputs (classification): `probabilities`: float32 [batch, num_classes],
                 `label`: int32 [batch] (argmax),
                 `label_name`: string [batch] (from `label_names`, else the id as text);
        outputs (regression): `score`: float32 [batch], the model's one output.
    Texts (pairs) longer than the preprocessor's `sequence_length` tokens are
    truncated as in training. With `dynamic_length=True` (the default) the
    model runs on the batch padded to its longest row rounded up to 8
    tokens (`trim_padding`), not to `sequence_length`: the same outputs, at
    a fraction of the compute for short texts.

    With `token_ids_signatures=True` two more signatures split the work, for
    clients that tokenize themselves and to measure the tokenizer's share of
    latency (tools/serve_bench.py):
        `tokenize`: the inputs of `serving_default` -> `token_ids`, `segment_ids`
            int32 [batch, sequence_length], `padding_mask` bool [batch, sequence_length];
        `classify_token_ids`: those three -> the outputs of `serving_default`
            (trimmed the same way with `dynamic_length=True`).
    """

    def __init__(self, preprocessor, model, label_names=None, token_ids_signatures=False, task="classification",
                 text_pair=False, dynamic_length=True):
        super().__init__()
        self.dynamic_length = dynamic_length
        if task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
        self.token_ids_signatures = token_ids_signatures
        self.preprocessor = preprocessor
        self.model = model
        self.task = task
        self.text_pair = text_pair
        num_outputs = model.output.shape[-1]
        if task == "regression":
            if num_outputs != 1:
                raise ConfigError(f"a regression model has one output; this one has {num_outputs}")
        else:
            names = label_names or [str(i) for i in range(num_outputs)]
            if len(names) != num_outputs:
                raise ConfigError(f"{len(names)} label names given for {num_outputs} classes")
            self.label_names = tf.constant(names)
        # Built here, not with a decorator: the inputs depend on `text_pair`, and
        # tf.saved_model.save traces every tf.function it finds on the module.
        inputs = [string_batch_spec("text")] + ([string_batch_spec("text_pair")] if text_pair else [])
        self.serve = tf.function(self._serve, input_signature=inputs, autograph=False)
        if token_ids_signatures:
            self.tokenize = tf.function(self._tokenize, input_signature=inputs, autograph=False)
            self.classify_token_ids = tf.function(self._classify_token_ids, input_signature=[
                tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
                tf.TensorSpec([None, None], tf.bool, name="padding_mask"),
            ], autograph=False)

    def _serve(self, text, text_pair=None):
        return self._outputs(self._tokenize(text, text_pair))

    def _tokenize(self, text, text_pair=None):
        text = check_string_batch(text, "text")
        if text_pair is None:
            return self.preprocessor(text)
        text_pair = check_string_batch(text_pair, "text_pair")
        same = tf.debugging.assert_equal(tf.shape(text), tf.shape(text_pair),
                                         message="inputs `text` and `text_pair` must have the same batch size")
        with tf.control_dependencies([same]):
            return self.preprocessor((tf.identity(text), text_pair))

    def _classify_token_ids(self, token_ids, segment_ids, padding_mask):
        return self._outputs(dict(token_ids=token_ids, segment_ids=segment_ids, padding_mask=padding_mask))

    def _outputs(self, features):
        if self.dynamic_length:
            features = trim_padding(features)
        outputs = tf.cast(self.model(features, training=False), tf.float32)
        if self.task == "regression":
            return {"score": outputs[:, 0]}
        probabilities = tf.nn.softmax(outputs, axis=-1)
        label = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "probabilities": probabilities,
            "label": label,
            "label_name": tf.gather(self.label_names, label),
        }

    def signatures(self):  # tf.functions, traced once, inside tf.saved_model.save
        signatures = {"serving_default": self.serve}
        if self.token_ids_signatures:
            signatures.update(tokenize=self.tokenize, classify_token_ids=self.classify_token_ids)
        return signatures

    def warmup_requests(self):
        requests = []
        for n in (1, 2):
            inputs = {"text": WARMUP_TEXTS[:n]}
            if self.text_pair:
                inputs["text_pair"] = WARMUP_PAIRS[:n]
            requests.append(("serving_default", inputs))
        return requests


def export_classifier(preprocessor, model, export_dir, model_name="classifier", version=1,
                      label_names=None, warmup=True, token_ids_signatures=False, task="classification",
                      text_pair=False, dynamic_length=True):
    """Write the SavedModel to `export_dir/<model_name>/<version>/` atomically; returns that path.

    `task="regression"` serves a one-output model's `score`; `text_pair=True`
    takes `text` and `text_pair` inputs (a model fine-tuned on sentence pairs);
    `dynamic_length=False` runs the model on every batch padded to the full
    `sequence_length` (the same outputs, slower for short texts).
    """
    module = ClassifierServingModule(preprocessor, model, label_names, token_ids_signatures, task, text_pair,
                                     dynamic_length)
    return export_module(module, module.signatures(), export_dir, model_name, version,
                         module.warmup_requests() if warmup else ())
