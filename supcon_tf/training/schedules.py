"""Learning-rate schedules of the SupCon recipe: linear warmup, then cosine to a floor.

The recipe of Khosla et al. (2020) and of SimCLR (Chen et al., 2020) trains with a
learning rate that rises linearly for a few warmup epochs and then follows half a
cosine down to a floor. Their base learning rates are quoted for a batch of 256 and
multiplied by `batch_size / 256` (`scale_learning_rate`).

Example:

>>> schedule = WarmupCosineDecay(learning_rate=0.5, total_steps=100, warmup_steps=10)
>>> [round(float(schedule(step)), 4) for step in (0, 5, 10, 55, 100)]
[0.0, 0.25, 0.5, 0.25, 0.0]
"""

import math
from pathlib import Path

import keras

from supcon_tf import checks

SCHEDULES = ("constant", "cosine")
REFERENCE_BATCH_SIZE = 256
# How a base learning rate follows the batch size (`scale_learning_rate`).
LEARNING_RATE_SCALINGS = ("none", "linear", "sqrt")


def _check_number(name, value, minimum=0.0, allow_equal=True):
    """Raises `ValueError` unless `value` is a finite real number above `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"`{name}` must be a number, got {value!r} of type {type(value).__name__}."
        )
    if not math.isfinite(value) or value < minimum or (not allow_equal and value == minimum):
        relation = ">=" if allow_equal else ">"
        raise ValueError(f"`{name}` must be a finite number {relation} {minimum}, got {value}.")
    return value


def scale_learning_rate(
    base_learning_rate, batch_size, rule="linear", reference_batch_size=REFERENCE_BATCH_SIZE
):
    """Scales a learning rate quoted per `reference_batch_size` samples to `batch_size`.

    * `"linear"`: `base * batch_size / reference_batch_size` (Goyal et al. 2017; the
      LARS/SGD rule of SimCLR and SupCon, whose recipes quote a base rate per 256).
    * `"sqrt"`: `base * sqrt(batch_size / reference_batch_size)` (LAMB, You et al. 2020).
    * `"none"`: `base` unchanged (adaptive optimizers such as Adam).

    Under `tf.distribute`, `batch_size` is the global batch (all replicas together).

    Args:
        base_learning_rate: learning rate at `reference_batch_size` (> 0).
        batch_size: the (global) batch size actually trained with.
        rule: one of `LEARNING_RATE_SCALINGS`.
        reference_batch_size: the batch size `base_learning_rate` is quoted for.

    >>> scale_learning_rate(0.3, batch_size=4096)
    4.8
    >>> scale_learning_rate(0.1, 4096, "sqrt")
    0.4
    """
    checks.choice("rule", rule, LEARNING_RATE_SCALINGS)
    checks.number("base_learning_rate", base_learning_rate, minimum=0.0, inclusive=False)
    checks.integer("batch_size", batch_size, minimum=1)
    checks.integer("reference_batch_size", reference_batch_size, minimum=1)
    ratio = batch_size / reference_batch_size
    if rule == "linear":
        return float(base_learning_rate) * ratio
    if rule == "sqrt":
        return float(base_learning_rate) * math.sqrt(ratio)
    return float(base_learning_rate)


@keras.saving.register_keras_serializable(package="supcon_tf")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `learning_rate`, then half a cosine down to `final_learning_rate`.

    With `w = warmup_steps`, `T = total_steps`, peak `lr`, floor `f`, warmup start `s`:

    ```
    step < w:       s + (lr - s) * step / w
    w <= step < T:  f + (lr - f) * (1 + cos(pi * (step - w) / (T - w))) / 2
    step >= T:      f
    ```

    `final_learning_rate == learning_rate` gives a constant rate after warmup. Unlike
    `keras.optimizers.schedules.CosineDecay`, `total_steps` counts the warmup steps
    too (one number for the whole run) and the floor is an absolute rate, so a
    schedule can be written straight from a paper's "E epochs, W of warmup, cosine
    to f" recipe.

    Args:
        learning_rate: peak learning rate, reached at the end of warmup.
        total_steps: length of the whole schedule (warmup + cosine) in optimizer steps.
        warmup_steps: number of linear warmup steps (0 disables warmup).
        final_learning_rate: the floor the cosine ends at (and stays at).
        warmup_start_learning_rate: learning rate at step 0 of the warmup.
        name: optional name.

    >>> schedule = WarmupCosineDecay(0.1, total_steps=10, final_learning_rate=0.01)
    >>> round(float(schedule(10)), 6)
    0.01
    """

    def __init__(
        self,
        learning_rate,
        total_steps,
        warmup_steps=0,
        final_learning_rate=0.0,
        warmup_start_learning_rate=0.0,
        name="warmup_cosine_decay",
    ):
        super().__init__()
        self.learning_rate = float(_check_number("learning_rate", learning_rate))
        self.total_steps = checks.integer("total_steps", total_steps, minimum=1)
        self.warmup_steps = checks.integer("warmup_steps", warmup_steps, minimum=0)
        if warmup_steps > total_steps:
            raise ValueError(
                f"`warmup_steps`={warmup_steps} must not exceed `total_steps`={total_steps}."
            )
        self.final_learning_rate = float(_check_number("final_learning_rate", final_learning_rate))
        if final_learning_rate > learning_rate:
            raise ValueError(
                f"`final_learning_rate`={final_learning_rate} must not exceed the peak "
                f"`learning_rate`={learning_rate}."
            )
        self.warmup_start_learning_rate = float(
            _check_number("warmup_start_learning_rate", warmup_start_learning_rate)
        )
        self.name = name

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        peak = ops.cast(self.learning_rate, "float32")
        floor = ops.cast(self.final_learning_rate, "float32")
        start = ops.cast(self.warmup_start_learning_rate, "float32")
        warmup = float(self.warmup_steps)
        decay_length = float(max(self.total_steps - self.warmup_steps, 1))
        warmup_rate = start + (peak - start) * step / max(warmup, 1.0)
        progress = ops.clip((step - warmup) / decay_length, 0.0, 1.0)
        cosine_rate = floor + (peak - floor) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < warmup, warmup_rate, cosine_rate)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_learning_rate": self.final_learning_rate,
            "warmup_start_learning_rate": self.warmup_start_learning_rate,
            "name": self.name,
        }


def build_schedule(
    name="constant", learning_rate=1e-3, total_steps=None, warmup_steps=0, final_learning_rate=0.0
):
    """Returns the learning rate (a float or a schedule) for `--lr_schedule=name`.

    Args:
        name: `"constant"` (the rate after an optional linear warmup) or `"cosine"`
            (warmup, then cosine to `final_learning_rate`).
        learning_rate: the peak learning rate (already scaled for the batch size).
        total_steps: optimizer steps of the whole run; needed by "cosine" and by warmup.
        warmup_steps: linear warmup steps from 0.
        final_learning_rate: the cosine floor.

    Returns:
        A float when nothing varies (constant, no warmup), else a `WarmupCosineDecay`.

    >>> build_schedule("constant", 0.1)
    0.1
    >>> build_schedule("cosine", 0.1, total_steps=50, warmup_steps=5).warmup_steps
    5
    """
    if name not in SCHEDULES:
        raise ValueError(f"Unknown learning-rate schedule {name!r}. Expected one of {SCHEDULES}.")
    _check_number("learning_rate", learning_rate)
    checks.integer("warmup_steps", warmup_steps, minimum=0)
    if name == "constant" and warmup_steps == 0:
        return float(learning_rate)
    if total_steps is None:
        raise ValueError(
            f"`total_steps` is needed for schedule {name!r} with warmup_steps={warmup_steps}: "
            "pass epochs * steps_per_epoch."
        )
    floor = learning_rate if name == "constant" else final_learning_rate
    return WarmupCosineDecay(
        learning_rate,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        final_learning_rate=floor,
    )


def plot_schedule(schedule, steps, path):
    """Plots the learning rate at steps `0 .. steps - 1` and writes a PNG to `path`.

    Args:
        schedule: a `LearningRateSchedule`, any callable of the step, or a float.
        steps: number of steps to plot (> 0).
        path: output file; must end in `.png`. Parent folders are created.

    Returns:
        The `pathlib.Path` written.

    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> plot_schedule(WarmupCosineDecay(0.1, total_steps=20, warmup_steps=2), 20,
    ...               os.path.join(folder, "lr.png")).stat().st_size > 0
    True
    """
    checks.integer("steps", steps, minimum=1)
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"`path` must name a .png file, got {str(path)!r}.")
    if not callable(schedule):
        rate = float(_check_number("schedule", schedule))
        values = [rate] * steps
    else:
        values = [float(keras.ops.convert_to_numpy(schedule(step))) for step in range(steps)]

    # A bare Figure (no pyplot) leaves the global matplotlib backend alone.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5))
    axes = figure.add_subplot()
    axes.plot(range(steps), values)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("learning rate")
    axes.set_title(getattr(schedule, "name", None) or type(schedule).__name__)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
