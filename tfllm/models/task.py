"""What every task model shares: a backbone with a head, config round trips, pretrained folders.

As keras-hub's `Task`: a subclass builds its functional graph in `__init__`
(backbone inputs -> backbone -> head), calls `super().__init__(inputs=...,
outputs=...)` and stores `self.backbone` and the head arguments named in
`head_args`, so that `get_config`, `from_config`, `save_pretrained` and
`from_pretrained` need nothing more from it.
"""

import keras


@keras.saving.register_keras_serializable(package="tfllm")
class Task(keras.Model):
    """A backbone plus a head. `head_args` names the constructor arguments besides `backbone`."""

    head_args = ()
    # The `tfllm.models.pretrained.load_model` task this class loads as.
    pretrained_task = None

    def head_config(self):
        """The head's constructor arguments: saved by `save_pretrained`, passed back on load."""
        return {name: getattr(self, name) for name in self.head_args}

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.layers.serialize(self.backbone),
            **self.head_config(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """This model from a tfllm, Hugging Face or Google folder (see `tfllm.models.pretrained`).

        The folder's own head when it has one of this kind, else a new,
        randomly initialised head (logged) on the loaded backbone.
        """
        from tfllm.models.pretrained import load_model  # noqa: PLC0415  (avoids an import cycle)

        return load_model(path, cls.pretrained_task, **kwargs)

    def save_pretrained(self, path, tokenizer=None):
        """Write config.json + model.weights.h5 (+ tokenizer assets) that `from_pretrained` loads."""
        from tfllm.models.pretrained import save_pretrained  # noqa: PLC0415

        return save_pretrained(self, path, tokenizer)


def dense_logits(backbone, units, name):
    """A dense layer to `units` logits, with BERT's initialiser, computing in the backbone's dtype."""
    return keras.layers.Dense(
        units,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=backbone.initializer_range),
        dtype=backbone.dtype_policy,
        name=name,
    )


def as_float32(logits, name="float32_logits"):
    """Logits cast to float32 (under mixed precision the loss and softmax need the range)."""
    return keras.layers.Activation("linear", dtype="float32", name=name)(logits)
