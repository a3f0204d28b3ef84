"""Pick a `tf.distribute.Strategy` by name, failing fast with a clear message.

Every recipe takes `--strategy=auto|cpu|gpu|mirrored|multi_worker|tpu` and
calls `create_strategy`; the trainer then works the same under all of them.
Also here: the multi-worker helpers (who is chief, a final barrier, a check
that all workers resumed from the same step).
"""

import json
import os
import socket
import urllib.parse

import tensorflow as tf
from absl import logging

from tfllm.errors import ConfigError

STRATEGIES = ("auto", "cpu", "gpu", "mirrored", "multi_worker", "tpu")


def split_cpu_into_logical_devices(n):
    """Split the host CPU into `n` logical devices, so Mirrored runs on CPU.

    Must run before TensorFlow initialises its devices (before any op runs);
    used by tests and `--strategy=mirrored` on GPU-less machines.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
    )


def per_replica_batch_size(global_batch_size, strategy):
    """The batch each replica sees; errors if it does not divide evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ConfigError(
            f"--batch_size={global_batch_size} is the global batch size and "
            f"must be divisible by the number of replicas ({replicas}); "
            f"try --batch_size={max(1, global_batch_size // replicas) * replicas}."
        )
    return global_batch_size // replicas


def create_strategy(name="auto", tpu=None):
    """Returns the `tf.distribute.Strategy` named by `--strategy`.

    Args:
        name: one of `auto`, `cpu`, `gpu`, `mirrored`, `multi_worker`, `tpu`.
        tpu: TPU name or address for `tpu` (e.g. `local`, a TPU name, or
            `grpc://10.0.0.2:8470`); `auto` also tries it first.
    """
    if name not in STRATEGIES:
        raise ConfigError(
            f"Unknown --strategy={name!r}; expected one of {', '.join(STRATEGIES)}."
        )
    if name == "multi_worker":
        # Collectives must be configured before anything initialises
        # TensorFlow's runtime (even listing devices does), so no device query
        # may come first on this path.
        _check_tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "cpu":
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    elif name == "gpu":
        gpus = tf.config.list_logical_devices("GPU")
        if not gpus:
            raise ConfigError("--strategy=gpu but no GPU is visible.")
        strategy = tf.distribute.OneDeviceStrategy(gpus[0].name)
    elif name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
    elif name == "tpu":
        try:
            strategy = _tpu_strategy(tpu)
        except ValueError as e:
            raise ConfigError(f"--strategy=tpu: {e}") from e
    else:
        strategy = _auto_strategy(tpu, tf.config.list_logical_devices("GPU"))
    logging.info(
        "Strategy %s with %d replica(s).",
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
    )
    return strategy


def _auto_strategy(tpu, gpus):
    """TPU if one answers quickly, else all GPUs, else one GPU, else CPU."""
    try:
        return _tpu_strategy(tpu)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        # In the auto path's own words: the user asked for no TPU (and maybe passed no --strategy at all).
        logging.info("Strategy auto: %s; using GPUs or CPU.", str(e).splitlines()[0])
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    if gpus:
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def _tpu_strategy(tpu):
    """A TPUStrategy, or a ValueError saying where no TPU answered (callers add which flag asked)."""
    address = tpu or os.environ.get("TPU_NAME") or "<none>"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    except ValueError as e:  # No name given and not on a TPU VM.
        raise ConfigError(f"no TPU found at {address} ({e})") from e
    # `experimental_connect_to_cluster` waits forever on an address nobody
    # listens at without GRPC_FAIL_FAST set, so check the gRPC port answers first.
    master = resolver.master()
    if master.startswith("grpc://"):
        url = urllib.parse.urlparse(master)
        try:
            socket.create_connection((url.hostname, url.port), timeout=2).close()
        except OSError as e:
            raise ConfigError(f"no TPU found at {master} ({e})") from e
    try:
        if master:  # An empty master means the TPU is local: nothing to connect to.
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (tf.errors.OpError, RuntimeError, ValueError) as e:
        raise ConfigError(
            f"no TPU found at {master or address} "
            f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from e
    return tf.distribute.TPUStrategy(resolver)


def _check_tf_config():
    """MultiWorkerMirroredStrategy needs TF_CONFIG naming the cluster and task."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(raw)
        if not config["cluster"]:
            raise ConfigError("empty cluster")
        config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"--strategy=multi_worker: TF_CONFIG is not valid ({e!r}); it needs "
            '"cluster": {"worker": [...]} and "task": {"type": ..., "index": ...}.'
        ) from e


def is_chief(strategy):
    """Whether this process writes checkpoints, logs and summaries."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def wait_for_all_workers(strategy):
    """Blocks until every worker gets here; a no-op unless multi-worker.

    Call at the end of a recipe after chief-only work such as an export: a
    worker that exits early makes the chief's collective runtime report the
    task as crashed and abort any collective still to come.
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        one = strategy.run(lambda: tf.constant(1.0))
        strategy.reduce(tf.distribute.ReduceOp.SUM, one, axis=None)


def check_same_step_on_all_workers(strategy, step, model_dir):
    """Fails fast if workers resumed from different steps; a no-op unless multi-worker.

    That happens when model_dir is not one storage every worker reads (e.g.
    a local disk per worker): the workers would then run different numbers
    of collective steps and hang at the end.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    steps = strategy.gather(strategy.run(lambda: tf.constant([step], tf.int64)), axis=0)
    steps = sorted(set(steps.numpy().tolist()))
    if len(steps) > 1:
        raise RuntimeError(
            f"Workers resumed from different steps {steps}: --model_dir={model_dir} "
            "must be storage that every worker reads (gs://, NFS), not a local "
            "disk per worker."
        )
