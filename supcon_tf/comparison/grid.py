"""The hyperparameter grid of the stability claim: optimizer x learning rate x augmentation.

Two designs: `"star"` (the default) varies one axis at a time around a centre recipe
(the middle value of each axis: Adam, the centre rate, simple augmentation by
default), 7 recipes for 3 x 3 x 3 values, as the paper's figure 4 varies one
hyperparameter at a time; `"full"` trains every combination (27).

Each point of a `StabilityGrid` is a set of `ExperimentConfig` overrides that both arms
(SupCon pretraining and the cross-entropy baseline) train with: the optimizer, its
learning rate (a factor times the optimizer's centre rate) and the augmentation. The
grid serves twice: each method's recipe is chosen on it (the best validation accuracy)
and the spread of its test accuracy over it is the stability claim (the paper's
figure 4).

Centre learning rates (`CENTRE_LEARNING_RATES`) are per 256 images for SGD and LARS,
which `learning_rate_scaling="auto"` scales linearly to the batch size, and as given for
Adam: SGD 0.1 and Adam 1e-3 are the usual starting points on CIFAR-scale data, LARS 0.4
the paper's per-256 rate.

Example:

>>> grid = StabilityGrid(optimizers=("sgd", "adam"), learning_rate_factors=(0.1, 1.0),
...                      augmentations=("none",), design="full")
>>> [point.name for point in grid.points()]
['sgd_lr0.01_none', 'sgd_lr0.1_none', 'adam_lr0.0001_none', 'adam_lr0.001_none']
>>> grid.points()[1].overrides()
{'optimizer': 'sgd', 'learning_rate': 0.1, 'augment': 'none'}
>>> [point.name for point in StabilityGrid().points()]  # the star around adam, 1e-3, simple
['sgd_lr0.1_simple', 'adam_lr0.0001_simple', 'adam_lr0.001_none', 'adam_lr0.001_simple', 'adam_lr0.001_randaugment', 'adam_lr0.01_simple', 'lars_lr0.4_simple']
"""

import dataclasses
import itertools

from supcon_tf import checks
from supcon_tf.augment import AUGMENTATIONS
from supcon_tf.errors import UsageError
from supcon_tf.training.optimizers import OPTIMIZERS

# The paper's three optimizers, three learning rates a decade apart and three
# augmentations of increasing strength.
DEFAULT_OPTIMIZERS = ("sgd", "adam", "lars")
DEFAULT_LEARNING_RATE_FACTORS = (0.1, 1.0, 10.0)
DEFAULT_AUGMENTATIONS = ("none", "simple", "randaugment")
CENTRE_LEARNING_RATES = {
    "sgd": 0.1,
    "lars": 0.4,
    "adam": 1e-3,
    "adamw": 1e-3,
    "rmsprop": 1e-3,
    "lamb": 1e-3,
}
AXES = ("optimizer", "learning_rate_factor", "augment")
DESIGNS = ("star", "full")


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One recipe of the grid: `optimizer`, `learning_rate_factor` x its centre, `augment`."""

    optimizer: str
    learning_rate_factor: float
    augment: str
    centre_learning_rate: float

    @property
    def learning_rate(self):
        """The learning rate this point trains with (per 256 images for SGD and LARS)."""
        return float(f"{self.centre_learning_rate * self.learning_rate_factor:.6g}")

    @property
    def name(self):
        """A folder-safe name, e.g. `sgd_lr0.1_simple`."""
        return f"{self.optimizer}_lr{self.learning_rate:g}_{self.augment}"

    def overrides(self):
        """The `ExperimentConfig` fields this point sets."""
        return {
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "augment": self.augment,
        }

    def axis_value(self, axis):
        """This point's value on `axis` (one of `AXES`)."""
        return getattr(self, axis)


@dataclasses.dataclass(frozen=True)
class StabilityGrid:
    """Optimizers x learning-rate factors x augmentations (see the module docstring).

    Args:
        optimizers: optimizer names (`supcon_tf.training.optimizers.OPTIMIZERS`).
        learning_rate_factors: factors of each optimizer's centre learning rate.
        augmentations: augmentation policies (`supcon_tf.augment.AUGMENTATIONS`).
        centre_learning_rates: `{optimizer: rate}` overriding `CENTRE_LEARNING_RATES`.
        design: `"star"` (one axis at a time around the centre) or `"full"` (every
            combination).
    """

    optimizers: tuple = DEFAULT_OPTIMIZERS
    learning_rate_factors: tuple = DEFAULT_LEARNING_RATE_FACTORS
    augmentations: tuple = DEFAULT_AUGMENTATIONS
    centre_learning_rates: dict = dataclasses.field(default_factory=dict)
    design: str = "star"

    def __post_init__(self):
        checks.choice("design", self.design, DESIGNS)
        for name, values, allowed in (
            ("optimizers", self.optimizers, OPTIMIZERS),
            ("augmentations", self.augmentations, AUGMENTATIONS),
        ):
            _check_values(name, values)
            for value in values:
                checks.choice(name, value, allowed)
        _check_values("learning_rate_factors", self.learning_rate_factors)
        for factor in self.learning_rate_factors:
            checks.number("learning_rate_factors", factor, minimum=0.0, inclusive=False)
        for optimizer, rate in self.centre_learning_rates.items():
            checks.choice("centre_learning_rates", optimizer, OPTIMIZERS)
            checks.number(f"centre_learning_rates[{optimizer}]", rate, minimum=0.0, inclusive=False)

    def centre(self, optimizer):
        """The centre learning rate of `optimizer`."""
        return self.centre_learning_rates.get(optimizer, CENTRE_LEARNING_RATES[optimizer])

    def points(self):
        """The design's `GridPoint`s, optimizer-major."""
        every = [
            GridPoint(optimizer, float(factor), augment, self.centre(optimizer))
            for optimizer, factor, augment in itertools.product(
                self.optimizers, self.learning_rate_factors, self.augmentations
            )
        ]
        if self.design == "full":
            return every
        centre = self.centre_point()
        return [
            point
            for point in every
            if sum(point.axis_value(axis) != centre.axis_value(axis) for axis in AXES) <= 1
        ]

    def centre_point(self):
        """The middle value of each axis: the star's centre."""
        optimizer, factor, augment = (
            values[len(values) // 2] for values in (self.axis_values(axis) for axis in AXES)
        )
        return GridPoint(optimizer, factor, augment, self.centre(optimizer))

    def axis_values(self, axis):
        """The values of `axis` in grid order."""
        return {
            "optimizer": self.optimizers,
            "learning_rate_factor": tuple(float(f) for f in self.learning_rate_factors),
            "augment": self.augmentations,
        }[axis]


def _check_values(name, values):
    if isinstance(values, str) or not values:
        raise UsageError(f"`{name}` must be a non-empty list, got {values!r}.")
    if len(set(values)) != len(values):
        raise UsageError(f"`{name}` lists a value twice: {list(values)}.")
