"""Hugging Face BERT (`BertModel`, `BertForPreTraining`, `BertForSequenceClassification`) -> tfllm.

Works on HF tensor names with the model prefix stripped ("bert.") and
LayerNorm `gamma`/`beta` renamed `weight`/`bias` (old checkpoints use both).
The Google-checkpoint converter and the RoBERTa, DistilBERT and ELECTRA
converters rename their tensors into this form, so the mapping to tfllm lives
here once.

HF `nn.Linear` weights are [out, in]; Keras kernels are [in, out], and our
attention kernels split the head axis: query/key/value [D, N, H], output [N, H, D].
"""

import numpy as np

from tfllm.convert import config_fields as fields
from tfllm.convert.errors import ConversionError

ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate",
               "relu": "relu"}
HEAD_PREFIXES = ("cls.", "classifier.", "discriminator_predictions.")
BUFFERS = ("embeddings.position_ids",)


def bert_config_from_hf(config, source="config.json"):
    """tfllm `Bert` kwargs for a HF BERT config dict; refuses (naming the field) what tfllm cannot represent.

    Sizes must be positive integers and dropout rates in [0, 1); a bad or
    missing value is a `ConversionError` naming `source` and the field.
    """
    def refuse(field, why):
        raise ConversionError(f"{source}: {field}={config.get(field)!r} is not supported by tfllm ({why})")

    if config.get("model_type", "bert") != "bert":
        refuse("model_type", "this is the converter of model_type 'bert'")
    return encoder_fields(config, source)


config_from_hf = bert_config_from_hf


def encoder_fields(config, source):
    """The `Bert` kwargs that BERT, RoBERTa and ELECTRA configs spell alike, checked (see `bert_config_from_hf`)."""
    def refuse(field, why):
        raise ConversionError(f"{source}: {field}={config.get(field)!r} is not supported by tfllm ({why})")

    if config.get("position_embedding_type", "absolute") != "absolute":
        refuse("position_embedding_type", "tfllm BERT has learned absolute positions only")
    if config.get("hidden_act", "gelu") not in ACTIVATIONS:
        refuse("hidden_act", f"supported: {', '.join(ACTIVATIONS)}")
    if config.get("is_decoder") or config.get("add_cross_attention"):
        refuse("is_decoder" if config.get("is_decoder") else "add_cross_attention", "encoders only")
    hidden = fields.size(config, "hidden_size", source)
    heads = fields.size(config, "num_attention_heads", source)
    fields.heads_divide(hidden, heads, "hidden_size", "num_attention_heads", source)
    return dict(
        vocabulary_size=fields.size(config, "vocab_size", source),
        num_layers=fields.size(config, "num_hidden_layers", source),
        num_heads=heads,
        hidden_dim=hidden,
        intermediate_dim=fields.size(config, "intermediate_size", source),
        dropout=fields.probability(config, "hidden_dropout_prob", source, 0.1),
        attention_dropout=fields.probability(config, "attention_probs_dropout_prob", source, 0.1),
        max_sequence_length=fields.size(config, "max_position_embeddings", source, 512),
        num_segments=fields.size(config, "type_vocab_size", source, 2),
        activation=ACTIVATIONS[config.get("hidden_act", "gelu")],
        layer_norm_epsilon=fields.positive(config, "layer_norm_eps", source, 1e-12),
        initializer_range=fields.positive(config, "initializer_range", source, 0.02),
    )


def normalize_names(tensors, prefix="bert.", renames=()):
    """Strip the model prefix ("bert.") and rename LayerNorm gamma/beta -> weight/bias.

    `renames` (pairs of name prefixes, old -> new; the first that matches
    applies) turn another family's names into BERT's.
    """
    out = {}
    for name, value in tensors.items():
        name = name[len(prefix):] if name.startswith(prefix) else name
        for old, new in renames:
            if name.startswith(old):
                name = new + name[len(old):]
                break
        if ".LayerNorm." in name:
            name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
        out[name] = value
    return out


def _dense(porter, layer, name):
    porter.assign(layer.kernel, porter.take(f"{name}.weight").T)
    porter.assign(layer.bias, porter.take(f"{name}.bias"))


def _layer_norm(porter, layer, name):
    porter.assign(layer.gamma, porter.take(f"{name}.weight"))
    porter.assign(layer.beta, porter.take(f"{name}.bias"))


def _attention(porter, attention, name, num_heads):
    for proj, layer in (("query", attention.query_dense), ("key", attention.key_dense),
                        ("value", attention.value_dense)):
        w = porter.take(f"{name}.self.{proj}.weight")  # [N*H, D]
        hidden = w.shape[1]
        porter.assign(layer.kernel, w.T.reshape(hidden, num_heads, -1))
        porter.assign(layer.bias, porter.take(f"{name}.self.{proj}.bias").reshape(num_heads, -1))
    w = porter.take(f"{name}.output.dense.weight")  # [D, N*H]
    porter.assign(attention.output_dense.kernel, w.T.reshape(num_heads, -1, w.shape[0]))
    porter.assign(attention.output_dense.bias, porter.take(f"{name}.output.dense.bias"))


def port_backbone(porter, bert, log=None):
    """embeddings.*, [embeddings_project.*], encoder.layer.{i}.*, pooler.* -> a tfllm `Bert`.

    A checkpoint without `pooler.*` (RoBERTa masked-LM, DistilBERT and ELECTRA
    base models) leaves the pooler newly initialised, reported to `log`: it is
    the first layer of the classification head those families add when
    fine-tuning, which transformers initialises anew too.
    """
    for name in BUFFERS:
        if porter.has(name):
            porter.ignore(name, "buffer")
    emb = bert.embeddings
    porter.assign(emb.token_embedding.embeddings, porter.take("embeddings.word_embeddings.weight"))
    porter.assign(emb.position_layer.position_embeddings, porter.take("embeddings.position_embeddings.weight"))
    if emb.segment_embedding is not None:
        porter.assign(emb.segment_embedding.embeddings, porter.take("embeddings.token_type_embeddings.weight"))
    _layer_norm(porter, emb.norm, "embeddings.LayerNorm")
    if bert.embeddings_project is not None:
        _dense(porter, bert.embeddings_project, "embeddings_project")
    for i, block in enumerate(bert.encoder_blocks):
        p = f"encoder.layer.{i}"
        _attention(porter, block.self_attention, f"{p}.attention", bert.num_heads)
        _layer_norm(porter, block.self_attention_layer_norm, f"{p}.attention.output.LayerNorm")
        _dense(porter, block.feed_forward.intermediate_dense, f"{p}.intermediate.dense")
        _dense(porter, block.feed_forward.output_dense, f"{p}.output.dense")
        _layer_norm(porter, block.feed_forward_layer_norm, f"{p}.output.LayerNorm")
    if porter.has("pooler.dense.weight"):
        _dense(porter, bert.pooler, "pooler.dense")
    else:
        porter.keep(bert.pooler.weights, "new")
        if log:
            log(f"{porter.source}: no pooler (or classification head) weights; the pooler is newly initialised")


def check_tied(porter, name, expected, what):
    """A stored copy of a tied weight (e.g. the MLM decoder) must equal the weight it is tied to."""
    if porter.has(name):
        if not np.array_equal(porter.tensors[name], expected):
            raise ConversionError(f"{porter.source}: {name} differs from {what}; tfllm ties them "
                                  "(untied weights are not supported)")
        porter.ignore(name, f"tied to {what}")


def port_pretraining_heads(porter, pretrainer):
    """cls.predictions.* (MLM, decoder tied to the word embeddings) and cls.seq_relationship.* (NSP)."""
    port_mlm_head(porter, pretrainer.mlm_head)
    _dense(porter, pretrainer.nsp_head, "cls.seq_relationship")


def port_mlm_head(porter, head):
    """cls.predictions.* -> keras-hub's `MaskedLMHead` (its decoder is tied to the word embeddings)."""
    _dense(porter, head._intermediate_dense, "cls.predictions.transform.dense")
    _layer_norm(porter, head._intermediate_layer_norm, "cls.predictions.transform.LayerNorm")
    bias = porter.take("cls.predictions.bias")
    porter.assign(head._bias, bias)
    check_tied(porter, "cls.predictions.decoder.weight", porter.tensors["embeddings.word_embeddings.weight"],
               "embeddings.word_embeddings.weight")
    check_tied(porter, "cls.predictions.decoder.bias", bias, "cls.predictions.bias")


def port_classifier_head(porter, classifier):
    _dense(porter, classifier.get_layer("logits"), "classifier")


def port_discriminator_head(porter, model):
    """ELECTRA's discriminator_predictions.{dense, dense_prediction} -> an `ElectraDiscriminator`'s two layers."""
    _dense(porter, model.get_layer("discriminator_dense"), "discriminator_predictions.dense")
    _dense(porter, model.get_layer("discriminator_logits"), "discriminator_predictions.dense_prediction")


def ignore_heads(porter, log):
    """Head weights that no loaded head took are known and deliberately left out (logged)."""
    heads = sorted(n for n in porter.tensors if n.startswith(HEAD_PREFIXES) and n not in porter.used)
    for name in heads:
        porter.ignore(name, "task head, not part of the backbone")
    if heads:
        log(f"{porter.source}: not loading {len(heads)} head weights into the backbone "
            f"({', '.join(sorted({'.'.join(n.split('.')[:2]) for n in heads}))})")


def num_labels(porter):
    """The number of classes of a stored classifier head, or None if there is none."""
    return porter.tensors["classifier.weight"].shape[0] if porter.has("classifier.weight") else None
