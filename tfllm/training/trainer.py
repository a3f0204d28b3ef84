"""The one training loop every recipe shares.

A custom loop (`strategy.run` inside a `tf.function`) rather than `model.fit`,
because `fit` fails under MultiWorkerMirroredStrategy (tensorflow/tensorflow#72388)
and cannot resume mid-epoch (Keras' `BackupAndRestore` restarts the epoch).
It works the same on one CPU, MirroredStrategy,
MultiWorkerMirroredStrategy and TPUStrategy, and adds what long runs need:
gradient accumulation, float16 loss scaling, checkpoints with exact resume
(weights, optimizer, data position, dropout RNG), evaluation, a NaN guard,
SIGTERM and Ctrl-C handling (checkpoint, then exit), TensorBoard scalars and one progress line every `log_every`.

Example:

    strategy = create_strategy("auto")
    with strategy.scope():
        model = build_model()
        optimizer = create_optimizer(1e-3, total_steps=2000, warmup_steps=100)
    trainer = Trainer(model, optimizer, loss_fn, global_batch_size=64,
                      model_dir="/tmp/run", strategy=strategy,
                      metric_fns={"accuracy": accuracy_fn})
    trainer.train(train_dataset_fn, max_steps=2000,
                  eval_dataset_fn=eval_dataset_fn, eval_every=500)
"""

import contextlib
import math
import os
import re
import signal
import tempfile
import time

import keras
import tensorflow as tf
from absl import logging

from tfllm.errors import CheckpointError
from tfllm.errors import DataError
from tfllm.errors import DivergedError
from tfllm.training import loss_scaling
from tfllm.training.strategy import check_same_step_on_all_workers
from tfllm.training.strategy import is_chief
from tfllm.training.strategy import per_replica_batch_size


class Trainer:
    """Trains and evaluates a Keras model with a custom distributed loop.

    Args:
        model: a built Keras model, created inside `strategy.scope()`.
        optimizer: a Keras optimizer (e.g. from `create_optimizer`), created
            inside `strategy.scope()`. If the model computes in float16
            (`mixed_float16` policy) it is wrapped in a `LossScaleOptimizer`,
            as `Model.compile` does: overflowing updates are skipped.
        loss_fn: `loss_fn(labels, outputs)` -> per-example loss, shape `[B]`.
            It and `metric_fns` run as plain graph code, as in Keras' own
            train step (no AutoGraph): `tf.where`/`tf.cond`, not a Python
            `if` on a tensor.
        global_batch_size: examples per micro-batch summed over all replicas.
            With `grad_accum_steps=k`, one update sees `k * global_batch_size`.
        model_dir: checkpoints go to `model_dir/checkpoints`, TensorBoard
            scalars to `model_dir/train` and `model_dir/eval`.
        strategy: the `tf.distribute.Strategy` (default: the current one).
        metric_fns: `{name: fn(labels, outputs)}`; each fn returns per-example
            values `[B]` (e.g. accuracy as 0/1), or a `(values, weights)` pair
            for weighted means such as token accuracy (`sum(values) /
            sum(weights)`).
        grad_accum_steps: micro-batches summed into each optimizer update.
        steps_per_execution: optimizer updates per `tf.function` call (fewer
            host round trips on TPU); logs, checkpoints and evals still land
            on exact multiples of their intervals.
        log_every, checkpoint_every: intervals in optimizer updates.
        max_checkpoints: how many recent checkpoints to keep.
        checkpoint_data_iterator: on one device, save the `tf.data` iterator in
            the checkpoint (it includes shuffle buffers, which can be large);
            otherwise resume by skipping the batches already consumed.
        time_budget_seconds: stop this run after about this long (checked
            after every `steps_per_execution` updates): save, swap in the EMA
            weights and evaluate, as at `max_steps`.
            The schedule still ends at `max_steps`; `train` returns the steps done.
        jit_compile: compile each replica's forward + backward pass with XLA
            (the optimizer update and the all-reduce stay outside). Pays off
            for fixed-shape batches (GPT blocks); every new batch shape costs
            a compilation, so leave it off for length-bucketed batches.
        restart: start from step 0 even though `model_dir/checkpoints` holds
            checkpoints; they are moved to `checkpoints/before-restart-<time>/`
            first. Without it a run never starts over while checkpoint files
            exist: it resumes from the newest intact one, or raises
            `CheckpointError` if none is.
    """

    def __init__(
        self,
        model,
        optimizer,
        loss_fn,
        global_batch_size,
        model_dir,
        strategy=None,
        metric_fns=None,
        grad_accum_steps=1,
        steps_per_execution=1,
        log_every=100,
        checkpoint_every=1000,
        max_checkpoints=3,
        checkpoint_data_iterator=True,
        jit_compile=False,
        time_budget_seconds=None,
        restart=False,
    ):
        self.model = model
        self.loss_fn = loss_fn
        self.metric_fns = dict(metric_fns or {})
        self.strategy = strategy or tf.distribute.get_strategy()
        per_replica_batch_size(global_batch_size, self.strategy)  # Fail early.
        self.global_batch_size = global_batch_size
        self.model_dir = model_dir
        self.checkpoint_dir = os.path.join(model_dir, "checkpoints")
        self.grad_accum_steps = grad_accum_steps
        self.steps_per_execution = steps_per_execution
        self.log_every = log_every
        self.checkpoint_every = checkpoint_every
        self.max_checkpoints = max_checkpoints
        self.time_budget_seconds = time_budget_seconds
        self.restart = restart
        self._restored_path = None  # The checkpoint `restore` read, if any.
        # One device reads a plain tf.data iterator, never a distributed one:
        # `distribute_datasets_from_function` wraps it in a MultiDeviceIterator
        # (a GeneratorDataset), which made BERT-mini pretraining steps 1.55x
        # slower here (2.76 vs 1.77 s, 4.5x the system CPU time). Distributed
        # iterators also cannot be checkpointed (tensorflow#56372).
        self.plain_iterator = isinstance(self.strategy, tf.distribute.OneDeviceStrategy)
        self.iterator_checkpointable = checkpoint_data_iterator and self.plain_iterator
        self.is_chief = is_chief(self.strategy)
        # The number of optimizer updates done; saved in every checkpoint.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        with self.strategy.scope():
            self.optimizer = loss_scaling.wrap_if_float16(optimizer, model)
            self.loss_scaling = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
            # Create the optimizer's slots now: a custom loop cannot create
            # them inside the first distributed step, and restore needs them.
            self.optimizer.build(self.model.trainable_variables)
            # Per-replica gradient sums (ON_READ: each replica keeps its own;
            # the optimizer all-reduces when the sum is applied).
            self._grad_sums = [
                tf.Variable(
                    tf.zeros(v.shape, v.dtype),
                    trainable=False,
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.SUM,
                )
                for v in self.model.trainable_variables
            ] if grad_accum_steps > 1 else []
        self._forward_backward = (
            tf.function(self._loss_and_gradients, jit_compile=True)
            if jit_compile else self._loss_and_gradients
        )
        # AutoGraph converts only the loop in `_train_steps`/`_one_update` (tf.range, the early break). What one
        # replica computes (model, loss, metrics, optimizer) is plain TensorFlow, as in Keras' own train step
        # (`do_not_convert`): converting it would re-parse and transform every layer's and the optimizer's
        # Python source, about a fifth of the first call.
        self._replica_step = tf.autograph.experimental.do_not_convert(self._replica_step)
        self._replica_accumulate = tf.autograph.experimental.do_not_convert(self._replica_accumulate)
        self._replica_apply_accumulated = tf.autograph.experimental.do_not_convert(self._replica_apply_accumulated)
        self._train_fn = tf.function(self._train_steps)
        self._eval_fn = tf.function(self._eval_step, reduce_retracing=True, autograph=False)

    # ---- The training loop -------------------------------------------------

    def train(self, train_dataset_fn, max_steps, eval_dataset_fn=None, eval_every=None):
        """Trains until `max_steps` updates, resuming from the latest checkpoint.

        `train_dataset_fn(input_context)` returns an infinite dataset of
        `(features, labels)` batched per replica
        (`input_context.get_per_replica_batch_size(global_batch_size)`, with
        `drop_remainder=True`). It must be deterministic (e.g. seeded shuffle)
        for resume to see the same data.

        Returns `{"train": metrics of the last log window, "eval": the last
        eval results}` (None where there were none). With an EMA optimizer
        (`create_optimizer(ema_momentum=...)`), the model holds the averaged
        weights once `max_steps` is reached (checkpoints keep the raw ones and
        the average), and the final evaluation uses them.
        """
        results = {"train": None, "eval": None}
        step = self.restore()
        check_same_step_on_all_workers(self.strategy, step, self.model_dir)
        if step >= max_steps:
            logging.info("Already trained to step %d of %d; nothing to do.", step, max_steps)
            self._use_averaged_weights()
            return dict(results, steps=step)
        iterator, checkpoint = self._make_train_iterator(train_dataset_fn, step)
        self._manager = self._checkpoint_manager(checkpoint)
        window, window_start = None, time.time()
        deadline = window_start + self.time_budget_seconds if self.time_budget_seconds else None
        with self._writer("train").as_default(), _stop_requested() as stop:
            while step < max_steps:
                n = self._steps_to_next_boundary(step, max_steps, eval_every)
                stats, done, nonfinite = self._train_fn(iterator, tf.constant(n))
                if nonfinite > 0:
                    raise DivergedError(
                        f"Loss or gradients are NaN/inf at step {step + int(done)}; "
                        f"stopping. The last good checkpoint is "
                        f"{tf.train.latest_checkpoint(self.checkpoint_dir)} (a lower learning rate usually helps)."
                    )
                step += int(done)
                self.step.assign(step)
                self._check_loss_scale(step)
                window = _add(window, stats)
                out_of_time = deadline is not None and time.time() >= deadline and step < max_steps
                if out_of_time:
                    logging.warning("Time budget of %.0f s reached at step %d of %d: finishing here.",
                                    self.time_budget_seconds, step, max_steps)
                last = step == max_steps or out_of_time
                if step % self.log_every == 0 or last:
                    results["train"] = self._log_train(
                        step, max_steps, window, time.time() - window_start
                    )
                    window, window_start = None, time.time()
                if step % self.checkpoint_every == 0 or last or stop:
                    self._save(step)
                if stop:
                    logging.warning("%s: saved step %d; exiting (the same command again resumes from it).",
                                    signal.Signals(stop[0]).name, step)
                    raise SystemExit(128 + stop[0])
                if last:
                    self._use_averaged_weights()
                if eval_dataset_fn and ((eval_every and step % eval_every == 0) or last):
                    results["eval"] = self.evaluate(eval_dataset_fn)
                if out_of_time:
                    break
        results["steps"] = step
        return results

    def _use_averaged_weights(self):
        """Swap in the optimizer's moving average of the weights, if it keeps one."""
        if self.optimizer.use_ema:
            self.optimizer.finalize_variable_values(self.model.trainable_variables)
            logging.info("Using the exponential moving average of the weights (momentum %g).",
                         self.optimizer.ema_momentum)

    def evaluate(self, eval_dataset_fn):
        """Mean loss and metrics over a finite dataset, each example once.

        `eval_dataset_fn(input_context)` returns a finite dataset batched per
        replica without `drop_remainder`; a short last batch, and replicas
        that get no data at the end, are handled by tf.distribute.
        """
        totals = None
        for batch in self._dataset(eval_dataset_fn):
            totals = _add(totals, self._eval_fn(batch))
        if totals is None:
            raise DataError("The eval dataset is empty.")
        results = means(totals)
        self.log_eval(results)
        return results

    def add_batch_stats(self, totals, labels, outputs):
        """`totals` (None at first) plus one batch's `{name: (sum, weight)}` of the loss and each metric, as
        `evaluate` adds them up (`means(totals)` gives its figures): for a recipe's own prediction loop, which
        needs the outputs too and so evaluates in the same pass, on one device."""
        per_example_loss = tf.cast(self.loss_fn(labels, outputs), tf.float32)
        return _add(totals, self._stats(labels, outputs, per_example_loss))

    def log_eval(self, results):
        """Logs `{name: value}` and writes them as TensorBoard scalars under `<model_dir>/eval` at the
        current step (chief only): for evaluations a recipe computes itself, e.g. from its predictions."""
        step = int(self.step.numpy())
        logging.info("eval step %d  %s", step, _format_metrics(results))
        with self._writer("eval").as_default():
            for name, value in results.items():
                tf.summary.scalar(name, value, step=step)
            tf.summary.flush()

    # ---- Steps (traced) -----------------------------------------------------

    def _train_steps(self, iterator, num_steps):
        """Up to `num_steps` optimizer updates; stops early on a NaN/inf."""
        totals = self._zero_stats()
        done = tf.constant(0, tf.int64)
        nonfinite = tf.constant(0.0)
        for _ in tf.range(num_steps):  # A tf.while_loop: one host call.
            stats = self._one_update(iterator)
            totals = _add(totals, stats)
            done += 1
            nonfinite = stats["nonfinite"][0]
            if nonfinite > 0:
                break
        return totals, done, nonfinite

    def _one_update(self, iterator):
        """One optimizer update from `grad_accum_steps` micro-batches."""
        if self.grad_accum_steps == 1:
            stats = self.strategy.run(self._replica_step, args=(next(iterator),))
            return self._sum_over_replicas(stats)
        totals = self._zero_stats()
        for _ in tf.range(self.grad_accum_steps):
            stats = self.strategy.run(self._replica_accumulate, args=(next(iterator),))
            totals = _add(totals, self._sum_over_replicas(stats))
        self.strategy.run(self._replica_apply_accumulated)
        return totals

    def _replica_step(self, batch):
        grads, stats = self._replica_gradients(batch)
        self._apply(grads)
        return stats

    def _replica_accumulate(self, batch):
        grads, stats = self._replica_gradients(batch)
        for grad_sum, grad in zip(self._grad_sums, grads):
            if grad is not None:
                grad_sum.assign_add(grad)
        return stats

    def _replica_apply_accumulated(self):
        # The mean over micro-batches equals one batch k times larger.
        grads = [g.read_value() / self.grad_accum_steps for g in self._grad_sums]
        self._apply(grads)
        for grad_sum in self._grad_sums:
            grad_sum.assign(tf.zeros_like(grad_sum))

    def _apply(self, grads):
        if self.loss_scaling:
            # Gradients are still scaled and per replica: the LossScaleOptimizer
            # unscales them, then the inner AdamW all-reduces and clips.
            grads = loss_scaling.agree_on_overflow(grads)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))

    def _replica_gradients(self, batch):
        features, labels = batch
        loss, outputs, per_example_loss, grads = self._forward_backward(features, labels)
        stats = self._stats(labels, outputs, per_example_loss)
        # Checked before anything is saved: the loop stops on the first
        # update whose loss or gradients are NaN/inf. With loss scaling,
        # overflowing gradients are normal (that update is skipped and the
        # scale lowered), so only the loss counts.
        finite = tf.math.is_finite(loss)
        if not self.loss_scaling:
            finite &= tf.math.is_finite(
                tf.linalg.global_norm([g for g in grads if g is not None])
            )
        stats["nonfinite"] = (1.0 - tf.cast(finite, tf.float32), tf.constant(0.0))
        return grads, stats

    def _loss_and_gradients(self, features, labels):
        """Forward and backward pass on one replica's batch (XLA-compiled with `jit_compile`)."""
        with tf.GradientTape() as tape:
            outputs = self.model(features, training=True)
            per_example_loss = tf.cast(self.loss_fn(labels, outputs), tf.float32)
            # Divide by the global batch, so the all-reduce SUM of gradients
            # over replicas is the gradient of the global mean.
            loss = tf.nn.compute_average_loss(
                per_example_loss, global_batch_size=self.global_batch_size
            )
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(
                    tf.cast(tf.add_n(self.model.losses), tf.float32)
                )
            # Loss scaling (float16): multiplied by the dynamic scale; the
            # optimizer divides the gradients by it. Else unchanged.
            scaled_loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled_loss, self.model.trainable_variables)
        # Embedding gradients come as IndexedSlices with one row per token
        # occurrence. Keras 3 Adam squares those rows before summing repeated
        # tokens (sum of squares, not square of sum), so densify: it updates
        # every row densely anyway (keras-team/keras#19992).
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                 for g in grads]
        return loss, outputs, per_example_loss, grads

    def _eval_step(self, batch):
        def replica_eval(batch):
            features, labels = batch
            outputs = self.model(features, training=False)
            per_example_loss = tf.cast(self.loss_fn(labels, outputs), tf.float32)
            return self._stats(labels, outputs, per_example_loss)

        return self._sum_over_replicas(self.strategy.run(replica_eval, args=(batch,)))

    def _stats(self, labels, outputs, per_example_loss):
        """{name: (sum, count)} for the loss and each metric on this replica."""
        stats = {
            "loss": (
                tf.reduce_sum(per_example_loss),
                tf.cast(tf.size(per_example_loss), tf.float32),
            )
        }
        for name, fn in self.metric_fns.items():
            values = fn(labels, outputs)
            values, weights = values if isinstance(values, tuple) else (
                values, tf.ones_like(values)
            )
            stats[name] = (
                tf.reduce_sum(tf.cast(values, tf.float32)),
                tf.reduce_sum(tf.cast(weights, tf.float32)),
            )
        return stats

    def _zero_stats(self):
        names = ["loss", *self.metric_fns, "nonfinite"]
        return {name: (tf.constant(0.0), tf.constant(0.0)) for name in names}

    def _sum_over_replicas(self, values):
        return tf.nest.map_structure(
            lambda v: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None),
            values,
        )

    # ---- Checkpoints and data position -------------------------------------

    def restore(self):
        """Restores model, optimizer, step and RNG state from the newest intact checkpoint.

        Returns the restored step (0 if there is no checkpoint). The format is
        a plain `tf.train.Checkpoint(model=..., optimizer=..., step=...)`
        (plus `rng`: the dropout seed states, `loss_scale` under float16, and
        `data_iterator` on one device), so
        `tf.train.Checkpoint(model=model).read(path).expect_partial()` loads
        just the weights, e.g. to fine-tune from a pretraining run.

        The candidates are the checkpoints the `checkpoint` state file lists
        and every `ckpt-N` on disk, newest first; each is read back in full
        (index, data files, checksums) before it is used. A broken newer one
        is logged and moved to `checkpoints/unreadable/`, and the state file
        is rewritten to list the ones kept, so the `CheckpointManager` rotates
        exactly those. If checkpoint files exist but none is intact this
        raises `CheckpointError` rather than silently start from step 0
        (`restart=True` starts over on purpose). The chief also deletes the
        `ckpt-N_temp` folders a save killed midway leaves behind.
        """
        self._restored_path = None
        if self.is_chief:
            _remove_unfinished_saves(self.checkpoint_dir)
        if self.restart:
            self.restart = False  # Only the first `train`; later calls resume.
            if self.is_chief:
                _move_aside_for_restart(self.checkpoint_dir)
            return 0
        candidates = _candidate_checkpoints(self.checkpoint_dir)
        broken = []
        for path in candidates:
            problem = _unreadable(path)
            if problem is None:
                break
            logging.warning("Checkpoint %s is unreadable (%s); trying the one before it.",
                            path, problem)
            broken.append(f"{os.path.basename(path)}: {problem}")
        else:
            if not candidates:
                return 0
            raise CheckpointError(
                f"{self.checkpoint_dir}: no intact checkpoint to resume from "
                f"({'; '.join(broken)}); expected ckpt-N.index with readable data files. "
                f"Move the folder away, or restart on purpose (Trainer(restart=True))."
            )
        try:
            self._checkpoint().read(path).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError) as e:
            raise CheckpointError(
                f"{path}: cannot restore it into this model ({_first_line(e)}); "
                f"expected a checkpoint of the same model and optimizer."
            ) from e
        self._restored_path = path
        step = int(self.step.numpy())
        if broken:
            logging.warning("Resuming from %s, the newest intact checkpoint, instead of %s.",
                            path, candidates[0])
        if self.is_chief and (broken or tf.train.latest_checkpoint(self.checkpoint_dir) != path):
            _repair_state(self.checkpoint_dir, path, candidates[:len(broken)])
        logging.info("Resumed from step %d (%s).", step, path)
        return step

    def _checkpoint(self, iterator=None):
        parts = dict(
            model=self.model,
            optimizer=loss_scaling.inner_optimizer(self.optimizer),
            step=self.step,
            # Keras dropout draws from per-layer seed states that tf.train
            # does not track on its own; saving them makes a resumed run use
            # the same dropout masks as an uninterrupted one.
            rng=[v for v in self.model.variables if v.name == "seed_generator_state"],
        )
        if self.loss_scaling:
            parts["loss_scale"] = loss_scaling.loss_scale_variables(self.optimizer)
        if iterator is not None:
            parts["data_iterator"] = iterator
        return tf.train.Checkpoint(**parts)

    def _make_train_iterator(self, dataset_fn, step):
        """The training iterator, positioned after the `step` updates done.

        Returns it with the checkpoint to save, which holds the iterator too
        when it can be saved (one device); else we skip the consumed batches.
        """
        latest = self._restored_path
        saved_iterator = latest is not None and any(
            name.startswith("data_iterator/")
            for name in tf.compat.v1.train.NewCheckpointReader(latest).get_variable_to_shape_map()
        )
        restore_iterator = self.iterator_checkpointable and saved_iterator
        skip = 0 if restore_iterator else step * self.grad_accum_steps

        def skipping_dataset_fn(context):
            # Each micro-batch takes one batch for every replica this input
            # pipeline feeds.
            per_pipeline = context.num_replicas_in_sync // context.num_input_pipelines
            return dataset_fn(context).skip(skip * per_pipeline)

        iterator = iter(self._dataset(skipping_dataset_fn))
        checkpoint = self._checkpoint(iterator if self.iterator_checkpointable else None)
        if restore_iterator:
            tf.train.Checkpoint(data_iterator=iterator).read(latest).expect_partial()
            logging.info("Data position: restored the saved tf.data iterator.")
        elif step:
            why = ("no iterator in the checkpoint" if self.iterator_checkpointable
                   else f"{type(self.strategy).__name__} iterators cannot be checkpointed")
            logging.info("Data position: skipped the %d global batches already used (%s).",
                         skip, why)
        return iterator, checkpoint

    def _dataset(self, dataset_fn):
        """`dataset_fn(input_context)`'s batches for this strategy: a plain dataset on one device
        (see `plain_iterator`), a distributed one otherwise."""
        if self.plain_iterator:
            return dataset_fn(tf.distribute.InputContext())
        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def _checkpoint_manager(self, checkpoint):
        # Under MultiWorkerMirroredStrategy every worker must take part in a
        # save (variables may need collective reads); a non-chief writes to a
        # local temporary directory that `_save` deletes again, so only the
        # chief's checkpoints land in model_dir.
        if not self.is_chief:
            directory = tempfile.mkdtemp(prefix="tfllm-worker-checkpoint-")
            return tf.train.CheckpointManager(checkpoint, directory, 1)
        return tf.train.CheckpointManager(
            checkpoint, self.checkpoint_dir, self.max_checkpoints
        )

    def _save(self, step):
        try:
            path = self._manager.save(checkpoint_number=step)
        except tf.errors.FailedPreconditionError as e:
            # Pipelines with py_function or from_generator cannot be saved.
            if not hasattr(self._manager.checkpoint, "data_iterator"):
                raise
            logging.warning(
                "Cannot save the tf.data iterator (%s); saving without it, so a "
                "resume will skip the batches already used.", str(e).splitlines()[0]
            )
            self._manager = self._checkpoint_manager(self._checkpoint())
            path = self._manager.save(checkpoint_number=step)
        if self.is_chief:
            logging.info("Saved checkpoint %s", path)
        else:
            tf.io.gfile.rmtree(self._manager.directory)

    def _check_loss_scale(self, step):
        """Under float16: stop if gradients stay NaN/inf whatever the loss scale."""
        if not self.loss_scaling:
            return
        scale = float(self.optimizer.dynamic_scale.numpy())
        if scale < loss_scaling.MIN_LOSS_SCALE:
            raise DivergedError(
                f"Gradients are NaN/inf at step {step} even with the float16 loss "
                f"scale lowered to {scale:g} ({self._skipped_updates(step)} updates "
                f"skipped); stopping. The last good checkpoint is "
                f"{tf.train.latest_checkpoint(self.checkpoint_dir)}."
            )

    def _skipped_updates(self, step):
        """Updates the LossScaleOptimizer skipped (its iterations do not count them)."""
        return step - int(self.optimizer.iterations.numpy())

    # ---- Logging ------------------------------------------------------------

    def _steps_to_next_boundary(self, step, max_steps, eval_every):
        intervals = [self.log_every, self.checkpoint_every, eval_every or max_steps]
        to_boundary = [i - step % i for i in intervals]
        return min(self.steps_per_execution, max_steps - step, *to_boundary)

    def _log_train(self, step, max_steps, window, seconds):
        results = {name: float(s / max(c, 1.0)) for name, (s, c) in window.items()
                   if name != "nonfinite"}
        steps = window["loss"][1] / self.global_batch_size / self.grad_accum_steps
        examples_per_sec = float(window["loss"][1]) / max(seconds, 1e-9)
        eta = (max_steps - step) * seconds / max(float(steps), 1.0)
        learning_rate = float(self.optimizer.learning_rate)
        line = "step %d/%d  %s  lr %.1e" % (step, max_steps, _format_metrics(results), learning_rate)
        results.update(learning_rate=learning_rate, examples_per_sec=examples_per_sec)
        if self.loss_scaling:
            results["loss_scale"] = float(self.optimizer.dynamic_scale.numpy())
            results["skipped_updates"] = self._skipped_updates(step)
            line += "  loss scale %g (%d skipped)" % (results["loss_scale"], results["skipped_updates"])
        logging.info("%s  %.0f ex/s  ETA %s", line, examples_per_sec, _format_duration(eta))
        for name, value in results.items():
            tf.summary.scalar(name, value, step=step)
        tf.summary.flush()
        return results

    def _writer(self, name):
        if not self.is_chief:
            return tf.summary.create_noop_writer()
        if not hasattr(self, "_writers"):
            self._writers = {}
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(
                os.path.join(self.model_dir, name)
            )
        return self._writers[name]


# ---- Checkpoint files ----------------------------------------------------------

# A CheckpointManager's files: `ckpt-N.index`, `ckpt-N.data-00000-of-00001`.
_CHECKPOINT_FILE = re.compile(r"^(ckpt-(\d+))(\.index|\.data-\d+-of-\d+)?$")
# Tensors read back per op when checking a checkpoint: bounds the memory used.
_CHECK_BYTES_PER_READ = 256 << 20


def _candidate_checkpoints(directory):
    """The checkpoints the state file lists or that have files in `directory`, newest step first."""
    names = []
    state = tf.train.get_checkpoint_state(directory)
    if state is not None:
        names += [state.model_checkpoint_path, *state.all_model_checkpoint_paths]
    if tf.io.gfile.isdir(directory):
        names += tf.io.gfile.listdir(directory)
    steps = {}
    for name in names:
        # By name in `directory`: the state file may hold absolute paths of a moved model_dir.
        match = _CHECKPOINT_FILE.match(os.path.basename(name.rstrip("/")))
        if match:
            steps[match.group(1)] = int(match.group(2))
    return [os.path.join(directory, prefix) for prefix in sorted(steps, key=steps.get, reverse=True)]


def _unreadable(prefix):
    """None if every tensor of checkpoint `prefix` reads back with its checksum, else why not.

    Reads the data files once more than a restore would, in reads of at most
    `_CHECK_BYTES_PER_READ`; `RestoreV2` also reads what numpy cannot hold
    (the saved tf.data iterator is a variant tensor).
    """
    try:
        # The reader of exactly this prefix: tf.train.load_checkpoint would first ask whether `prefix` is a
        # folder, which a filesystem whose folders are name prefixes (ram://) answers yes.
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
        batches, size = [[]], 0
        for name in sorted(dtypes):
            nbytes = max(dtypes[name].size, 1) * math.prod(shapes[name])
            if batches[-1] and size + nbytes > _CHECK_BYTES_PER_READ:
                batches.append([])
                size = 0
            batches[-1].append(name)
            size += nbytes
        with tf.device("/cpu:0"):
            for names in batches:
                tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=names,
                                     shape_and_slices=[""] * len(names),
                                     dtypes=[dtypes[name] for name in names])
    except (tf.errors.OpError, ValueError) as e:
        return _first_line(e)
    return None


def _first_line(error):
    """An op error's message without TensorFlow's `{{function_node ...}}` and `[Op:...]` wrapping."""
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"\{\{.*?\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:\w+\].*", "", message, flags=re.S).strip()
    return message.splitlines()[0] if message else type(error).__name__


def _remove_unfinished_saves(directory):
    """Deletes the `ckpt-N_temp` folders a save that was killed midway leaves behind."""
    for path in tf.io.gfile.glob(os.path.join(directory, "*_temp*")):
        logging.warning("Deleting %s, left by a checkpoint save that did not finish.", path)
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        else:
            tf.io.gfile.remove(path)


def _repair_state(directory, restored, broken):
    """After resuming from `restored`: move the `broken` checkpoints to `unreadable/`, and
    rewrite the state file to list the checkpoints up to `restored`, so that
    `tf.train.latest_checkpoint` names it and the CheckpointManager rotates
    exactly the intact ones (it would otherwise count the broken ones and
    delete intact older ones to make room)."""
    for prefix in broken:
        files = tf.io.gfile.glob(prefix + ".*")
        if files:
            folder = os.path.join(directory, "unreadable")
            _move(files, folder)
            logging.warning("Moved the unreadable checkpoint %s to %s.", prefix, folder)
    state = tf.train.get_checkpoint_state(directory)
    saved_at = {}
    if state is not None:
        saved_at = dict(zip(map(os.path.basename, state.all_model_checkpoint_paths),
                            state.all_model_checkpoint_timestamps))
    kept = [os.path.basename(p) for p in reversed(_candidate_checkpoints(directory))
            if tf.io.gfile.exists(p + ".index")]
    timestamps = [saved_at.get(name) or tf.io.gfile.stat(os.path.join(directory, name + ".index")).mtime_nsec / 1e9
                  for name in kept]
    tf.compat.v1.train.update_checkpoint_state(
        directory, os.path.basename(restored), kept,
        all_model_checkpoint_timestamps=timestamps,
        last_preserved_timestamp=min(timestamps) - 1.0,
    )
    logging.info("Checkpoint state of %s now lists %s.", directory, ", ".join(kept))


def _move_aside_for_restart(directory):
    """`restart=True`: move every checkpoint file to `before-restart-<time>/`."""
    names = [name for name in (tf.io.gfile.listdir(directory) if tf.io.gfile.isdir(directory) else [])
             if name == "checkpoint" or _CHECKPOINT_FILE.match(name)]
    if not names:
        return
    folder = os.path.join(directory, time.strftime("before-restart-%Y%m%d-%H%M%S"))
    _move([os.path.join(directory, name) for name in names], folder)
    logging.warning("Restarting from step 0: moved the %d checkpoint files in %s to %s.",
                    len(names), directory, folder)


def _move(paths, folder):
    tf.io.gfile.makedirs(folder)
    for path in paths:
        tf.io.gfile.rename(path, os.path.join(folder, os.path.basename(path)), overwrite=True)


def means(totals):
    """`{name: sum / weight}` of `{name: (sum, weight)}` totals (a weight of 0 gives 0), divided in float64."""
    return {name: float(s) / max(float(c), 1.0) for name, (s, c) in totals.items()}


def _add(totals, stats):
    if totals is None:
        return stats
    return tf.nest.map_structure(lambda a, b: a + b, totals, stats)


@contextlib.contextmanager
def _stop_requested():
    """A list that becomes truthy on SIGTERM (e.g. a preemption notice) or a first Ctrl-C (SIGINT): the loop then
    saves a checkpoint after the current step and exits. A second Ctrl-C stops at once (KeyboardInterrupt)."""
    received = []

    def handler(signum, frame):
        if signum == signal.SIGINT and received:
            raise KeyboardInterrupt
        logging.warning("%s received; will checkpoint after this step and stop%s.", signal.Signals(signum).name,
                        " (Ctrl-C again: stop now, without it)" if signum == signal.SIGINT else "")
        received.append(signum)

    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # Not the main thread: leave signals alone.
        pass
    try:
        yield received
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)


def _format_metrics(results):
    return "  ".join(f"{name} {value:.4f}" for name, value in results.items())


def _format_duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
