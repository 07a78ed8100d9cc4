"""Deprecated: moved to `supcon_tf.experiment.inputs`.

This module only re-exports the names it used to define, from
`supcon_tf.experiment.inputs`, and emits a `DeprecationWarning` when imported. Import
from `supcon_tf.experiment.inputs` (or `supcon_tf.experiment`) instead.

`open_inputs` here still accepts an `ExperimentConfig` (the new one takes its
`data_source()`); `training_batches` of the inputs now takes `batch_size, seed, ...`
instead of the configuration.
"""

import warnings

from supcon_tf.experiment import inputs as _inputs
from supcon_tf.experiment.inputs import _PROBE_SIZE, ArrayInputs, StreamInputs, check_image_size


def open_inputs(config):
    """`supcon_tf.experiment.inputs.open_inputs` of a configuration's (or a source's) data."""
    source = config.data_source() if hasattr(config, "data_source") else config
    return _inputs.open_inputs(source)


warnings.warn(
    "`supcon_tf.inputs` is deprecated; import from `supcon_tf.experiment.inputs` (or "
    "`supcon_tf.experiment`) instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["_PROBE_SIZE", "ArrayInputs", "StreamInputs", "check_image_size", "open_inputs"]
