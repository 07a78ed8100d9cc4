"""SupCon against cross-entropy, claim by claim: accuracy, robustness, stability.

`compare(config)` (what `supcon-compare` runs) trains both methods on one dataset under
one fair protocol (the same encoder, augmentation and epoch budget; each method's
recipe chosen on the validation split from a grid of optimizers x learning rates x
augmentations; several seeds) and writes, per claim, a table, a PNG and a JSON record.

The package, one job per module:

- `grid`: `StabilityGrid`, the recipes both methods train with;
- `protocol`: `compare`, the runs and evaluations in order;
- `claims`: the three claims computed from the runs (NumPy only);
- `plots`: one PNG per claim.
"""

from supcon_tf.comparison.claims import (
    accuracy_claim,
    markdown_tables,
    robustness_claim,
    select_recipes,
    stability_claim,
)
from supcon_tf.comparison.grid import (
    CENTRE_LEARNING_RATES,
    DEFAULT_AUGMENTATIONS,
    DEFAULT_LEARNING_RATE_FACTORS,
    DEFAULT_OPTIMIZERS,
    GridPoint,
    StabilityGrid,
)
from supcon_tf.comparison.protocol import CLAIMS_FILE, TABLES_FILE, compare

__all__ = [
    "CENTRE_LEARNING_RATES",
    "CLAIMS_FILE",
    "DEFAULT_AUGMENTATIONS",
    "DEFAULT_LEARNING_RATE_FACTORS",
    "DEFAULT_OPTIMIZERS",
    "TABLES_FILE",
    "GridPoint",
    "StabilityGrid",
    "accuracy_claim",
    "compare",
    "markdown_tables",
    "robustness_claim",
    "select_recipes",
    "stability_claim",
]
