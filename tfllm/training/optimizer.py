"""AdamW with linear warmup then linear or cosine decay: the BERT/GPT recipe."""

import collections

import keras
import tensorflow as tf
from absl import logging
from keras import ops

from tfllm.errors import ConfigError

# Variables that get no weight decay: every bias, the LayerNorm scale and
# offset (Keras names them `gamma`/`beta`) and tfllm's RMSNorm `scale` (Llama),
# as BERT's `exclude_from_weight_decay` and the `no_decay` groups of Hugging
# Face recipes (which put every norm weight there). Keras `re.search`es these
# patterns in the variable's name: the last path segment ("gamma", "bias",
# keras-hub MaskedLMHead's "output_bias", = BERT's cls/predictions/output_bias),
# or a TensorFlow name with a suffix (".../bias/replica_1:0" under
# MirroredStrategy), so match the end of the last segment.
NO_WEIGHT_DECAY = [r"(^|[/_])(bias|gamma|beta|scale)(/replica_\d+)?(:\d+)?$"]

# Variable dtypes whose Adam arithmetic runs in float32 (see `AdamW._written_out_update_step`).
HALF_PRECISION = ("float16", "bfloat16")


@keras.saving.register_keras_serializable(package="tfllm")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak` over `warmup_steps`, then linear decay.

    Reaches `end_learning_rate` at `total_steps` and stays there. Keras has no
    warmup for `PolynomialDecay`, and `CosineDecay`'s warmup only pairs with a
    cosine, so this one is written out (for cosine we reuse `CosineDecay`).
    """

    def __init__(self, peak, warmup_steps, total_steps, end_learning_rate=0.0):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.end_learning_rate = end_learning_rate

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = self.peak * step / max(self.warmup_steps, 1)
        decay_fraction = (self.total_steps - step) / max(
            self.total_steps - self.warmup_steps, 1
        )
        decay = self.end_learning_rate + (self.peak - self.end_learning_rate) * (
            keras.ops.clip(decay_fraction, 0.0, 1.0)
        )
        return keras.ops.where(step < self.warmup_steps, warmup, decay)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "end_learning_rate": self.end_learning_rate,
        }


class AdamCoefficients(collections.namedtuple("AdamCoefficients", "learning_rate beta_1_power beta_2_power epsilon")):
    """One update's scalars, computed once for all variables: the rate, beta_1**t, beta_2**t, and epsilon scaled
    so that `ResourceApplyAdam`'s "epsilon hat" placement gives AdamW's (see `AdamW`)."""


@keras.saving.register_keras_serializable(package="tfllm")
class AdamW(keras.optimizers.AdamW):
    """Keras `AdamW` with epsilon where AdamW puts it, clipping by global norm *after* summing over replicas,
    and one fused kernel per variable.

    Epsilon: Keras adds it to sqrt(v) before bias correction ("epsilon hat" of
    Kingma & Ba, section 2), which makes the effective epsilon
    1/sqrt(1 - beta_2**t) times larger: 32x at the first update, still 1.26x
    after 1,000. Adam's Algorithm 1, AdamW's (Loshchilov & Hutter), PyTorch's
    `torch.optim.AdamW` and so the fine-tuning recipes of published checkpoints
    add it to the bias-corrected sqrt(v_hat). On MiniLM fine-tuning with
    epsilon 1e-6 Keras' placement changed the loss by up to 0.8% within 20
    steps (tests/test_training_parity.py); this class matches `transformers`
    to float32 rounding.

    Fused update: Keras writes Adam out as ~20 small ops per variable, and
    recomputes the learning-rate schedule once per variable for weight decay.
    Here the step's scalars are computed once (`AdamCoefficients`), each
    variable takes one `ResourceApplyAdam` (TensorFlow's fused kernel, which
    has XLA and TPU versions) with epsilon * sqrt(1 - beta_2**t), which is
    exactly AdamW's placement, and decay multiplies by one precomputed
    lr * weight_decay. Same update; a training step traces about twice as fast
    and runs fewer kernels (`tools/benchmark.py train-bert`, "first step s").

    Clipping: Keras 3 clips each replica's local gradients before the all-reduce (see
    `BaseOptimizer._backend_apply_gradients`; tensorflow#33929 explains why
    that is wrong), so under MirroredStrategy/TPUStrategy `global_clipnorm`
    would clip a different vector than on one device. Here clipping moves to
    just after the TensorFlow backend's all-reduce, so every strategy trains
    the same.

    Sparse gradients (an embedding's `IndexedSlices`) are made dense before
    clipping: TensorFlow's global norm of them squares each occurrence of a
    repeated token separately, where PyTorch's dense gradient sums them first.

    Relies on private Keras 3 methods (`_backend_update_step`,
    `_apply_weight_decay`, `_clip_gradients`, `_all_reduce_sum_gradients`);
    tests/test_training.py checks the update against numpy and the
    Mirrored-vs-one-device run, and catches it if Keras changes them.
    """

    def get_config(self):
        """Keras' config, plus the names excluded from weight decay (Keras keeps them out of it, so a model saved
        with `model.save` would come back decaying its biases and LayerNorm parameters)."""
        config = super().get_config()
        pattern = getattr(self, "_exclude_from_weight_decay_pattern", None)
        config["exclude_from_weight_decay"] = pattern.pattern if pattern is not None else None
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        pattern = config.pop("exclude_from_weight_decay", None)
        optimizer = super().from_config(config, custom_objects=custom_objects)
        if pattern:
            optimizer.exclude_from_weight_decay(var_names=[pattern])
        return optimizer

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        """Keras' per-variable update, handed the step's `AdamCoefficients` instead of the bare rate."""
        step = ops.cast(self.iterations + 1, "float32")
        beta_2_power = ops.power(ops.cast(self.beta_2, "float32"), step)
        coefficients = AdamCoefficients(
            learning_rate=ops.cast(learning_rate, "float32"),
            beta_1_power=ops.power(ops.cast(self.beta_1, "float32"), step),
            beta_2_power=beta_2_power,
            epsilon=self.epsilon * ops.sqrt(1.0 - beta_2_power),
        )
        super()._backend_update_step(grads, trainable_variables, coefficients)

    def update_step(self, gradient, variable, learning_rate):
        """One Adam step on one variable, in the order of `torch.optim.AdamW` (decay was applied before)."""
        dtype = variable.dtype
        if self.amsgrad or not isinstance(learning_rate, AdamCoefficients) or dtype in HALF_PRECISION:
            return self._written_out_update_step(gradient, variable, learning_rate)
        lr, beta_1_power, beta_2_power, epsilon = (ops.cast(c, dtype) for c in learning_rate)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_resource(variable).handle, m=_resource(self._momentums[index]).handle,
            v=_resource(self._velocities[index]).handle, beta1_power=beta_1_power, beta2_power=beta_2_power,
            lr=lr, beta1=ops.cast(self.beta_1, dtype), beta2=ops.cast(self.beta_2, dtype), epsilon=epsilon,
            grad=ops.cast(gradient, dtype),
        )

    def _written_out_update_step(self, gradient, variable, learning_rate):
        """The same step in separate ops, for amsgrad (no fused kernel), a bare learning rate, or a 16-bit
        variable: its arithmetic is float32, since beta_2 = 0.999 rounds to 1 in bfloat16 (Keras' Adam then
        stops updating it, the fused kernel's update blows up)."""
        if isinstance(learning_rate, AdamCoefficients):
            learning_rate = learning_rate.learning_rate
        dtype = "float32" if variable.dtype in HALF_PRECISION else variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        bias_correction_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        bias_correction_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m = ops.cast(self._momentums[index], dtype)
        v = ops.cast(self._velocities[index], dtype)
        m = ops.add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        v = ops.add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        self.assign(self._momentums[index], m)  # assign casts to the slot's dtype
        self.assign(self._velocities[index], v)
        if self.amsgrad:
            v = ops.maximum(ops.cast(self._velocity_hats[index], dtype), v)
            self.assign(self._velocity_hats[index], v)
        denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(bias_correction_2)), self.epsilon)
        self.assign_sub(variable, ops.multiply(ops.divide(m, denominator), lr / bias_correction_1))

    def _apply_weight_decay(self, variables):
        """variable -= lr * weight_decay * variable on the decayed variables, the product computed once per step."""
        if not self.weight_decay:
            return
        decay = ops.cast(self.learning_rate, "float32") * self.weight_decay
        decayed = [_resource(v) for v in variables if self._use_weight_decay(_resource(v))]

        def decay_all(distribution, variables, decay):
            for variable in variables:
                distribution.extended.update(variable, _decay, args=(decay,), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(decay_all, self._distribution_strategy, decayed, decay)

    def _clip_gradients(self, grads):
        if self.global_clipnorm:
            return grads  # Done after the all-reduce, below.
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # An embedding's IndexedSlices (one row per token occurrence) become dense first: tf.clip_by_global_norm
        # would square the rows of a repeated token before summing them, and the update is dense anyway
        # (`Trainer` passes dense gradients; this covers `model.fit` and direct `apply_gradients`).
        grads_and_vars = [(tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g, v)
                          for g, v in grads_and_vars]
        grads_and_vars = list(super()._all_reduce_sum_gradients(grads_and_vars))
        if not self.global_clipnorm:
            return grads_and_vars
        present = [i for i, (g, _) in enumerate(grads_and_vars) if g is not None]
        clipped, _ = tf.clip_by_global_norm(
            [grads_and_vars[i][0] for i in present], self.global_clipnorm
        )
        for i, g in zip(present, clipped):
            grads_and_vars[i] = (g, grads_and_vars[i][1])
        return grads_and_vars


def _resource(variable):
    """The TensorFlow variable behind a Keras one (what the raw ops and tf.distribute updates take)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _decay(variable, decay):
    variable.assign_sub(variable * ops.cast(decay, variable.dtype))


def create_learning_rate_schedule(
    learning_rate, total_steps, warmup_steps, decay="linear", end_learning_rate=0.0
):
    """Warmup to `learning_rate`, then `linear` or `cosine` decay to the end value.

    A run without a step is a `ConfigError`. A warmup as long as the run or
    longer is cut to `total_steps - 1` (logged), so the peak rate is reached.
    """
    if total_steps < 1:
        raise ConfigError(f"total_steps={total_steps}: the run has no training step "
                          "(too few examples for one batch, or too few epochs or steps?)")
    if warmup_steps < 0:
        raise ConfigError(f"warmup_steps={warmup_steps}: must be >= 0")
    if warmup_steps >= total_steps:
        logging.warning("warmup_steps=%d is not shorter than the run (total_steps=%d): warming up for %d steps",
                        warmup_steps, total_steps, total_steps - 1)
        warmup_steps = total_steps - 1
    if decay == "linear":
        return WarmupLinearDecay(
            learning_rate, warmup_steps, total_steps, end_learning_rate
        )
    if decay == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0,
            warmup_target=learning_rate,
            warmup_steps=warmup_steps,
            decay_steps=total_steps - warmup_steps,
            alpha=end_learning_rate / learning_rate if learning_rate else 0.0,
        )
    raise ConfigError(f"Unknown decay={decay!r}; expected 'linear' or 'cosine'.")


def create_optimizer(
    learning_rate,
    total_steps,
    warmup_steps,
    weight_decay=0.01,
    decay="linear",
    end_learning_rate=0.0,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-6,
    clipnorm=1.0,
    ema_momentum=None,
):
    """AdamW with the warmup/decay schedule and global-norm gradient clipping.

    Clipping uses the gradient summed over replicas (see `AdamW` above). Biases
    and LayerNorm `gamma`/`beta` are excluded from weight decay.
    `total_steps` counts optimizer updates (with gradient accumulation, one
    update per `grad_accum_steps` micro-batches). `ema_momentum` (e.g. 0.999;
    None or 0 for none) also keeps an exponential moving average of the weights (Keras' `use_ema`),
    which `Trainer` swaps in when training ends: an average over the last
    ~1/(1 - momentum) updates generalises better than the last iterate.
    """
    optimizer = AdamW(
        learning_rate=create_learning_rate_schedule(
            learning_rate, total_steps, warmup_steps, decay, end_learning_rate
        ),
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        global_clipnorm=clipnorm,
        use_ema=bool(ema_momentum),  # None or 0: off (0 overrides a flagfile's value)
        ema_momentum=ema_momentum or 0.99,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer
