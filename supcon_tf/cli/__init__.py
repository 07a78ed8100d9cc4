"""Command-line interfaces of supcon_tf (absl flags live here, never in library code).

Importing this package sets TensorFlow's C++ log level before any command imports
TensorFlow (see `supcon_tf.cli.console.quiet_tensorflow`; the user's own
`TF_CPP_MIN_LOG_LEVEL` wins).
"""

from supcon_tf.cli.console import quiet_tensorflow

quiet_tensorflow()
