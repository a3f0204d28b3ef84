"""What every task model shares: a backbone with a head, config round trips, pretrained folders.

As keras-hub's `Task`: a subclass builds its functional graph in `__init__`
(backbone inputs -> backbone -> head), calls `super().__init__(inputs=...,
outputs=...)` and stores `self.backbone` and the head arguments named in
`head_args`, so that `get_config`, `from_config`, `save_pretrained` and
`from_pretrained` need nothing more from it.
"""

import keras

from tfllm.models.pretrained import PretrainedMixin


@keras.saving.register_keras_serializable(package="tfllm")
class Task(PretrainedMixin, keras.Model):
    """A backbone plus a head. `head_args` names the constructor arguments besides `backbone`."""

    head_args = ()
    # The backbone class this head goes on (`from_pretrained` builds it from a checkpoint).
    backbone_class = None

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



def dense_logits(backbone, units, name, initializer=None):
    """A new task head: a dense layer to `units` logits, computing in the backbone's dtype.

    Initialised as Google's BERT initialises its heads (a normal truncated at
    two standard deviations) unless `initializer` says otherwise.
    """
    return keras.layers.Dense(
        units,
        kernel_initializer=initializer or keras.initializers.TruncatedNormal(stddev=backbone.initializer_range),
        dtype=backbone.dtype_policy,
        name=name,
    )


def as_float32(logits, name="float32_logits"):
    """Logits cast to float32 (under mixed precision the loss and softmax need the range)."""
    return keras.layers.Activation("linear", dtype="float32", name=name)(logits)
