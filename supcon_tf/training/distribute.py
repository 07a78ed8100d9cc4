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
    model.fit(dataset.batch(1024))   # resumable: see supcon_tf.checkpoints

Under `MultiWorkerMirroredStrategy`, where Keras 3's `fit` does not run
(keras-team/keras#20585), `fit_with_custom_loop(model, dataset, epochs, steps)` takes
its place (`needs_custom_loop(strategy)` tells when).

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
>>> scale_learning_rate(0.5, global_batch_size=1024, rule="linear")
2.0
>>> default_learning_rate_scaling("adam")
'none'
"""

import contextlib
import math
import os

import keras
import tensorflow as tf

from supcon_tf.files import join

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
MIXED_PRECISION_POLICIES = ("none", "mixed_float16", "mixed_bfloat16")
LEARNING_RATE_SCALINGS = ("none", "linear", "sqrt")
REFERENCE_BATCH_SIZE = 256

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


def scale_learning_rate(
    base_learning_rate, global_batch_size, rule="linear", reference_batch_size=REFERENCE_BATCH_SIZE
):
    """Scales a learning rate given per `reference_batch_size` samples to the global batch.

    * `"linear"`: `base * global_batch_size / reference_batch_size` (the LARS/SGD rule
      of Goyal et al. 2017, used by SimCLR and SupCon: `base_lr x batch / 256`).
    * `"sqrt"`: `base * sqrt(global_batch_size / reference_batch_size)` (LAMB).
    * `"none"`: `base` unchanged (adaptive optimizers such as Adam).

    Args:
        base_learning_rate: learning rate for a global batch of `reference_batch_size`.
        global_batch_size: samples per step over all replicas.
        rule: one of `LEARNING_RATE_SCALINGS`.
        reference_batch_size: batch size the base learning rate refers to.

    Example:

    >>> scale_learning_rate(0.1, 4096, "sqrt")
    0.4
    """
    if rule not in LEARNING_RATE_SCALINGS:
        raise ValueError(
            f"Unknown learning-rate scaling rule {rule!r}. Expected one of "
            f"{LEARNING_RATE_SCALINGS}."
        )
    for argument, value in (
        ("global_batch_size", global_batch_size),
        ("reference_batch_size", reference_batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{argument}` must be a positive integer, got {value!r}.")
    if isinstance(base_learning_rate, bool) or not isinstance(base_learning_rate, (int, float)):
        raise ValueError(
            f"`base_learning_rate` must be a number, got {base_learning_rate!r}; scale a "
            "schedule by scaling the learning rate it is built from."
        )
    if not base_learning_rate > 0:
        raise ValueError(f"`base_learning_rate` must be positive, got {base_learning_rate}.")
    ratio = global_batch_size / reference_batch_size
    if rule == "linear":
        return float(base_learning_rate) * ratio
    if rule == "sqrt":
        return float(base_learning_rate) * math.sqrt(ratio)
    return float(base_learning_rate)


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


def needs_custom_loop(strategy):
    """Whether Keras 3's `model.fit` cannot run under `strategy` (multi-worker strategies).

    Keras 3's `fit`, `evaluate` and `predict` fail under
    `MultiWorkerMirroredStrategy` before their first step (keras-team/keras#20585); use
    `fit_with_custom_loop` and `evaluate_classifier` there.

    Example:

    >>> needs_custom_loop(build_strategy("default"))
    False
    """
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def fit_with_custom_loop(
    model, dataset, epochs, steps_per_epoch, callbacks=None, initial_epoch=0, validation_data=None
):
    """Trains a compiled model like `model.fit`, with a `strategy.run` loop of its `train_step`.

    For strategies under which Keras 3's `fit` does not run (`needs_custom_loop`). Call
    it inside `strategy.scope()`, where the model and its optimizer were built. Each step
    runs `model.train_step` on every replica (the optimizer all-reduces the gradients,
    the supcon_tf losses gather the global batch); callbacks get the usual
    `on_train_begin` / `on_epoch_*` / `on_train_batch_*` calls and may stop training
    with `model.stop_training`. Logged metrics are those of this worker's replica.

    Args:
        model: a compiled Keras model, built (called once) under the strategy's scope.
        dataset: a `tf.data.Dataset` of global batches yielding at least
            `(epochs - initial_epoch) * steps_per_epoch` batches (it is distributed
            here; the strategy splits each global batch over the replicas), or a
            dataset the strategy already distributed, e.g. with
            `strategy.distribute_datasets_from_function` (each input pipeline reading
            its own files, as `supcon_tf.data.make_training_stream` does).
        epochs: index of the last epoch plus one, as in `fit`.
        steps_per_epoch: batches per epoch.
        callbacks: Keras callbacks.
        initial_epoch: the first epoch to run (resuming).
        validation_data: optional `tf.data.Dataset` of `(images, labels)` batches for a
            classifier, evaluated after each epoch with `evaluate_classifier`
            (logged as `val_loss`, `val_accuracy`).

    Returns:
        The `keras.callbacks.History`.

    Example:

    >>> import keras, numpy as np, tensorflow as tf
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> _ = model(np.zeros((1, 3), "float32"))
    >>> data = tf.data.Dataset.from_tensor_slices(
    ...     (np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"))).batch(4).repeat()
    >>> history = fit_with_custom_loop(model, data, epochs=2, steps_per_epoch=2)
    >>> len(history.history["loss"])
    2
    """
    strategy = tf.distribute.get_strategy()
    if getattr(model, "optimizer", None) is None:
        raise ValueError("`model` must be compiled (with an optimizer) before training.")
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if isinstance(dataset, tf.data.Dataset):
        dataset = strategy.experimental_distribute_dataset(dataset)
    _build_compiled_losses_and_metrics(model, dataset)
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*(callbacks or []), history], model=model, epochs=epochs, steps=steps_per_epoch, verbose=0
    )
    iterator = iter(dataset)

    @tf.function
    def train_step(iterator):
        outputs = strategy.run(model.train_step, args=(next(iterator),))
        return {
            name: strategy.experimental_local_results(value)[0] for name, value in outputs.items()
        }

    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        logs = {}
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            logs = {name: float(value) for name, value in train_step(iterator).items()}
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if validation_data is not None:
            loss, accuracy = evaluate_classifier(model, validation_data)
            epoch_logs.update({"val_loss": loss, "val_accuracy": accuracy})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return history


def _build_compiled_losses_and_metrics(model, dataset):
    """Creates the compiled loss and metric variables in cross-replica context.

    Variables cannot be created inside `strategy.run`; one eager pass over a batch
    (whose results are then reset) creates them under the strategy's scope.
    """
    strategy = tf.distribute.get_strategy()
    # The first replica's part of the first batch.
    batch = tf.nest.map_structure(
        lambda value: strategy.experimental_local_results(value)[0], next(iter(dataset))
    )
    inputs, labels = batch if isinstance(batch, tuple) else (batch, None)
    predictions = model(inputs, training=False)
    model.compute_loss(x=inputs, y=labels, y_pred=predictions, training=False)
    if labels is not None:
        model.compute_metrics(inputs, labels, predictions)
    model.reset_metrics()


def evaluate_classifier(model, dataset):
    """Loss and accuracy of a classifier over `dataset`, computed on this worker alone.

    Needs no collective operation, so it runs under any strategy (Keras 3's
    `evaluate` does not run under `MultiWorkerMirroredStrategy`): the model's compiled
    loss averaged over samples and the top-1 accuracy of its logits.

    Args:
        model: a compiled classifier (images -> logits) with a loss such as
            `SparseCategoricalCrossentropy`.
        dataset: a `tf.data.Dataset` of `(images, labels)` batches.

    Returns:
        `(loss, accuracy)` as floats.

    Example:

    >>> import numpy as np, keras, tensorflow as tf
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> data = tf.data.Dataset.from_tensor_slices((np.eye(2, dtype="float32"), [0, 1])).batch(2)
    >>> loss, accuracy = evaluate_classifier(model, data)
    >>> 0.0 <= accuracy <= 1.0
    True
    """
    loss = getattr(model, "loss", None)
    loss_object = keras.losses.get(loss) if loss is not None else None
    if loss_object is None:
        raise ValueError("`model` must be compiled with a loss to be evaluated.")
    total_loss, correct, count = 0.0, 0, 0
    for images, labels in dataset:
        logits = model(images, training=False)
        labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
        size = int(labels.shape[0])
        total_loss += float(loss_object(labels, logits)) * size
        correct += int(tf.reduce_sum(tf.cast(tf.argmax(logits, axis=-1) == labels, tf.int32)))
        count += size
    if count == 0:
        raise ValueError("`dataset` yielded no samples to evaluate.")
    return total_loss / count, correct / count


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
