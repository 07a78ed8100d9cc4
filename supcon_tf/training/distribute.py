"""Distributed training helpers: strategies, global batch, learning-rate scaling, precision.

The workflow for training on several devices or machines:

    strategy = build_strategy("mirrored")            # or "multi_worker", "tpu", "default"
    per_replica = per_replica_batch_size(1024, strategy)   # the batch size is global
    learning_rate = scale_learning_rate(0.5, 1024, default_learning_rate_scaling("sgd"))
    set_mixed_precision("mixed_bfloat16")            # optional, before building the model
    with strategy.scope():
        model = build_my_model()
        synchronize_batch_norm(model)                # optional: global BatchNorm statistics
        model.compile(optimizer=..., loss=SupervisedContrastiveLoss())
    model.fit(dataset.batch(1024))   # resumable: see supcon_tf.training.checkpoints

Under `MultiWorkerMirroredStrategy`, where Keras 3's `fit` does not run
(keras-team/keras#20585), `supcon_tf.training.custom_loop` takes its place.

`SupervisedContrastiveLoss` gathers every replica's embeddings and labels by itself
(`gather_across_replicas=True`), so each replica's anchors are contrasted with the
whole global batch, and Keras' per-replica loss scaling makes loss and gradients equal
to the single-device computation on the global batch.

Global batch semantics: every batch size in supcon_tf is the global batch (all
replicas together); `tf.distribute` splits each global batch into
`num_replicas_in_sync` equal shards. The learning rate follows the global batch by the
rule its optimizer expects (`default_learning_rate_scaling`): linear for SGD/LARS
(`base_lr * batch / 256`, Goyal et al. 2017, the rule of SimCLR and SupCon), square
root for LAMB (You et al. 2020), none for adaptive optimizers such as Adam.

Example:

>>> strategy = build_strategy("default")
>>> per_replica_batch_size(512, strategy)
512
>>> scale_learning_rate(0.5, batch_size=1024, rule="linear")
2.0
>>> default_learning_rate_scaling("adam")
'none'
"""

import contextlib
import os

import keras
import tensorflow as tf

from supcon_tf.files import join
from supcon_tf.training.schedules import (  # noqa: F401 (re-exported)
    LEARNING_RATE_SCALINGS,
    REFERENCE_BATCH_SIZE,
    scale_learning_rate,
)

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
MIXED_PRECISION_POLICIES = ("none", "mixed_float16", "mixed_bfloat16")

# Optimizers whose base learning rate is defined per 256 samples of global batch.
_LINEAR_SCALING_OPTIMIZERS = ("sgd", "lars", "momentum")
_SQRT_SCALING_OPTIMIZERS = ("lamb",)


def build_strategy(name="default", tpu=None, tpu_zone=None, gcp_project=None, devices=None):
    """Creates a `tf.distribute.Strategy` by name.

    * `"default"`: the current (default) strategy, one device, no distribution.
    * `"mirrored"`: `MirroredStrategy`, synchronous data parallelism over the local
      GPUs (or the given `devices`).
    * `"multi_worker"`: `MultiWorkerMirroredStrategy`, synchronous data parallelism
      over several machines. Each process reads its role from the `TF_CONFIG`
      environment variable (`{"cluster": {"worker": ["host1:port", ...]},
      "task": {"type": "worker", "index": i}}`); without it, a single worker.
    * `"tpu"`: `TPUStrategy` on the TPU found by `TPUClusterResolver(tpu, tpu_zone,
      gcp_project)` (a TPU name, `grpc://` address, or `"local"` on a TPU VM), after
      connecting to the cluster and initialising the TPU system.

    Args:
        name: one of `STRATEGIES`.
        tpu: TPU name or address (only with `name="tpu"`; `None` lets the resolver
            read `TPU_NAME` from the environment).
        tpu_zone: GCE zone of the TPU (only with `name="tpu"`).
        gcp_project: Google Cloud project of the TPU (only with `name="tpu"`).
        devices: device names for `"mirrored"`, e.g. `["/gpu:0", "/gpu:1"]`; default
            all local GPUs (or the CPU).

    Returns:
        The strategy. Create the model and optimizer under `strategy.scope()`.

    Example:

    >>> build_strategy("default").num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}. Expected one of {STRATEGIES}.")
    tpu_arguments = {"tpu": tpu, "tpu_zone": tpu_zone, "gcp_project": gcp_project}
    given = [key for key, value in tpu_arguments.items() if value is not None]
    if given and name != "tpu":
        raise ValueError(
            f"{', '.join(given)} only apply to the 'tpu' strategy, got strategy {name!r}."
        )
    if devices is not None and name != "mirrored":
        raise ValueError(f"`devices` only applies to the 'mirrored' strategy, got {name!r}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=tpu, zone=tpu_zone, project=gcp_project
    )
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def per_replica_batch_size(global_batch_size, strategy):
    """Returns the batch size of one replica for a global batch size.

    Args:
        global_batch_size: samples per step over all replicas.
        strategy: the `tf.distribute.Strategy` in use.

    Example:

    >>> per_replica_batch_size(256, build_strategy("default"))
    256
    """
    replicas = strategy.num_replicas_in_sync
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int):
        raise ValueError(f"The global batch size must be an integer, got {global_batch_size!r}.")
    if global_batch_size < replicas or global_batch_size % replicas:
        raise ValueError(
            f"The global batch size {global_batch_size} must be a positive multiple of the "
            f"number of replicas ({replicas}) so that every replica gets an equal shard; "
            f"use e.g. {max(1, round(global_batch_size / replicas)) * replicas}."
        )
    return global_batch_size // replicas


def default_learning_rate_scaling(optimizer_name):
    """Returns the learning-rate scaling rule an optimizer expects (`LEARNING_RATE_SCALINGS`).

    `"linear"` for SGD with momentum and LARS, `"sqrt"` for LAMB, `"none"` for the
    adaptive optimizers (Adam, AdamW, RMSprop) and any other name.

    Example:

    >>> default_learning_rate_scaling("sgd")
    'linear'
    """
    name = str(optimizer_name).lower()
    if name in _LINEAR_SCALING_OPTIMIZERS:
        return "linear"
    if name in _SQRT_SCALING_OPTIMIZERS:
        return "sqrt"
    return "none"


def set_mixed_precision(policy="none"):
    """Sets Keras' global dtype policy; call it before building the model.

    With `"mixed_float16"` or `"mixed_bfloat16"` layers compute in half precision and
    keep float32 variables. The supcon_tf losses always compute in float32 (half
    precision embeddings are cast). float16 needs loss scaling: `model.compile` wraps
    the optimizer in `keras.optimizers.LossScaleOptimizer` by itself; custom loops use
    `loss_scale_optimizer`. bfloat16 has float32's range and needs none.

    Args:
        policy: one of `MIXED_PRECISION_POLICIES` (`"none"` means float32).

    Returns:
        The global `keras.DTypePolicy` now in force.

    Example:

    >>> set_mixed_precision("none").name
    'float32'
    """
    if policy not in MIXED_PRECISION_POLICIES:
        raise ValueError(
            f"Unknown mixed precision policy {policy!r}. Expected one of "
            f"{MIXED_PRECISION_POLICIES}."
        )
    keras.mixed_precision.set_global_policy("float32" if policy == "none" else policy)
    return keras.mixed_precision.global_policy()


@contextlib.contextmanager
def training_scope(strategy, mixed_precision="none"):
    """Builds and trains under `strategy` with a mixed-precision policy, then restores.

    Inside the block, models and optimizers are created under `strategy.scope()` with
    the global dtype policy `mixed_precision` (see `set_mixed_precision`); on leaving
    it, the previous global policy is restored, so the block leaves no global state.

    Args:
        strategy: a `tf.distribute.Strategy`.
        mixed_precision: one of `MIXED_PRECISION_POLICIES`.

    Example:

    >>> with training_scope(build_strategy("default"), "mixed_bfloat16"):
    ...     keras.mixed_precision.global_policy().name
    'mixed_bfloat16'
    >>> keras.mixed_precision.global_policy().name
    'float32'
    """
    previous_policy = keras.mixed_precision.global_policy()
    set_mixed_precision(mixed_precision)
    try:
        with strategy.scope():
            yield strategy
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def loss_scale_optimizer(optimizer, policy=None):
    """Wraps `optimizer` in a dynamic `LossScaleOptimizer` when the policy is float16.

    For custom training loops (`model.compile` does this by itself): scale the loss
    with `optimizer.scale_loss(loss)` before taking gradients, and `apply` unscales
    them and skips steps with non-finite gradients.

    Args:
        optimizer: a Keras optimizer.
        policy: a dtype policy or its name; default the global policy.

    Returns:
        The wrapped optimizer for `"mixed_float16"`, else `optimizer` unchanged.

    Example:

    >>> import keras
    >>> wrapped = loss_scale_optimizer(keras.optimizers.SGD(), "mixed_float16")
    >>> type(wrapped).__name__
    'LossScaleOptimizer'
    """
    if policy is None:
        policy = keras.mixed_precision.global_policy()
    name = policy if isinstance(policy, str) else policy.name
    if name == "mixed_float16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def synchronize_batch_norm(model, synchronized=True):
    """Makes every `BatchNormalization` layer of `model` use global-batch statistics.

    With `synchronized=True`, a BatchNorm layer in training all-reduces its mean and
    variance over the replicas, so it normalises with the statistics of the global
    batch, as on one device (the "SyncBN" of SimCLR); otherwise each replica uses its
    own shard's statistics. Call it before the first training step (the flag is read
    when the training function is traced). Nested models and layers are visited
    (sub-layers held in attributes, as in subclassed models and layers).

    Args:
        model: a Keras model (or layer with `layers`).
        synchronized: the value to set.

    Returns:
        The number of `BatchNormalization` layers changed.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    >>> synchronize_batch_norm(model)
    1
    """
    if not hasattr(model, "layers"):
        raise ValueError(
            f"`model` must be a Keras model with `layers`, got {type(model).__name__}."
        )
    changed = 0
    seen = {id(model)}
    pending = _sublayers(model)
    while pending:
        layer = pending.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = bool(synchronized)
            changed += 1
        pending.extend(_sublayers(layer))
    return changed


def _sublayers(layer):
    """The layers a layer holds: its `layers` (models) and layers kept in its attributes."""
    found = list(getattr(layer, "layers", ()))
    for value in vars(layer).values():
        if isinstance(value, dict):
            value = list(value.values())
        items = value if isinstance(value, (list, tuple)) else [value]
        found.extend(item for item in items if isinstance(item, keras.layers.Layer))
    return found


def is_chief(strategy):
    """Whether this process is the chief of a multi-worker cluster (always, with one process).

    The chief is task `chief`, or worker 0 when the cluster has no `chief` task.

    Example:

    >>> is_chief(build_strategy("default"))
    True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def worker_model_dir(model_dir, strategy):
    """The output folder of this process: `model_dir` for the chief, a subfolder otherwise.

    Every worker of a multi-worker run saves checkpoints and models (identical ones);
    workers other than the chief write theirs to `model_dir/workers/<type>_<index>`, so
    that no two processes write the same file.

    Example:

    >>> worker_model_dir("gs://bucket/run", build_strategy("default"))
    'gs://bucket/run'
    """
    if is_chief(strategy):
        return os.fspath(model_dir)
    resolver = strategy.cluster_resolver
    return join(model_dir, "workers", f"{resolver.task_type}_{resolver.task_id}")
